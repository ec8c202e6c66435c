"""Calibration + quantization time of BERT-base (random init, zoo export) on 2 CPU cores.

    python bench/quant/calibrate_bert_base.py [--batches 8] [--seq 128] -o bench/quant/calibrate_bert_base.json

Times each stage separately: ONNX import, fusion, calibration statistics (one interpreter pass over the
batches, histograms of every observed value), quantize_int8 with each calibrator (including the second,
smoothed-input statistics pass the first non-minmax calibrator triggers), QDQ export, and one run of the
quantized graph in the interpreter.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("-o", "--out", default=str(Path(__file__).with_suffix(".json")))
    a = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, cpus)
    from hwcomp import zoo
    from hwcomp.frontend.onnx import load_onnx
    from hwcomp.interp import run
    from hwcomp.passes import PassContext, run_pipeline
    from hwcomp.passes.quantize import observed_values, prepare
    from hwcomp.quant import calibrate as cal
    from hwcomp.quant.export import export_qdq

    t = {}
    s = time.perf_counter()
    path = zoo.get("bert-base")
    t["export_or_cache_s"] = time.perf_counter() - s
    shapes = {"input_ids": (a.batch, a.seq), "attention_mask": (a.batch, a.seq)}
    s = time.perf_counter()
    g0 = load_onnx(path, shapes)
    t["import_s"] = time.perf_counter() - s
    s = time.perf_counter()
    g = run_pipeline(g0, "default")
    t["fuse_s"] = time.perf_counter() - s
    calib = zoo.calibration_inputs("bert-base", n=a.batches, seq=a.seq, batch=a.batch)
    s = time.perf_counter()
    run(g, calib[0])
    t["float_run_one_batch_s"] = time.perf_counter() - s
    s = time.perf_counter()
    gp = prepare(g.copy())
    stats = cal.collect(gp, calib, observed_values(gp))
    t["calibration_stats_s"] = time.perf_counter() - s
    t["observed_values"] = len(stats)
    ctx = PassContext({"calib_inputs": calib, "calib_stats": stats})
    for c in cal.CALIBRATORS:
        ctx.options["calibrator"] = c
        s = time.perf_counter()
        q = run_pipeline(g, ["quantize_int8"], ctx)
        t[f"quantize_int8_{c}_s"] = time.perf_counter() - s
    s = time.perf_counter()
    qi = run_pipeline(q, ["integer_nonlinear"], ctx)
    t["integer_nonlinear_s"] = time.perf_counter() - s
    s = time.perf_counter()
    export_qdq(path, q, Path("/tmp/bert_base_int8_qdq.onnx"))
    t["qdq_export_s"] = time.perf_counter() - s
    s = time.perf_counter()
    run(q, calib[0])
    t["int8_run_one_batch_s"] = time.perf_counter() - s
    s = time.perf_counter()
    run(qi, calib[0])
    t["int8_integer_nonlinear_run_one_batch_s"] = time.perf_counter() - s
    for c in ("w8", "w4"):
        s = time.perf_counter()
        run_pipeline(g, [f"quantize_{c}"], PassContext({"group_size": 128}))
        t[f"quantize_{c}_g128_s"] = time.perf_counter() - s
    res = {"model": "bert-base (random init, zoo legacy export)", "batch": a.batch, "seq": a.seq,
           "calibration_batches": a.batches, "cores": 2, "cpu": platform.processor() or platform.machine(),
           "numpy": np.__version__, "qdense": q.op_histogram().get("qdense"),
           "times": {k: round(v, 3) if isinstance(v, float) else v for k, v in t.items()}}
    Path(a.out).write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
