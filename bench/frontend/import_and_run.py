"""Benchmark: ONNX import + reference-interpreter run of BERT-base (12 layers, seq 128) against ONNX Runtime
CPU, in the same run on the same machine. Each measurement runs in its own process so that peak RSS is
its own. Writes bench/frontend/import_and_run.json.

    python bench/frontend/import_and_run.py [--model bert-base] [--seq 128] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, time, os
import numpy as np
mode, path, seq, repeat, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
from hwcomp import zoo
feeds = zoo.sample_inputs(sys.argv[6], batch=1, seq=seq, seed=0)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
res = {}
if mode == "hwcomp":
    import hwcomp
    from hwcomp.passes import run_pipeline
    t = time.perf_counter(); g = hwcomp.load_onnx(path, {k: v.shape for k, v in feeds.items()}); res["import_s"] = time.perf_counter() - t
    t = time.perf_counter(); fg = run_pipeline(g, "default"); res["passes_s"] = time.perf_counter() - t
    for name, graph in (("run_s", g), ("run_fused_s", fg)):
        hwcomp.run(graph, feeds)
        times = []
        for _ in range(repeat):
            t = time.perf_counter(); out = hwcomp.run(graph, feeds); times.append(time.perf_counter() - t)
        res[name] = sorted(times)[len(times) // 2]
    res["output"] = float(np.abs(out[g.outputs[0]]).sum())
else:
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = threads
    t = time.perf_counter(); s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]); res["import_s"] = time.perf_counter() - t
    s.run(None, feeds)
    times = []
    for _ in range(repeat):
        t = time.perf_counter(); out = s.run(None, feeds); times.append(time.perf_counter() - t)
    res["run_s"] = sorted(times)[len(times) // 2]
    res["output"] = float(np.abs(out[0]).sum())
res["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
res["peak_rss_above_start_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
print(json.dumps(res))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bert-base")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "import_and_run.json"))
    a = ap.parse_args()
    from hwcomp import zoo

    path = str(zoo.get(a.model))
    threads = os.cpu_count() or 1
    results = {}
    for mode in ("onnxruntime", "hwcomp"):
        out = subprocess.run([sys.executable, "-c", CHILD, mode, path, str(a.seq), str(a.repeat), str(threads), a.model],
                             capture_output=True, text=True, check=True)
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    h, o = results["hwcomp"], results["onnxruntime"]
    report = {
        "benchmark": "import + reference-interpreter run vs ONNX Runtime CPU",
        "model": a.model, "batch": 1, "seq": a.seq, "repeat": a.repeat,
        "machine": {"cpus": threads, "python": platform.python_version(), "platform": platform.platform()},
        "hwcomp": h, "onnxruntime": o,
        "ratios": {"run_vs_ort": h["run_s"] / o["run_s"], "run_fused_vs_ort": h["run_fused_s"] / o["run_s"],
                   "peak_rss_vs_ort": h["peak_rss_mib"] / o["peak_rss_mib"]},
        "goals": {"import_s_max": 10.0, "run_vs_ort_max": 5.0},
        "date": time.strftime("%Y-%m-%d"),
    }
    report["goals_met"] = {"import": h["import_s"] < 10.0, "run_within_5x": report["ratios"]["run_fused_vs_ort"] <= 5.0}
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
