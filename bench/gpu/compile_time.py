"""Benchmark: wall time of ``hwcomp compile --target cuda`` (untuned) on the machine it runs on -- the issue's
goal is BERT-base in under 60 s on 2 cores, without a GPU (nvcc builds the sm_90a machine code). Each compile is
its own ``hwcomp`` process, timed from outside (import, lowering, CUDA build, export, report), with its peak RSS.
Writes bench/gpu/compile_time.json (or --out).

    python bench/gpu/compile_time.py [--models bert-base,gpt2-small] [--batches 1,32] [--quant none,int8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def compile_once(model: str, batch: int, quant: str, workdir: Path) -> dict:
    from hwcomp import zoo

    onnx_path = zoo.get(model)
    out = workdir / f"{model}_b{batch}_{quant}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(Path(sys.executable).with_name("hwcomp")), "compile", str(onnx_path), "--target", "cuda",
           "--arch", "sm_90"]
    for name in zoo.input_names(model):
        cmd += ["--shape", f"{name}={batch}x128"]
    if quant != "none":
        cmd += ["--quant", quant]
    cmd += ["-o", str(out)]
    log = workdir / "log.txt"
    with open(log, "w") as f:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: its peak RSS
        wall = time.perf_counter() - t
    text, rc = log.read_text(), os.waitstatus_to_exitcode(status)
    row = {"model": model, "batch": batch, "quant": quant, "wall_s": round(wall, 2), "rc": rc,
           "peak_rss_mb": round(usage.ru_maxrss / 1024)}
    if rc:
        row["error"] = text.strip().splitlines()[-1:]
        return row
    report = json.loads((out / "report.json").read_text())
    row["kernels"] = len(report.get("kernels", []))
    row["cuda_build_s"] = round(report.get("build_seconds", 0.0), 2)
    m = re.search(r"in ([\d.]+) s", text)
    if m:
        row["compile_s_reported"] = float(m.group(1))
    shutil.rmtree(out, ignore_errors=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="bert-base,gpt2-small")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--quant", default="none,int8")
    ap.add_argument("--out", default=str(HERE / "compile_time.json"))
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hwcomp_compile_time_") as tmp:
        for model in a.models.split(","):
            for batch in map(int, a.batches.split(",")):
                for quant in a.quant.split(","):
                    row = compile_once(model, batch, quant, Path(tmp))
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "goal": "hwcomp compile --target cuda of BERT-base < 60 s on 2 cores (untuned)",
              "command": "python bench/gpu/compile_time.py " + " ".join(sys.argv[1:]), "rows": rows,
              "max_wall_s": max((r["wall_s"] for r in rows), default=None)}
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", a.out)
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
