"""End-to-end GPU benchmark, run on the device machine: hwcomp (fp16; int8 where it lowers) vs PyTorch
eager vs torch.compile(mode="reduce-overhead") vs stock TVM (its ONNX importer + dlight), BERT-base and
GPT-2 small, seq 128, batch 1 and 32. Median of >= 30 timed runs after warm-up (CUDA events for torch,
TVM's time_evaluator -- device-synchronised -- for TVM). Also checks hwcomp's GPU output against its
interpreter. Writes one JSON file.

    python bench/gpu/e2e.py --out $OUT/e2e.json [--models bert-base,gpt2-small] [--batches 1,32]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

RUNS, WARMUP = 50, 10
PROFILE = False


def cuda_time_ms(fn, runs=RUNS, warmup=WARMUP) -> float:
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def tvm_time_ms(vm, dev, args, runs=RUNS) -> float:
    vm.set_input("main", *args)
    vm.invoke_stateful("main")
    dev.sync()
    te = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=runs, min_repeat_ms=0)
    res = te("main")
    return float(np.median(np.asarray(res.results))) * 1e3


def bench_torch(name, batch, seq, feeds, dtype):
    import torch
    from hwcomp import zoo
    kw = {"lm_head": True} if name.startswith("gpt2") else {}
    mod, in_names, _ = zoo.build_torch(name, attn="sdpa", **kw)
    mod = mod.to("cuda", dtype=dtype).eval()
    args = [torch.from_numpy(feeds[n]).cuda() for n in in_names]
    out = {}
    with torch.inference_mode():
        out["eager_ms"] = cuda_time_ms(lambda: mod(*args))
        torch._dynamo.reset()
        t = time.time()
        cm = torch.compile(mod, mode="reduce-overhead")
        for _ in range(3):
            cm(*args)
        out["compile_s"] = time.time() - t
        out["torch_compile_ms"] = cuda_time_ms(lambda: cm(*args))
        if PROFILE:  # torch.compile's kernels (its CUDA graph's kernels, as CUPTI records them)
            out["profile_top"] = kernel_profile(lambda: cm(*args))
        torch._dynamo.reset()
    return out


def bench_hwcomp(name, batch, seq, feeds, onnx_path, precision, quant, check, use_schedules=True):
    import tvm
    from tvm import relax
    import hwcomp
    from hwcomp.passes import run_pipeline
    from hwcomp.backends.tvm_cuda.compile import build
    t = time.time()
    g = hwcomp.load_onnx(onnx_path, {k: v.shape for k, v in feeds.items()})
    g = run_pipeline(g, "cuda")
    if quant != "none":
        from hwcomp import zoo
        from hwcomp.passes import PassContext
        # calibration: two more random-token batches of the same shape (the models are random-init; the
        # zoo's calibration sentences need MiniLM's tokenizer, which the device image does not have)
        kw = {"lm_head": True} if name.startswith("gpt2") else {}
        calib = [zoo.sample_inputs(name, batch=batch, seq=seq, seed=s, **kw) for s in (1, 2)]
        passes = {"int8": ["quantize_int8", "integer_nonlinear"], "w8": ["quantize_w8"], "w4": ["quantize_w4"]}[quant]
        opts = {"calibrator": "minmax", "calib_inputs": calib} if quant == "int8" else {}  # w4/w8: round-to-nearest
        g = run_pipeline(g, passes, PassContext(options=opts))
        res_q = {"quantize_s": round(time.time() - t, 1)}
    ex, lm = build(g, "cuda", "sm_90", precision, use_schedules=use_schedules)
    res = {"compile_s": time.time() - t, "scheduled_kernels": len(lm.kernel_sources)}
    if quant != "none":
        res |= res_q
    dev = tvm.cuda(0)
    vm = relax.VirtualMachine(ex, dev)
    args = [tvm.runtime.tensor(feeds[i], dev) for i in lm.input_names] + \
           [tvm.runtime.tensor(lm.params[k], dev) for k in lm.param_names]
    res["latency_ms"] = tvm_time_ms(vm, dev, args)
    if PROFILE:  # per-kernel GPU time (CUPTI) of a build without the CUDA graph
        ex_p, _ = build(g, "cuda", "sm_90", precision, use_schedules=use_schedules, cuda_graph=False)
        vm_p = relax.VirtualMachine(ex_p, dev)
        res["profile_top"] = kernel_profile(lambda: vm_p["main"](*args))
    if check:
        out = vm["main"](*args)
        got = (out if len(g.outputs) == 1 else out[0]).numpy()
        ref = hwcomp.run(g, feeds)[g.outputs[0]]
        res["max_abs_err_vs_interpreter"] = float(np.abs(got.astype(np.float64) - ref).max())
        res["ref_max_abs"] = float(np.abs(ref).max())
        res["bit_exact"] = bool(np.array_equal(got, ref))
    return res


def kernel_profile(fn, repeat: int = 5, n: int = 48) -> dict:
    """GPU time of each CUDA kernel (by name, from CUPTI through torch.profiler) per call of ``fn`` (one
    forward pass: hwcomp's build without the CUDA graph, or torch.compile's graph), the ``n`` largest first,
    with the sum of all kernels: against the CUDA-graph latency, that sum says how much of it is kernel time
    and how much launch gaps."""
    import torch
    from torch.profiler import ProfilerActivity, profile
    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeat):
            fn()
        torch.cuda.synchronize()
    per: dict[str, list[float]] = {}
    for ev in prof.events():
        if ev.device_type.name == "CUDA" and ev.device_time > 0:
            per.setdefault(ev.name, []).append(ev.device_time)
    per_pass = {k: sum(v) / repeat for k, v in per.items()}
    total = sum(per_pass.values()) or 1.0
    top = sorted(per_pass.items(), key=lambda kv: -kv[1])[:n]
    return {"kernel_us_per_pass": round(total, 1),
            "kernels_per_pass": sum(len(v) for v in per.values()) // repeat,
            "top": [{"kernel": k[:120], "us_per_pass": round(v, 1), "calls": len(per[k]) // repeat,
                     "us_per_call": round(v / max(1, len(per[k]) // repeat), 2), "share": round(v / total, 3)}
                    for k, v in top]}


def bench_stock_tvm(onnx_path, feeds):
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx
    from tvm.s_tir import dlight as dl
    t = time.time()
    m = onnx.load(onnx_path)
    mod = from_onnx(m, shape_dict={k: list(v.shape) for k, v in feeds.items()}, keep_params_in_input=False)
    target = tvm.target.Target({"kind": "cuda", "arch": "sm_90"}, host={"kind": "llvm"})
    with target:
        mod = relax.get_pipeline("zero")(mod)
        mod = dl.ApplyDefaultSchedule(dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(),
                                      dl.gpu.GeneralReduction(), dl.gpu.Fallback())(mod)
        ex = tvm.compile(mod, target)
    dev = tvm.cuda(0)
    vm = relax.VirtualMachine(ex, dev)
    args = [tvm.runtime.tensor(feeds[k], dev) for k in feeds]
    return {"compile_s": time.time() - t, "latency_ms_fp32": tvm_time_ms(vm, dev, args)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="JSON file to write (a directory: e2e.json in it)")
    ap.add_argument("--models", default="bert-base,gpt2-small")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--peers", default="hwcomp,torch,stock_tvm",
                    help="of hwcomp, torch, stock_tvm, dlight (hwcomp's lowering with dlight schedules only), quant "
                         "(hwcomp's --quant build without its fp16 one)")
    ap.add_argument("--quant", default="none", help="also bench hwcomp with this --quant (int8, w4)")
    ap.add_argument("--profile", action="store_true", help="per-kernel GPU time of hwcomp's build (top 12)")
    a = ap.parse_args()
    if Path(a.out).is_dir():  # e.g. the device tool's $OUT
        a.out = str(Path(a.out) / "e2e.json")
    global PROFILE
    PROFILE = a.profile
    import torch
    from hwcomp import zoo
    peers = a.peers.split(",")
    results = {"device": torch.cuda.get_device_name(0), "seq": a.seq, "runs": RUNS, "warmup": WARMUP, "rows": []}
    for name in a.models.split(","):
        kw = {"lm_head": True} if name.startswith("gpt2") else {}
        onnx_path = str(zoo.get(name, exporter="legacy", attn="eager", **kw))
        for batch in [int(b) for b in a.batches.split(",")]:
            feeds = zoo.sample_inputs(name, batch=batch, seq=a.seq, seed=0, **kw)
            row = {"model": name, "batch": batch}
            for peer, fn in (("torch_fp16", lambda: bench_torch(name, batch, a.seq, feeds, torch.float16)),
                             ("hwcomp_fp16", lambda: bench_hwcomp(name, batch, a.seq, feeds, onnx_path, "fp16", "none", True)),
                             ("hwcomp_fp16_dlight", lambda: bench_hwcomp(name, batch, a.seq, feeds, onnx_path, "fp16", "none", False, False)),
                             ("hwcomp_" + a.quant, lambda: bench_hwcomp(name, batch, a.seq, feeds, onnx_path, "fp16", a.quant, True)),
                             ("stock_tvm", lambda: bench_stock_tvm(onnx_path, feeds))):
                key = {"stock_tvm": "stock_tvm", "hwcomp_fp16_dlight": "dlight"}.get(peer, peer.split("_")[0])
                if peer == "hwcomp_" + a.quant and "quant" in peers:  # the quantized build without the fp16 one
                    key = "quant"
                if key not in peers or (peer == "hwcomp_none") or (peer.startswith("hwcomp_") and peer not in ("hwcomp_fp16", "hwcomp_fp16_dlight") and a.quant == "none"):
                    continue
                if peer == "stock_tvm" and batch > 1:  # the baseline table has stock TVM at batch 1 only
                    continue
                try:
                    row[peer] = fn()
                except Exception as e:  # record the failure with its cause, keep benchmarking
                    row[peer] = {"error": f"{type(e).__name__}: {str(e)[:400]}", "trace": traceback.format_exc()[-1500:]}
                print(json.dumps({name: batch, peer: row[peer]}), flush=True)
            tc = row.get("torch_fp16", {}).get("torch_compile_ms")
            hw = row.get("hwcomp_fp16", {}).get("latency_ms")
            if tc and hw:
                row["hwcomp_vs_torch_compile"] = hw / tc
            results["rows"].append(row)
            Path(a.out).write_text(json.dumps(results, indent=2))
    Path(a.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
