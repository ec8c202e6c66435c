"""Device check: hwcomp's attention kernels (fp16 and int8 qattention) against numpy at a given head size."""
import sys, json
from pathlib import Path

import numpy as np, tvm
from hwcomp.backends.tvm_cuda.startup import import_tensor_intrinsics
import_tensor_intrinsics()
from hwcomp.schedules import attention as att, qattention as qa
from hwcomp.backends.tvm_cuda.build import build_kernel
from hwcomp.ops import intmath
from hwcomp.ops.quantized import exp_constants

def run(b, s, h, d):
    out = {}
    dev = tvm.cuda(0)
    rng = np.random.default_rng(0)
    T = lambda a: tvm.runtime.tensor(a, dev)
    def build(f):  # hwcomp's build settings (cp.async for the pipelined GEMMs)
        return build_kernel(f, "main")["main"]
    # fp16
    K = att.attention(b, s, s, h, d, 0.125, False, True, mask_batch=b)
    q, k, v = (rng.standard_normal((b, s, h * d)).astype(np.float16) for _ in range(3))
    mask = np.zeros((b, 1, s), np.float32); mask[:, :, s - s // 4:] = -10000
    sc = T(np.zeros((b, h, s, s), np.float32)); build(K.scores)(T(q), T(k), T(mask), sc)
    pr = T(np.zeros((b * h * s, s), np.float16)); build(K.softmax)(T(sc.numpy().reshape(-1, s)), pr)
    o = T(np.zeros((b, s, h * d), np.float16)); build(K.pv)(T(pr.numpy().reshape(b, h, s, s)), T(v), o)
    qh, kh, vh = (x.astype(np.float64).reshape(b, s, h, d).transpose(0, 2, 1, 3) for x in (q, k, v))
    ref_s = qh @ kh.transpose(0, 1, 3, 2) * 0.125 + mask[:, None]
    out["fp16_scores_err"] = float(np.abs(sc.numpy() - ref_s).max())
    p = np.exp(ref_s - ref_s.max(-1, keepdims=True)); p /= p.sum(-1, keepdims=True)
    ref_o = (p @ vh).transpose(0, 2, 1, 3).reshape(b, s, h * d)
    out["fp16_out_err"] = float(np.abs(o.numpy() - ref_o).max())
    # int8
    ss = 0.0008; ln2, eb, ec = exp_constants(ss)
    qi, ki, vi = (rng.integers(-128, 128, (b, s, h * d)).astype(np.int8) for _ in range(3))
    mi = np.zeros((b, 1, s), np.int32); mi[:, :, s - s // 4:] = -(1 << 30)
    ep = qa.Epilogue(out_zero_point=3)
    QK = qa.qattention(b, s, s, h, d, exp_ln2=ln2, exp_b=eb, exp_c=ec, epilogue=ep, mask_batch=b)
    sc = T(np.zeros((b, h, s, s), np.int32)); build(QK.scores)(T(qi), T(ki), T(mi), sc)
    ref = qi.astype(np.int64).reshape(b, s, h, d).transpose(0, 2, 1, 3) @ ki.astype(np.int64).reshape(b, s, h, d).transpose(0, 2, 3, 1) + mi[:, None]
    out["int8_scores_exact"] = bool(np.array_equal(sc.numpy(), ref))
    pr = T(np.zeros((b * h * s, s), np.float16)); build(QK.softmax)(T(sc.numpy().reshape(-1, s)), pr)
    pref = intmath.int_softmax(ref.reshape(-1, s), ln2, eb, ec, 8)
    out["int8_softmax_exact"] = bool(np.array_equal(pr.numpy().astype(np.int64), pref))
    mult = np.full(h * d, 1500000000, np.int32); sh = np.full(h * d, 40, np.int32)
    o = T(np.zeros((b, s, h * d), np.int8)); build(QK.pv)(T(pr.numpy().reshape(b, h, s, s)), T(vi.astype(np.float16)), T(mult), T(sh), o)
    acc2 = (pref.reshape(b, h, s, s) @ vi.astype(np.int64).reshape(b, s, h, d).transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3).reshape(b, s, h * d)
    out["int8_out_exact"] = bool(np.array_equal(o.numpy(), intmath.requantize(acc2, 1500000000, 40, 3)))
    return out

res = {f"d{d}": run(4, 128, 12 if d != 64 else 12, d) for d in (32, 64)}
print(json.dumps(res))
