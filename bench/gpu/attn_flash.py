"""Device benchmark: hwcomp's single-kernel flash attention (schedules/flash_attention.py) against its
three-kernel attention (schedules/attention.py) and PyTorch's SDPA (flash backend) in the same run, at the
BERT-base / GPT-2 small / MiniLM shapes (seq 128). Every output is checked against numpy in float64.

    python bench/gpu/attn_flash.py --out $OUT    # writes attn_flash.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def numpy_attention(q, k, v, h, d, scale, mask, causal, offs=(0, 0, 0)):
    b, s_q = q.shape[:2]
    s_k = k.shape[1]
    qh = q[..., offs[0]:offs[0] + h * d].astype(np.float64).reshape(b, s_q, h, d).transpose(0, 2, 1, 3)
    kh = k[..., offs[1]:offs[1] + h * d].astype(np.float64).reshape(b, s_k, h, d).transpose(0, 2, 1, 3)
    vh = v[..., offs[2]:offs[2] + h * d].astype(np.float64).reshape(b, s_k, h, d).transpose(0, 2, 1, 3)
    s = qh @ kh.transpose(0, 1, 3, 2) * scale
    if mask is not None:
        s = s + mask[:, None].astype(np.float64)
    if causal:
        s = np.where(np.arange(s_k)[None, :] > np.arange(s_q)[:, None] + (s_k - s_q), -3.4e38, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ vh).transpose(0, 2, 1, 3).reshape(b, s_q, h * d)


def cases():
    out = []
    for b in (1, 32):
        out.append(dict(model="bert-base", b=b, s=128, h=12, d=64, mask="padding", causal=False, fused=True))
        out.append(dict(model="gpt2-small", b=b, s=128, h=12, d=64, mask="causal+padding", causal=False, fused=True))
        out.append(dict(model="minilm-l6", b=b, s=128, h=12, d=32, mask="padding", causal=False, fused=False))
    out.append(dict(model="causal-attr", b=4, s=128, h=4, d=128, mask=None, causal=True, fused=False))
    # partial last tiles (the _t variant): sequence lengths that are not multiples of the 64-key / query tiles
    out.append(dict(model="bert-base", b=8, s=100, h=12, d=64, mask="padding", causal=False, fused=True))
    out.append(dict(model="gpt2-small", b=2, s=77, h=12, d=64, mask="causal+padding", causal=False, fused=True))
    out.append(dict(model="minilm-l6", b=4, s=50, h=12, d=32, mask="padding", causal=False, fused=False))
    out.append(dict(model="causal-attr", b=2, s=7, sk=130, h=4, d=128, mask=None, causal=True, fused=False))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.environ.get("OUT", "."))
    a = ap.parse_args()
    import torch
    import tvm
    from hwcomp.backends.tvm_cuda.build import build_kernel
    from hwcomp.backends.tvm_cuda.startup import import_tensor_intrinsics
    import_tensor_intrinsics()
    from hwcomp.schedules import attention as att, flash_attention as fa
    sys.path.insert(0, os.path.dirname(__file__))
    from kernels import time_torch, time_tvm

    import tempfile
    tmp = tempfile.mkdtemp()

    def load(f, tag=[0]):  # build, export, load: the module as hwcomp run would
        tag[0] += 1
        path = os.path.join(tmp, f"k{tag[0]}.so")
        build_kernel(f, "main").export_library(path)
        return tvm.runtime.load_module(path)

    dev = tvm.cuda(0)
    T = lambda x: tvm.runtime.tensor(x, dev)  # noqa: E731
    rng = np.random.default_rng(0)
    results = {"device": torch.cuda.get_device_name(), "cases": []}
    for c in cases():
        b, s, h, d = c["b"], c["s"], c["h"], c["d"]
        sk = c.get("sk", s)
        hd, scale = h * d, d ** -0.5
        width = 3 * hd if c["fused"] else hd
        qkv = rng.standard_normal((b, s, 3 * hd)).astype(np.float16)
        q, k, v = (np.ascontiguousarray(qkv[..., i * hd:(i + 1) * hd]) for i in range(3))
        if sk != s:
            k, v = (rng.standard_normal((b, sk, hd)).astype(np.float16) for _ in range(2))
        mask, mb, mq = None, b, 1
        if c["mask"] == "padding":
            mask = np.zeros((b, 1, sk), np.float32)
            mask[:, :, sk - sk // 4:] = -3.4e38
        elif c["mask"] == "causal+padding":  # GPT-2's Where(causal & padding) mask, one per batch row
            keep = np.tril(np.ones((s, s), bool))[None] & (np.arange(s) < s - s // 8)[None, None, :]
            mask = np.where(keep, 0.0, -3.4e38).astype(np.float32).repeat(b, 0)
            mq = s
        ref = numpy_attention(q, k, v, h, d, scale, mask, c["causal"])
        r = dict(c)
        out = T(np.zeros((b, s, hd), np.float16))
        for warps in (1, 2, 4, 8):
            cfg = fa.FlashConfig(warps)
            for fused in ((False, True) if c["fused"] else (False,)):
                f = fa.attention_flash(b, s, sk, h, d, scale, c["causal"], mask is not None, mb, mq, fused, cfg)
                ex = load(f)
                args = ([T(qkv)] if fused else [T(q), T(k), T(v)]) + ([T(mask)] if mask is not None else []) + [out]
                ex["main"](*args)
                err = float(np.abs(out.numpy().astype(np.float64) - ref).max())
                key = f"flash_w{warps}{'_fused' if fused else ''}"
                r[key + "_us"] = time_tvm(ex, "main", args)
                r[key + "_err"] = err
        r["flash_picked"] = str(fa.pick_config(b, h, s).warps)
        r["flash_tail_variant"] = fa.has_tail(s, sk, fa.pick_config(b, h, s))
        try:
            r.update(three_kernel(c, q, k, v, mask, mb, mq, ref, load, T, dev, att, time_tvm))
        except Exception as e:  # noqa: BLE001 - the three-kernel path needs multiples of 16
            r["three_kernel_error"] = str(e).splitlines()[-1][-300:]
        r.update(torch_sdpa(c, q, k, v, mask, scale, ref, time_torch))
        best = min(v_ for k_, v_ in r.items() if k_.startswith("flash_w") and k_.endswith("_us"))
        r["flash_best_vs_sdpa"] = best / r["torch_sdpa_us"]
        if "three_kernel_us" in r:
            r["flash_best_vs_three"] = best / r["three_kernel_us"]
        print(json.dumps(r), flush=True)
        results["cases"].append(r)
    path = os.path.join(a.out, "attn_flash.json")
    with open(path, "w") as fh:
        json.dump(results, fh, indent=1)
    print("wrote", path)
    return 0


def three_kernel(c, q, k, v, mask, mb, mq, ref, load, T, dev, att, time_tvm) -> dict:
    """hwcomp's three-kernel attention (scores, softmax, PV) on the same inputs."""
    b, s_q, s_k, hd = q.shape[0], q.shape[1], k.shape[1], q.shape[2]
    h, d = c["h"], c["d"]
    K = att.attention(b, s_q, s_k, h, d, d ** -0.5, c["causal"], mask is not None, mask_batch=mb, mask_rows=mq)
    exs = [load(f) for f in (K.scores, K.softmax, K.pv)]
    sc = T(np.zeros((b, h, s_q, s_k), np.float32))
    pr = T(np.zeros((b * h * s_q, s_k), np.float16))
    o3 = T(np.zeros((b, s_q, hd), np.float16))
    tv = T(v)
    targs = [T(q), T(k)] + ([T(mask)] if mask is not None else []) + [sc]
    sargs = [sc._create_view((b * h * s_q, s_k)), pr]
    pargs = [pr._create_view((b, h, s_q, s_k)), tv, o3]
    for e, x in zip(exs, (targs, sargs, pargs)):
        e["main"](*x)
    dev.sync()
    return {"three_kernel_err": float(np.abs(o3.numpy().astype(np.float64) - ref).max()),
            "three_kernel_us": sum(time_tvm(e, "main", x) for e, x in zip(exs, (targs, sargs, pargs)))}


def torch_sdpa(c, q, k, v, mask, scale, ref, time_torch) -> dict:
    """PyTorch SDPA on the same inputs (heads transposed, as a model calls it)."""
    import torch
    b, s_q, s_k, hd = q.shape[0], q.shape[1], k.shape[1], q.shape[2]
    h, d = c["h"], c["d"]
    with torch.no_grad():
        tq, tk, tv = (torch.from_numpy(x).cuda().view(b, -1, h, d).transpose(1, 2) for x in (q, k, v))
        tm = None if mask is None else torch.from_numpy(mask).cuda().half().clamp(min=-65504)[:, None]
        sdpa = torch.nn.functional.scaled_dot_product_attention
        if tm is None and c["causal"] and s_q != s_k:  # SDPA's is_causal aligns top-left: give the mask
            keep = torch.ones(s_q, s_k, dtype=torch.bool, device="cuda").tril(s_k - s_q)
            fn = lambda: sdpa(tq, tk, tv, attn_mask=keep, scale=scale)  # noqa: E731
        elif tm is None:
            fn = lambda: sdpa(tq, tk, tv, is_causal=c["causal"], scale=scale)  # noqa: E731
        else:
            fn = lambda: sdpa(tq, tk, tv, attn_mask=tm, scale=scale)  # noqa: E731
        err = float(np.abs(fn().transpose(1, 2).reshape(b, s_q, hd).float().cpu().numpy() - ref).max())
        return {"torch_sdpa_err": err, "torch_sdpa_us": time_torch(fn)}


if __name__ == "__main__":
    sys.exit(main())
