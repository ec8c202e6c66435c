"""Benchmark: the HLS path on quantized BERT encoders. For each (model, seq): quantize (int8 + I-BERT integer
nonlinears), emit_hls, g++ -O2 compile of the C simulation (cold), C-sim runs (median, warm binary) against
the interpreter on the same quantized graph, bit-exactness of every output, the generated project's size and
the first-order II=1 latency estimate. Writes bench/hls/csim_bert.json.

    python bench/hls/csim_bert.py [--cases bert-tiny:16,bert-tiny:128,bert-small:128] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

import hwcomp  # noqa: E402
from backends.hls.generate import build_csim, csim, emit_hls  # noqa: E402
from hwcomp import zoo  # noqa: E402
from hwcomp.hardware import HardwareParams  # noqa: E402
from hwcomp.passes import PassContext, run_pipeline  # noqa: E402


def _median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def case(model: str, seq: int, repeat: int, hw: HardwareParams) -> dict:
    res: dict = {"model": model, "seq": seq}
    feeds = zoo.sample_inputs(model, 1, seq, seed=5)
    feeds["attention_mask"][0, (3 * seq) // 4:] = 0
    g = hwcomp.load_onnx(zoo.get(model), {k: v.shape for k, v in feeds.items()})
    g = run_pipeline(g, "default")
    calib = [zoo.sample_inputs(model, 1, seq, seed=s) for s in range(2)]
    t = time.perf_counter()
    q = run_pipeline(g, ["quantize_int8", "integer_nonlinear"],
                     PassContext(options={"calib_inputs": calib, "smooth_alpha": None}))
    res["quantize_s"] = time.perf_counter() - t
    res["ops"] = q.op_histogram()
    with tempfile.TemporaryDirectory(prefix="hwcomp-hls-bench-") as td:
        out = Path(td) / "proj"
        t = time.perf_counter()
        info = emit_hls(q, out, hw)
        res["emit_s"] = time.perf_counter() - t
        res["files_bytes"] = {f: (out / f).stat().st_size for f in info["files"]}
        t = time.perf_counter()
        build_csim(out, Path(td) / "cache")
        res["compile_s"] = time.perf_counter() - t
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            got = csim(out, feeds, cache_dir=Path(td) / "cache")
            times.append(time.perf_counter() - t)
        res["csim_s"] = _median(times)
        exe = next((Path(td) / "cache").iterdir())
        (Path(td) / "in.bin").write_bytes(b"".join(np.ascontiguousarray(feeds[n]).astype(np.int64).tobytes()
                                                   for n in q.inputs))
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            subprocess.run([str(exe), str(Path(td) / "in.bin"), str(out / "weights.bin"), str(Path(td) / "o.bin")],
                           check=True)
            times.append(time.perf_counter() - t)
        res["csim_binary_only_s"] = _median(times)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        ref = hwcomp.run(q, feeds)
        times.append(time.perf_counter() - t)
    res["interpreter_s"] = _median(times)
    res["bit_exact"] = all(np.array_equal(np.asarray(ref[k]).view(np.uint8), np.ascontiguousarray(got[k]).view(np.uint8))
                           for k in q.outputs)
    res["estimate"] = info["estimate"]
    res["kernels"] = info["kernels"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="bert-tiny:16,bert-tiny:128,bert-small:128")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--array", default="16x16")
    ap.add_argument("--out", default=str(HERE / "csim_bert.json"))
    a = ap.parse_args()
    hw = HardwareParams.from_string(a.array)
    cxx = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    report = {"benchmark": "HLS C simulation (g++ -O2) vs reference interpreter on quantized BERT encoders",
              "hardware": hw.name, "repeat": a.repeat,
              "machine": {"python": platform.python_version(), "platform": platform.platform(), "cxx": cxx},
              "cases": []}
    for spec in a.cases.split(","):
        model, seq = spec.split(":")
        r = case(model, int(seq), a.repeat, hw)
        print(json.dumps({k: v for k, v in r.items() if k not in ("ops", "files_bytes", "estimate")}), flush=True)
        report["cases"].append(r)
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
