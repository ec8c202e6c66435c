"""MAC utilisation of BERT-base matmul shapes on a 16x16 array, per dataflow, from the cycle-exact schedule
of the instruction-level model (backends/rtl/isa_model.schedule; the controller and model benches check it
against the RTL cycle for cycle).

WS: the programs the compiler emits (backends/rtl/lower.py on a one-qdense graph). OS: the compiler does not
lower whole models for OS, so OS uses the program builder (backends/rtl/program.plan_matmul).
"default" buffers are HardwareParams.from_string("16x16"); "large" buffers let the whole input (WS) or a
full-K strip (OS) stay resident.

"utilization" = MACs / (rows*cols * cycles of the whole matmul, its loads, requantization and stores
included: the run from start to HALT). "matmul_only_utilization" = MACs / (rows*cols * cycles the EX unit
spends on MATMUL instructions), the figure the first version reported (there MATMULs ran alone).
Writes bench/rtl/utilization.json.

    python bench/rtl/utilization.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from backends.rtl.isa_model import schedule  # noqa: E402
from backends.rtl.lower import lower  # noqa: E402
from backends.rtl.program import plan_matmul  # noqa: E402
from hwcomp.hardware import HardwareParams  # noqa: E402
from hwcomp.ir.graph import Graph, Node  # noqa: E402
from hwcomp.ir.types import DType, TensorType  # noqa: E402

SHAPES = [(128, 768, 768), (128, 768, 3072), (128, 3072, 768)]
BUFFERS = {
    "default": {},
    "large": {"input_sp_bytes": 16 * 8192, "weight_sp_bytes": 16 * 4096, "acc_sp_bytes": 64 * 1024,
              "vector_sp_bytes": 16 * 1024},
}


def one_qdense(m: int, k: int, n: int) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("qdense")
    g.inputs, g.outputs = ["x"], ["y"]
    g.constants = {"w": rng.integers(-127, 128, (k, n), dtype=np.int8), "b": np.zeros(n, np.int32)}
    g.types = {"x": TensorType((m, k), DType.int8), "w": TensorType((k, n), DType.int8),
               "b": TensorType((n,), DType.int32), "y": TensorType((m, n), DType.int8)}
    g.nodes = [Node("qdense", ["x", "w", "b"], ["y"], {"x_zero_point": 3, "multiplier": np.full(n, 1 << 30, np.int32),
                                                         "shift": np.full(n, 40, np.int32), "out_zero_point": 0}, "fc")]
    return g


def summarise(hw: HardwareParams, chunks, macs: int) -> dict:
    """chunks: runs (each ending with HALT) executed one after the other."""
    by: dict[str, int] = {}
    cyc = mm = 0
    for prog in chunks:
        sch = schedule(hw, prog)
        cyc += sch.cycles
        for i, b in zip(prog, sch.busy):
            by[i.opcode.name] = by.get(i.opcode.name, 0) + b
        mm += _ex_matmul_cycles(hw, prog, sch)
    return {"cycles": cyc, "utilization": round(macs / (hw.rows * hw.cols * cyc), 4),
            "matmul_only_utilization": round(macs / (hw.rows * hw.cols * mm), 4),
            "busy_cycles_by_opcode": dict(sorted(by.items())), "instructions": sum(len(p) for p in chunks)}


def _ex_matmul_cycles(hw: HardwareParams, prog, sch) -> int:
    """Cycles the EX unit spends on MATMULs: from the cycle EX could take one (queued and the previous EX
    instruction finished) to its last row (WS) or its end (OS), so waits for data/weights and drains count."""
    from backends.rtl.isa import Matmul

    total, prev_end = 0, 0
    for idx, (i, d, done) in enumerate(zip(prog, sch.dispatch, sch.done)):
        if idx not in sch.start:
            continue
        p = sch.start[idx]
        end = p + i.count if isinstance(i, Matmul) and hw.dataflow == "ws" else done
        if isinstance(i, Matmul):
            total += end - min(max(prev_end, d + 1), p)
        prev_end = end + 1 if isinstance(i, Matmul) and hw.dataflow == "ws" else done
    return total


def main() -> None:
    rows = []
    for bname, over in BUFFERS.items():
        for m, k, n in SHAPES:
            hw = HardwareParams.from_string("16x16", **over)
            t0 = time.perf_counter()
            plan = lower(one_qdense(m, k, n), hw)
            t_lower = time.perf_counter() - t0
            chunks = [ch for s in plan.segments for ch in s.chunks(plan.hw.imem_depth)]
            rows.append({"dataflow": "ws", "buffers": bname, "m": m, "k": k, "n": n, "builder": "lower.py",
                         "compile_seconds": round(t_lower, 3), **summarise(hw, chunks, m * k * n)})
            hwo = HardwareParams.from_string("16x16-os", **over)
            _, prog = plan_matmul(hwo.replace(dram_bytes=1 << 32), m, k, n, bias=True)
            rows.append({"dataflow": "os", "buffers": bname, "m": m, "k": k, "n": n,
                         "builder": "program.plan_matmul", **summarise(hwo, [prog], m * k * n)})
    out = {"source": "cycle-exact schedule of the instruction-level model (isa_model.schedule; equal to the RTL's "
                     "cycles on the controller and model benches)",
           "metric": "utilization = MACs / (rows*cols*cycles of the whole matmul incl. loads, requant, stores); "
                     "matmul_only_utilization = MACs / (rows*cols*EX cycles on MATMULs)",
           "array": "16x16", "clock_mhz": 200.0, "buffers": BUFFERS, "results": rows}
    (Path(__file__).with_suffix(".json")).write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    for r in rows:
        print(f"{r['dataflow']} {r['buffers']:7s} {r['m']}x{r['k']}x{r['n']}: util {r['utilization']:.1%} "
              f"(matmul-only {r['matmul_only_utilization']:.1%}) {r['cycles']} cycles")


if __name__ == "__main__":
    main()
