"""Device script: check and time hwcomp's TVM CUDA kernels against torch at BERT-base shapes.

Run on the GPU machine from the repo root (see docs in backends/tvm_cuda):
    bash .tvmdev/unpack.sh .tvmdev && export PYTHONPATH=/tmp/site:$PWD && python3 bench/gpu/kernels.py
Writes ``$OUT/kernels.json`` (or ``--out``). Kernels are built in parallel worker processes (nvcc), then
each is checked against torch on fresh random inputs and timed: TVM with ``time_evaluator`` (median of
repeats), torch with CUDA events (median of repeats), both after warm-up.
``--dry`` builds every kernel and exports it without a GPU (to test this script on a CPU machine).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2]))  # after PYTHONPATH: the device maps hwcomp.schedules there

SEQ, HID, FFN, HEADS = 128, 768, 3072, 12
GROUP = 128
IGELU = (105, 12268)  # i-GELU constants (b_int, one_int) of a calibrated BERT-base FFN


def cases() -> list[dict]:
    out = []
    for batch in (1, 32):
        m = batch * SEQ
        for k, n, act in ((HID, HID, "none"), (HID, FFN, "gelu"), (FFN, HID, "none")):
            out.append(dict(kind="dense_f16", m=m, n=n, k=k, act=act))
            out.append(dict(kind="qdense_requant", m=m, n=n, k=k))
        out.append(dict(kind="qdense_dequant", m=m, n=FFN, k=HID))
        out.append(dict(kind="layer_norm", m=m, c=HID))
        out.append(dict(kind="add_layer_norm", m=m, c=HID))
        out.append(dict(kind="attention", b=batch, s=SEQ, h=HEADS, d=HID // HEADS))
    out.append(dict(kind="gelu", m=32 * SEQ, n=FFN))
    # Hopper wgmma GEMM (sm_90a) at BERT-base / GPT-2 batch-32 shapes, GPT-2's padded LM head; configs swept
    for k, n, act in ((HID, HID, "none"), (HID, 3 * HID, "none"), (HID, FFN, "gelu"), (FFN, HID, "none"),
                      (HID, 50304, "none")):
        for cfg in ("auto",) + (WGMMA_SWEEP if n != 50304 else ("n128s3", "n128s4")):
            out.append(dict(kind="dense_wgmma", m=32 * SEQ, n=n, k=k, act=act, cfg=cfg))
    for cfg in ("auto",) + WGMMA_SWEEP:  # GPT-2's LM head writing its fp32 logits, unpadded, without bias
        out.append(dict(kind="dense_wgmma", m=32 * SEQ, n=50304, k=HID, act="none", cfg=cfg, n_out=50257))
    # batch 1 (M = 128): one-warpgroup 64-row wgmma tiles against the mma.sync kernel the lowering picks there
    out.append(dict(kind="dense_f16", m=SEQ, n=3 * HID, k=HID, act="none"))
    for k, n, act in ((HID, 3 * HID, "none"), (HID, FFN, "gelu"), (HID, HID, "none"), (FFN, HID, "none")):
        for cfg in WGMMA_B1_SWEEP:
            out.append(dict(kind="dense_wgmma", m=SEQ, n=n, k=k, act=act, cfg=cfg))
    # int8 wgmma (sm_90a) with each epilogue at BERT-base shapes, batch 32 and 1, against the mma.sync qdense
    for m in (32 * SEQ, SEQ):
        for k, n, epi in ((HID, HID, "rq8"), (HID, 3 * HID, "rq8"), (HID, FFN, "rq8"), (FFN, HID, "dqrq16"),
                          (HID, HID, "dqrq16"), (HID, FFN, "dq32"), (HID, FFN, "rqgelu8"), (HID, 3 * HID, "rqf16")):
            for cfg in ("auto",) + (QWGMMA_SWEEP if m > SEQ else ()):
                out.append(dict(kind="qdense_wgmma", m=m, n=n, k=k, epi=epi, cfg=cfg))
    # warp-per-row integer layer norm (int16 in): float32 out + fused int8 quantize, float32 only, requant int8;
    # MiniLM's width too; against the block-per-row schedule. "+n": int32 normalize
    for m, cc, variant in ((32 * SEQ, HID, "dq_q8"), (32 * SEQ, HID, "dq_q8+n"), (32 * SEQ, HID, "dq"),
                           (32 * SEQ, HID, "rq8"), (32 * SEQ, HID, "rq8+n"),
                           (32 * SEQ, 384, "dq_q8"), (32 * SEQ, HID, "block_dq"), (SEQ, HID, "dq_q8")):
        out.append(dict(kind="int_layer_norm", m=m, c=cc, variant=variant))
    # GPT-2 small decode (QKV, FFN up, FFN down, the 50257-word LM head padded to 50304) and 7B-class shapes
    for k, n in ((HID, 3 * HID), (HID, FFN), (FFN, HID), (HID, 50304), (4096, 4096), (4096, 11008)):
        for sched in ("hwcomp", "dlight"):
            out.append(dict(kind="gemv_int4", m=1, n=n, k=k, sched=sched))
    return out


# --sweep: thread-block tiles "warps_m x warps_n x frags_m x frags_n x chunk_k", then "s<stages>" (cp.async
# shared-memory stages) and "p" (double-buffered ldmatrix fragments), of the mma GEMM at BERT-base shapes
SWEEP_B32 = ("2x2x4x4x4", "2x2x4x4x4p", "2x2x4x4x4s2p", "2x2x4x4x4s3", "2x2x4x4x4s3p", "2x2x4x4x4s4p",
             "2x2x4x4x2s3p", "2x2x4x4x2s4p", "2x4x4x2x4s3p", "4x2x2x4x4s3p", "2x2x2x4x4s3p", "2x4x2x2x4s3p")
SWEEP_B1 = ("1x1x1x2x2", "1x1x1x2x4s3p", "2x2x2x2x4s3p", "1x2x2x2x4s3p", "2x2x1x2x4s3p", "1x2x1x2x4s3p",
            "2x2x1x1x4s3p", "1x2x2x2x2s4p", "2x1x1x2x4s3p")


WGMMA_SWEEP = ("n64s4", "n128s3", "n128s3w0", "n128s4", "n256s3", "n256s4")
QWGMMA_SWEEP = ("n128s3w0", "n128s3", "n128s4", "n256s3", "n256s3w0", "n256s4", "n64s4", "n64s3w0", "n64s4w0")
WGMMA_B1_SWEEP = ("m64n64s4", "m64n64s4w0", "m64n64s6", "m64n64s3w0", "m64n128s4", "m64n128s3w0")


# --gemv-sweep: thread layouts of the int4 GEMV ("l<lanes>u<unroll>r<rows>t<threads>") beside pick_config's
SWEEP_GEMV = ("l32u1r1t128", "l32u2r2t128", "l32u4r1t128", "l32u4r2t128", "l32u2r4t128", "l32u3r4t128",
              "l16u4r2t128", "l32u4r2t256", "l32u8r1t64", "l8u3r2t128", "l8u3r4t128", "l8u1r4t128")


# --tiles: wgmma GEMM tile widths against wave quantization at batch-32 shapes (96 and 192 columns: 2304 and 768
# wide outputs in whole waves), and "r" (tiles down the rows of a column band first: an LM head's w, larger than
# L2, read once instead of once per row band)
TILES_F16 = {(HID, HID): ("n64s4", "n96s3w0", "n96s4", "n192s3", "n192s4"),
             (HID, 3 * HID): ("n96s3w0", "n96s4", "n192s3", "n192s4"),
             (HID, FFN): ("n96s3w0", "n192s3"),
             (FFN, HID): ("n128s4", "n96s4", "n192s3", "n192s4")}
TILES_S8 = {(HID, HID): ("n96s3w0", "n96s4", "n192s3", "n192s4"),
            (HID, 3 * HID): ("n96s3w0", "n96s4", "n192s3", "n192s4"),
            (HID, FFN): ("n96s3w0", "n192s3"),
            (FFN, HID): ("n128s3w0", "n96s4", "n192s3", "n192s4")}
TILES_LM = ("n128s3r", "n128s4r", "n128s3w0r", "n192s3r", "n96s4r", "n96s3w0r")


def tile_cases() -> list[dict]:
    m, out = 32 * SEQ, []
    for (k, n), cfgs in TILES_F16.items():
        for cfg in ("auto",) + cfgs:
            out.append(dict(kind="dense_wgmma", m=m, n=n, k=k, act="gelu" if n == FFN else "none", cfg=cfg))
    for cfg in ("auto",) + TILES_LM:
        out.append(dict(kind="dense_wgmma", m=m, n=50304, k=HID, act="none", cfg=cfg, n_out=50257))
    epis = {(HID, HID): "dqrq16", (HID, 3 * HID): "rqf16", (HID, FFN): "rqgelu8", (FFN, HID): "dqrq16"}
    for (k, n), cfgs in TILES_S8.items():
        for cfg in ("auto",) + cfgs:
            out.append(dict(kind="qdense_wgmma", m=m, n=n, k=k, epi=epis[k, n], cfg=cfg))
    for cfg in ("auto",) + TILES_LM:
        out.append(dict(kind="qdense_wgmma", m=m, n=50304, k=HID, epi="dq32u", cfg=cfg))
    return out


def gemv_sweep_cases() -> list[dict]:
    out = []
    for k, n in ((HID, 3 * HID), (HID, 50304), (FFN, HID), (4096, 4096), (4096, 11008), (11008, 4096)):
        chunks = k // 32
        for sched in ("hwcomp",) + SWEEP_GEMV:
            if sched != "hwcomp" and int(sched[1:sched.index("u")]) not in (32, next(v for v in (32, 16, 8) if chunks % v == 0)):
                continue
            out.append(dict(kind="gemv_int4", m=1, n=n, k=k, sched=sched))
    return out


def sweep_cases() -> list[dict]:
    out = []
    for batch, cfgs in ((32, SWEEP_B32), (1, SWEEP_B1)):
        for k, n in ((HID, HID), (HID, FFN), (FFN, HID)):
            for cfg in cfgs:
                out.append(dict(kind="dense_f16", m=batch * SEQ, n=n, k=k, act="none", cfg=cfg))
                out.append(dict(kind="qdense_requant", m=batch * SEQ, n=n, k=k, cfg=cfg))
    return out


def _config(c: dict):
    if "cfg" not in c:
        return None
    from schedules._mma import MmaConfig
    return MmaConfig.parse(c["cfg"])


def case_name(c: dict) -> str:
    return c["kind"] + "_" + "_".join(f"{k}{v}" for k, v in c.items() if k != "kind")


def build_funcs(c: dict) -> dict:
    """name -> scheduled PrimFunc for one case."""
    from schedules import attention, dense, gelu, gemv_int4, layer_norm, qdense

    k = c["kind"]
    if k == "dense_wgmma":
        from schedules import dense_wgmma
        cfg = None if c["cfg"] == "auto" else dense_wgmma.WgmmaConfig.parse(c["cfg"])
        return {"main": dense_wgmma.dense_f16_wgmma(c["m"], c["n"], c["k"], c["act"], "n_out" not in c, config=cfg,
                                                    n_out=c.get("n_out"))}
    if k == "qdense_wgmma":
        from schedules import dense_wgmma, qdense_wgmma
        cfg = None if c["cfg"] == "auto" else dense_wgmma.WgmmaConfig.parse(c["cfg"])
        epi = c["epi"]
        if epi == "rqgelu8":  # requant, i-GELU, requant (a BERT FFN up-projection)
            f = qdense_wgmma.qdense_wgmma(c["m"], c["n"], c["k"], "requant", 3, config=cfg, gelu=IGELU)
        elif epi == "rqf16":  # int8 values written as fp16 (the integer attention's q/k/v)
            f = qdense_wgmma.qdense_wgmma(c["m"], c["n"], c["k"], "requant", 3, config=cfg, requant_as_f16=True)
        elif epi.startswith("rq"):
            f = qdense_wgmma.qdense_wgmma(c["m"], c["n"], c["k"], "requant", 3, out_bits=int(epi[2:]), config=cfg)
        elif epi.startswith("dqrq"):
            f = qdense_wgmma.qdense_wgmma(c["m"], c["n"], c["k"], "dequant", residual_quant=(int(epi[4:]), 0), config=cfg)
        else:  # dq32, or dq32u: float32 of the first 50257 columns (an LM head's logits)
            f = qdense_wgmma.qdense_wgmma(c["m"], c["n"], c["k"], "dequant", out_dtype="float32", config=cfg,
                                          n_out=50257 if epi == "dq32u" else None)
        return {"main": f}
    if k == "int_layer_norm":
        v = c["variant"]
        if v == "block_dq":
            return {"main": layer_norm.int_layer_norm(c["m"], c["c"], "int16", 5, 14, True, exact=True)}
        flags = v.partition("+")[2]
        return {"main": layer_norm.int_layer_norm_warp(c["m"], c["c"], "int16", 5, 14, v.startswith("dq"), -3,
                                                       quant_out=(8, 2) if "_q8" in v else None,
                                                       narrow="n" in flags)}
    if k == "dense_f16":
        return {"main": dense.dense_f16(c["m"], c["n"], c["k"], c["act"], config=_config(c))}
    if k.startswith("qdense"):
        return {"main": qdense.qdense(c["m"], c["n"], c["k"], k.split("_")[1], out_zero_point=3, config=_config(c))}
    if k == "layer_norm":
        return {"main": layer_norm.layer_norm(c["m"], c["c"])}
    if k == "add_layer_norm":
        return {"main": layer_norm.layer_norm(c["m"], c["c"], residual=True)}
    if k == "gelu":
        return {"main": gelu.gelu((c["m"], c["n"]))}
    if k == "gemv_int4":
        sched = c.get("sched", "hwcomp")
        cfg = gemv_int4.GemvInt4Config.parse(sched) if sched.startswith("l") else None
        return {"main": gemv_int4.gemv_int4(c["m"], c["n"], c["k"], GROUP, config=cfg,
                                            schedule="dlight" if sched == "dlight" else "hwcomp")}
    if k == "attention":
        ks = attention.attention(c["b"], c["s"], c["s"], c["h"], c["d"])
        return {"scores": ks.scores, "softmax": ks.softmax, "pv": ks.pv}
    raise ValueError(k)


def build_case(args: tuple[dict, str, str]) -> tuple[str, str | None, str | None, float]:
    """Worker: build one case's kernels into one exported library. Returns (name, path, error, seconds)."""
    c, arch, outdir = args
    t0 = time.time()
    name = case_name(c)
    try:
        import tvm

        from backends.tvm_cuda.build import cuda_target

        funcs = build_funcs(c)
        target = cuda_target(arch)
        mod = tvm.IRModule({n: f.with_attr("global_symbol", n) for n, f in funcs.items()})
        from backends.tvm_cuda.build import pass_context
        with target, pass_context():
            ex = tvm.compile(mod, target)
        path = os.path.join(outdir, name + ".so")
        ex.export_library(path)
        return name, path, None, time.time() - t0
    except Exception:  # noqa: BLE001 - reported per kernel in the JSON
        return name, None, traceback.format_exc()[-3000:], time.time() - t0


# ---------------------------------------------------------------- timing helpers (GPU only)

def time_torch(fn, number: int = 50, repeat: int = 7) -> float:
    import torch

    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    res = []
    for _ in range(repeat):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for _ in range(number):
            fn()
        e.record()
        torch.cuda.synchronize()
        res.append(s.elapsed_time(e) * 1e3 / number)
    return statistics.median(res)


def time_tvm(mod, fname: str, args, number: int = 50, repeat: int = 7) -> float:
    import tvm

    f = mod.time_evaluator(fname, tvm.cuda(0), number=number, repeat=repeat)
    r = f(*args)
    return statistics.median(list(r.results)) * 1e6


def time_rotating(mod, fname: str, arg_sets: list, rounds: int = 5) -> float:
    """Median per-call GPU time (CUDA events around ``len(arg_sets)`` back-to-back calls, each on its own
    buffers) so that every call reads its operands from HBM, not from L2."""
    import torch

    f = mod[fname]
    for a in arg_sets:
        f(*a)
    torch.cuda.synchronize()
    res = []
    for _ in range(rounds):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        for a in arg_sets:
            f(*a)
        e.record()
        torch.cuda.synchronize()
        res.append(s.elapsed_time(e) * 1e3 / len(arg_sets))
    return statistics.median(res)


def cold_sets(args, min_bytes: int = 256 << 20, most: int = 16) -> list:
    """``args`` and device copies of all of them (inputs and outputs), enough sets (>= 2) that together they
    exceed ``min_bytes`` (five times the 50 MB L2): a call rotating over them reads its operands from HBM, as a
    kernel inside a model does, where a sweep on one set of buffers times them L2-resident."""
    import numpy as np
    import tvm

    nbytes = sum(int(np.prod(a.shape)) * np.dtype(str(a.dtype)).itemsize for a in args)
    sets = [list(args)]
    for _ in range(max(2, min(most, -(-min_bytes // nbytes))) - 1):
        copy = []
        for a in args:
            b = tvm.runtime.empty(a.shape, a.dtype, a.device)
            a.copyto(b)
            copy.append(b)
        sets.append(copy)
    return sets


def cupti_kernel_us(fn, rounds: int = 3) -> float:
    """Mean GPU time per CUDA kernel launched by ``fn`` (CUPTI through torch.profiler)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(rounds):
            fn()
        torch.cuda.synchronize()
    times = [ev.device_time for ev in prof.events() if ev.device_type.name == "CUDA" and ev.device_time > 0]
    return statistics.mean(times) if times else float("nan")


def tinygemm_peer(x, codes, scale, zero, ref, copies: int) -> dict:
    """PyTorch's own int4 weight-only GEMV (``aten._weight_int4pack_mm``, the tinygemm kernel behind gpt-fast
    and torchao; bf16 activations, group-wise scale and zero): same weight codes, same rotation over copies."""
    import numpy as np
    import torch

    try:
        codes = codes.astype(np.int32)  # [N, K], 0..15
        w_u8 = torch.from_numpy(((codes[:, 0::2] << 4) | codes[:, 1::2]).astype(np.uint8)).cuda()
        wp = torch.ops.aten._convert_weight_to_int4pack(w_u8, 8)
        s = scale.astype(np.float32).T  # [K/g, N]
        z = (8.0 - zero.astype(np.float32).T) * s  # tinygemm: w = (code - 8) * scale + zero
        sz = torch.from_numpy(np.stack([s, z], -1)).to(torch.bfloat16).cuda().contiguous()
        xb = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16).cuda()
        fn = lambda wpi, szi: torch.ops.aten._weight_int4pack_mm(xb, wpi, GROUP, szi)  # noqa: E731
        out = fn(wp, sz).float().cpu().numpy()
        sets = [(wp.clone(), sz.clone()) for _ in range(copies)]
        return {"torch_int4_tinygemm_kernel_us": cupti_kernel_us(lambda: [fn(a, b) for a, b in sets]),
                "torch_int4_tinygemm_rel_err_vs_fp64": rel_err(out, ref)}
    except Exception as e:  # noqa: BLE001
        return {"torch_int4_tinygemm_error": f"{type(e).__name__}: {e}"[:300]}


def measured_hbm_tbps(nbytes: int = 1 << 30) -> float:
    """Device-to-device copy bandwidth (read + write bytes per second), the roofline's memory ceiling."""
    import torch

    a = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    return 2 * nbytes / (time_torch(lambda: b.copy_(a), number=10, repeat=5) * 1e-6) / 1e12


def rel_err(a, b) -> float:
    import numpy as np

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if not np.all(np.isfinite(a)):
        return float("inf")
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def run_case(c: dict, lib_path: str) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    import tvm

    from backends.tvm_cuda import roofline

    dev = tvm.cuda(0)
    mod = tvm.runtime.load_module(lib_path)
    rng = np.random.default_rng(hash(case_name(c)) % 2**32)
    T = lambda a: tvm.runtime.tensor(a, dev)  # noqa: E731
    G = lambda a: torch.from_numpy(np.ascontiguousarray(a)).cuda()  # noqa: E731
    k = c["kind"]
    r: dict = {}
    if k in ("dense_f16", "dense_wgmma"):
        m, n, kk = c["m"], c["n"], c["k"]
        x = rng.standard_normal((m, kk)).astype(np.float16)
        w = (rng.standard_normal((kk, n)) / math.sqrt(kk)).astype(np.float16)
        b = rng.standard_normal(n).astype(np.float16)
        y = T(np.full((m, n), np.nan, np.float16))
        args = [T(x), T(np.ascontiguousarray(w.T) if k == "dense_wgmma" else w), T(b), y]
        if "n_out" in c:  # fp32 logits of the first n_out columns, no bias
            b[:] = 0
            y = T(np.full((m, c["n_out"]), np.nan, np.float32))
            args = [args[0], args[1], y]
        mod["main"](*args)
        xt, wt, bt = G(x), G(w), G(b)
        tf = (lambda: F.gelu(torch.addmm(bt, xt, wt))) if c["act"] == "gelu" else (lambda: torch.addmm(bt, xt, wt))
        ref = (x.astype(np.float64) @ w.astype(np.float64)) + b.astype(np.float64)
        if c["act"] == "gelu":
            import scipy.special as sp
            ref = 0.5 * ref * (1 + sp.erf(ref / math.sqrt(2)))
        r["rel_err_vs_fp64"] = rel_err(y.numpy(), ref[:, :y.shape[1]])
        r["torch_rel_err_vs_fp64"] = rel_err(tf().cpu().numpy(), ref)
        r["tvm_us"] = time_tvm(mod, "main", args)
        r["tvm_cold_us"] = time_rotating(mod, "main", cold_sets(args))  # operands from HBM, as in a model
        r["torch_us"] = time_torch(tf)
        r["torch_matmul_only_us"] = time_torch(lambda: xt @ wt)
        r["roofline"] = roofline.dense_cost(m, n, kk).as_dict(r["tvm_us"])
    elif k == "qdense_wgmma":  # bit-exact against numpy's int64 / IEEE float32 epilogue
        m, n, kk, epi = c["m"], c["n"], c["k"], c["epi"]
        x = rng.integers(-128, 128, (m, kk), dtype=np.int8)
        w_nk = rng.integers(-127, 128, (n, kk), dtype=np.int8)
        bias = rng.integers(-5000, 5000, n).astype(np.int32)
        xt, wt = G(x), G(w_nk)
        acc = (torch._int_mm(xt, wt.t().contiguous()).cpu().numpy().astype(np.int64) + bias).astype(np.int32)
        if epi.startswith("rq"):
            from hwcomp.ops.intmath import int_gelu, quantize_multiplier, requantize
            bits = 8 if epi in ("rqgelu8", "rqf16") else int(epi[2:])
            mult, shift = quantize_multiplier(rng.uniform(1e-4, 4e-3, n))
            y = T(np.full((m, n), 77, f"int{bits}") if epi != "rqf16" else np.full((m, n), np.nan, np.float16))
            args = [T(x), T(w_nk), T(bias), T(mult.astype(np.int32)), T(shift.astype(np.int32)), y]
            lim = (1 << (bits - 1))
            if epi == "rqgelu8":
                gm, gs = quantize_multiplier(rng.uniform(1e-5, 1e-4, n))
                args[5:] = [T(gm.astype(np.int32)), T(gs.astype(np.int32)), y]
                g = int_gelu(requantize(acc, mult, shift, 0, -128, 127), *IGELU)
                ref = requantize(g, gm, gs, 3, -128, 127).astype(np.int8)
            elif epi == "rqf16":
                ref = requantize(acc, mult, shift, 3, -128, 127).astype(np.float16)
            else:
                ref = requantize(acc, mult, shift, 3, -lim, lim - 1).astype(f"int{bits}")
        elif epi.startswith("dqrq"):
            bits = int(epi[4:])
            scale = rng.uniform(1e-5, 1e-4, n).astype(np.float32)
            res = rng.standard_normal((m, n)).astype(np.float32)
            qscale = rng.uniform(1e-2, 5e-2, n).astype(np.float32)
            y = T(np.full((m, n), 77, f"int{bits}"))
            args = [T(x), T(w_nk), T(bias), T(scale), T(res), T(qscale), y]
            lim = (1 << (bits - 1))
            v = (acc.astype(np.float32) * scale + res) / qscale
            ref = np.clip(np.rint(v), -lim, lim - 1).astype(f"int{bits}")
        else:
            scale = rng.uniform(1e-5, 1e-4, n).astype(np.float32)
            n_out = 50257 if epi == "dq32u" else n
            y = T(np.full((m, n_out), np.nan, np.float32))
            args = [T(x), T(w_nk), T(bias), T(scale), y]
            ref = (acc.astype(np.float32) * scale)[:, :n_out]
        mod["main"](*args)
        got = y.numpy()
        r["exact"] = bool(np.array_equal(got, ref))
        r["mismatches"] = int((got != ref).sum())
        wkn = wt.t().contiguous()
        r["torch_int_mm_only_us"] = time_torch(lambda: torch._int_mm(xt, wkn))
        xh, wh = xt.half(), wkn.half()
        r["torch_f16_mm_us"] = time_torch(lambda: xh @ wh)
        r["tvm_us"] = time_tvm(mod, "main", args)
        r["tvm_cold_us"] = time_rotating(mod, "main", cold_sets(args))  # operands from HBM, as in a model
        r["roofline"] = roofline.qdense_cost(m, n, kk, "dequant" if epi.startswith("dq") else "requant").as_dict(r["tvm_us"])
    elif k == "int_layer_norm":  # bit-exact against hwcomp/ops/intmath.py and numpy float32
        from hwcomp.ops.intmath import int_layer_norm, quantize_multiplier, requantize
        from hwcomp.schedules.cuda_device_functions import quantize_reciprocal
        m, cc, v = c["m"], c["c"], c["variant"]
        x = rng.integers(-20000, 20000, (m, cc)).astype(np.int16)
        x[::7] //= 50  # rows of small variance too
        x[3], x[5] = 1234, -20000  # a constant row (variance eps only) and a lone spike (|z| at its bound)
        x[5, 7] = 20000
        gamma = rng.integers(-3000, 3000, cc).astype(np.int32)
        beta = rng.integers(-10**6, 10**6, cc).astype(np.int32)
        acc = int_layer_norm(x, gamma, beta, 5, 14)
        if "dq" in v:
            scale = rng.uniform(1e-7, 1e-6, cc).astype(np.float32)
            ref = acc.astype(np.float32) * scale
            y = T(np.full((m, cc), np.nan, np.float32))
            args = [T(x), T(gamma), T(beta), T(scale)]
            if "_q8" in v:
                qscale = rng.uniform(0.01, 0.05, cc).astype(np.float32)
                refq = np.clip(np.rint(ref / qscale) + np.float32(2), -128, 127).astype(np.int8)
                yq = T(np.full((m, cc), 77, np.int8))
                args += [T(qscale), T(quantize_reciprocal(qscale)), y, yq]
            else:
                args += [y]
        else:
            mult, shift = quantize_multiplier(rng.uniform(1e-6, 1e-5, cc))
            ref = requantize(acc, mult, shift, -3)
            y = T(np.full((m, cc), 77, np.int8))
            args = [T(x), T(gamma), T(beta), T(mult.astype(np.int32)), T(shift.astype(np.int32)), y]
        mod["main"](*args)
        r["exact"] = bool(np.array_equal(y.numpy(), ref))
        r["mismatches"] = int((y.numpy() != ref).sum())
        if "_q8" in v:
            r["exact_q"] = bool(np.array_equal(yq.numpy(), refq))
            r["mismatches_q"] = int((yq.numpy() != refq).sum())
            r["q_saturated_frac"] = float(np.mean(np.abs(refq.astype(int)) >= 127))
        r["tvm_us"] = time_tvm(mod, "main", args)
        nbytes = x.nbytes + sum(a.numpy().nbytes for a in args[-2:] if a is not None)
        r["gbps"] = nbytes / r["tvm_us"] / 1e3
    elif k.startswith("qdense"):
        m, n, kk = c["m"], c["n"], c["k"]
        x = rng.integers(-128, 128, (m, kk), dtype=np.int8)
        w_nk = rng.integers(-127, 128, (n, kk), dtype=np.int8)
        bias = rng.integers(-5000, 5000, n).astype(np.int32)
        xt, wt = G(x), G(w_nk)
        acc = torch._int_mm(xt, wt.t().contiguous()).to(torch.int64) + G(bias).to(torch.int64)
        if k == "qdense_requant":
            from hwcomp.ops.intmath import quantize_multiplier
            mult, shift = quantize_multiplier(rng.uniform(1e-4, 4e-3, n))
            y = T(np.full((m, n), 77, np.int8))
            args = [T(x), T(w_nk), T(bias), T(mult), T(shift), y]
            mod["main"](*args)
            mt, st = G(mult).to(torch.int64), G(shift).to(torch.int64)
            ref = torch.clamp(((acc * mt + (1 << (st - 1))) >> st) + 3, -128, 127).to(torch.int8).cpu().numpy()
            r["exact"] = bool(np.array_equal(y.numpy(), ref))
            r["mismatches"] = int((y.numpy() != ref).sum())
            wkn = wt.t().contiguous()
            bt = G(bias)

            def torch_full():
                a = torch._int_mm(xt, wkn).to(torch.int64) + bt
                return torch.clamp(((a * mt + (1 << (st - 1))) >> st) + 3, -128, 127).to(torch.int8)
            r["torch_us"] = time_torch(torch_full)
            r["torch_note"] = "torch._int_mm + requant in torch int64 (unfused)"
        else:
            scale = rng.uniform(1e-5, 1e-4, n).astype(np.float32)
            y = T(np.full((m, n), np.nan, np.float16))
            args = [T(x), T(w_nk), T(bias), T(scale), y]
            mod["main"](*args)
            ref = (acc.to(torch.float64) * G(scale).to(torch.float64)).cpu().numpy()
            r["rel_err_vs_fp64"] = rel_err(y.numpy(), ref[:, :y.shape[1]])
            wkn = wt.t().contiguous()
            bt, sct = G(bias), G(scale)
            r["torch_us"] = time_torch(lambda: ((torch._int_mm(xt, wkn) + bt).float() * sct).half())
            r["torch_note"] = "torch._int_mm + dequant in torch (unfused)"
        wkn = wt.t().contiguous()
        r["torch_int_mm_only_us"] = time_torch(lambda: torch._int_mm(xt, wkn))
        r["tvm_us"] = time_tvm(mod, "main", args)
        r["roofline"] = roofline.qdense_cost(m, n, kk, k.split("_")[1]).as_dict(r["tvm_us"])
    elif k in ("layer_norm", "add_layer_norm"):
        m, cc = c["m"], c["c"]
        x = rng.standard_normal((m, cc)).astype(np.float16)
        res = rng.standard_normal((m, cc)).astype(np.float16)
        g = rng.standard_normal(cc).astype(np.float16)
        be = rng.standard_normal(cc).astype(np.float16)
        y = T(np.full((m, cc), np.nan, np.float16))
        xt, rt, gt, bt = G(x), G(res), G(g), G(be)
        if k == "layer_norm":
            args = [T(x), T(g), T(be), y]
            s64 = x.astype(np.float64)
            tf = lambda: F.layer_norm(xt, (cc,), gt, bt, 1e-5)  # noqa: E731
        else:
            s_out = T(np.full((m, cc), np.nan, np.float16))
            args = [T(x), T(res), T(g), T(be), y, s_out]
            s16 = (x + res)
            s64 = s16.astype(np.float64)

            def tf():
                s = xt + rt
                return F.layer_norm(s, (cc,), gt, bt, 1e-5), s
        mod["main"](*args)
        mu = s64.mean(-1, keepdims=True)
        ref = (s64 - mu) / np.sqrt(((s64 - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * g + be
        r["rel_err_vs_fp64"] = rel_err(y.numpy(), ref[:, :y.shape[1]])
        if k == "add_layer_norm":
            r["sum_exact"] = bool(np.array_equal(s_out.numpy(), s16))
        r["tvm_us"] = time_tvm(mod, "main", args)
        r["torch_us"] = time_torch(tf)
        r["roofline"] = roofline.layer_norm_cost(m, cc, k == "add_layer_norm").as_dict(r["tvm_us"])
    elif k == "gelu":
        m, n = c["m"], c["n"]
        x = rng.standard_normal((m, n)).astype(np.float16)
        y = T(np.full((m, n), np.nan, np.float16))
        args = [T(x), y]
        mod["main"](*args)
        import scipy.special as sp
        x64 = x.astype(np.float64)
        r["rel_err_vs_fp64"] = rel_err(y.numpy(), 0.5 * x64 * (1 + sp.erf(x64 / math.sqrt(2))))
        xt = G(x)
        r["tvm_us"] = time_tvm(mod, "main", args)
        r["torch_us"] = time_torch(lambda: F.gelu(xt))
        r["roofline"] = roofline.gelu_cost(m * n).as_dict(r["tvm_us"])
    elif k == "gemv_int4":
        from schedules.gemv_int4 import pack_int4, unpack_codes, unpack_int4
        m, n, kk = c["m"], c["n"], c["k"]
        w = (rng.standard_normal((kk, n)) / math.sqrt(kk)).astype(np.float32)
        layout = "sequential" if c.get("sched") == "dlight" else "pairs"  # dlight's definition: plain order
        packed, scale, zero = pack_int4(w, GROUP, layout)
        x = rng.standard_normal((m, kk)).astype(np.float16)
        bias = np.zeros(n, np.float16)  # the epilogue's bias (zero: the peers have none)
        y = T(np.full((m, n), np.nan, np.float16))
        args = [T(x), T(packed), T(scale), T(zero), T(bias), y]
        mod["main"](*args)
        wdq = unpack_int4(packed, scale, zero, GROUP, layout)  # [N, K]
        ref = x.astype(np.float64) @ wdq.T.astype(np.float64)
        r["rel_err_vs_fp64"] = rel_err(y.numpy(), ref[:, :y.shape[1]])
        xt, wt = G(x), G(wdq.T.astype(np.float16))
        r["tvm_l2_resident_us"] = time_tvm(mod, "main", args)
        # HBM-bound timing: rotate over enough weight copies (>= 256 MB) that none stays in the 50 MB L2
        copies = max(2, min(64, -(-(256 << 20) // packed.nbytes)))
        sets = [[T(x), T(packed.copy()), T(scale.copy()), T(zero.copy()), T(bias), y] for _ in range(copies)]
        r["weight_copies"] = copies
        r["tvm_us"] = time_rotating(mod, "main", sets)
        # the same rotation under CUPTI: GPU time of the kernel alone (no host launch cost between calls)
        r["kernel_us"] = cupti_kernel_us(lambda: [mod["main"](*a) for a in sets])
        r["torch_us"] = time_torch(lambda: xt @ wt)
        r["torch_note"] = "torch fp16 GEMV with the dequantized weight (fp16 weight bytes = 4x int4)"
        r |= tinygemm_peer(x, unpack_codes(packed, layout), scale, zero, ref, copies)
        r["roofline"] = roofline.gemv_int4_cost(m, n, kk, GROUP).as_dict(r["kernel_us"])
    elif k == "attention":
        b, s, h, d = c["b"], c["s"], c["h"], c["d"]
        q, kx, v = (rng.standard_normal((b, s, h * d)).astype(np.float16) for _ in range(3))
        mask = np.zeros((b, 1, s), np.float32)
        mask[:, :, s - s // 4:] = -10000.0  # padded keys, BERT style
        scores = T(np.full((b, h, s, s), np.nan, np.float32))
        scores2d = scores._create_view((b * h * s, s)) if hasattr(scores, "_create_view") else None
        probs = T(np.full((b, h, s, s), np.nan, np.float16))
        probs_flat = None
        out = T(np.full((b, s, h * d), np.nan, np.float16))
        tq, tk, tv, tm = T(q), T(kx), T(v), T(mask)
        if scores2d is None:
            raise RuntimeError("tvm Tensor has no _create_view; cannot reshape without copy")
        probs_flat = probs._create_view((b * h * s, s))

        def run_tvm():
            mod["scores"](tq, tk, tm, scores)
            mod["softmax"](scores2d, probs_flat)
            mod["pv"](probs, tv, out)
        run_tvm()
        q64 = q.astype(np.float64).reshape(b, s, h, d).transpose(0, 2, 1, 3)
        k64 = kx.astype(np.float64).reshape(b, s, h, d).transpose(0, 2, 1, 3)
        v64 = v.astype(np.float64).reshape(b, s, h, d).transpose(0, 2, 1, 3)
        sc = q64 @ k64.transpose(0, 1, 3, 2) / math.sqrt(d) + mask[:, None, :, :]
        p = np.exp(sc - sc.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        ref = (p @ v64).transpose(0, 2, 1, 3).reshape(b, s, h * d)
        r["rel_err_vs_fp64"] = rel_err(out.numpy(), ref)
        tqt, tkt, tvt = (G(a).view(b, s, h, d).transpose(1, 2) for a in (q, kx, v))
        tmask = G(mask).view(b, 1, 1, s).half()

        def tf():
            o = F.scaled_dot_product_attention(tqt, tkt, tvt, attn_mask=tmask)
            return o.transpose(1, 2).reshape(b, s, h * d)
        r["torch_rel_err_vs_fp64"] = rel_err(tf().cpu().numpy(), ref)
        r["tvm_scores_us"] = time_tvm(mod, "scores", [tq, tk, tm, scores])
        r["tvm_softmax_us"] = time_tvm(mod, "softmax", [scores2d, probs_flat])
        r["tvm_pv_us"] = time_tvm(mod, "pv", [probs, tv, out])
        r["tvm_us"] = r["tvm_scores_us"] + r["tvm_softmax_us"] + r["tvm_pv_us"]
        r["torch_us"] = time_torch(tf)
        r["torch_note"] = "F.scaled_dot_product_attention, fp16 additive mask, incl. head merge reshape"
        r["roofline"] = roofline.attention_cost(b, s, s, h, d).as_dict(r["tvm_us"])
    if "tvm_us" in r and "torch_us" in r:
        r["speedup_vs_torch"] = r["torch_us"] / r["tvm_us"]
    return r


def sass_counts(lib_path: str, arch: str) -> dict:
    """HMMA/IMMA/LDSM counts in the SASS of the case's kernels (cuobjdump on the device)."""
    import subprocess

    import tvm

    from backends.tvm_cuda.verify import compile_fatbin, cuda_source
    src = cuda_source(tvm.runtime.load_module(lib_path))
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "k.fatbin")
        Path(p).write_bytes(compile_fatbin(src, arch))
        sass = subprocess.run(["cuobjdump", "-sass", p], capture_output=True, text=True).stdout
    return {op: sass.count(op) for op in ("HMMA", "IMMA", "LDSM", "HGMMA", "LDL", "STL")}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--dry", action="store_true", help="build and export only (no GPU)")
    ap.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--only", default="", help="comma-separated kinds")
    ap.add_argument("--sweep", action="store_true", help="GEMM tile configurations at BERT-base batch-32 shapes")
    ap.add_argument("--tiles", action="store_true", help="wgmma GEMM tile widths and row-first order, batch 32")
    ap.add_argument("--gemv-sweep", action="store_true", help="int4 GEMV thread layouts at decode shapes")
    a = ap.parse_args()
    if not a.dry:
        try:
            import cuda.bindings  # noqa: F401  (NVRTC available)
        except ImportError:
            os.environ.setdefault("TVM_CUDA_COMPILE_MODE", "nvcc")
    todo = [c for c in (sweep_cases() if a.sweep else tile_cases() if a.tiles else gemv_sweep_cases() if a.gemv_sweep else cases()) if not a.only or c["kind"] in a.only.split(",")]
    libdir = tempfile.mkdtemp(prefix="hwcomp_kernels_")
    from backends.tvm_cuda.startup import import_tensor_intrinsics
    import_tensor_intrinsics()  # once, before the workers fork (slow to import in each)
    t0 = time.time()
    with mp.get_context("fork").Pool(a.jobs) as pool:
        built = pool.map(build_case, [(c, a.arch, libdir) for c in todo], chunksize=1)
    print(f"built {sum(p is not None for _, p, _, _ in built)}/{len(built)} in {time.time() - t0:.1f}s", flush=True)
    results = {"arch": a.arch, "build_seconds": time.time() - t0, "cases": []}
    if not a.dry:
        import torch
        results["device"] = torch.cuda.get_device_name(0)
        results["torch"] = torch.__version__
        results["measured_copy_tbps"] = measured_hbm_tbps()
    sass_done = set()
    for c, (name, path, err, secs) in zip(todo, built):
        entry = {"name": name, **c, "build_s": round(secs, 2)}
        if err:
            entry["build_error"] = err
        elif not a.dry:
            try:
                entry |= run_case(c, path)
            except Exception:  # noqa: BLE001
                entry["run_error"] = traceback.format_exc()[-3000:]
            if c["kind"] not in sass_done:
                sass_done.add(c["kind"])
                try:
                    entry["sass"] = sass_counts(path, a.arch)
                except Exception as e:  # noqa: BLE001
                    entry["sass_error"] = str(e)[-500:]
        results["cases"].append(entry)
        short = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in entry.items()
                 if k in ("tvm_us", "tvm_cold_us", "torch_us", "speedup_vs_torch", "rel_err_vs_fp64", "exact", "sass")}
        print(name, "BUILD-ERR" if err else "", "RUN-ERR" if "run_error" in entry else "", short, flush=True)
        if err or "run_error" in entry:
            print((err or entry["run_error"])[-1200:], flush=True)
        Path(a.out).mkdir(parents=True, exist_ok=True)
        out = Path(a.out) / "kernels.json"
        out.write_text(json.dumps(results, indent=1, default=str))
    print("wrote", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
