"""Analytic cost of workloads on the accelerator, from the same programs the RTL runs.

The cycle counts are the instruction-level model's schedule (``isa_model.schedule``: the decoupled LD/EX/ST
units overlap), which the controller bench checks against the RTL; this module converts to time and
utilisation. ``cycles_by_opcode`` is the busy time of each opcode's unit (they overlap, so it does not add up).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hwcomp.hardware import HardwareParams

from .isa_model import schedule
from .program import plan_matmul


@dataclass(frozen=True)
class MatmulCost:
    cycles: int
    seconds: float
    macs: int
    utilization: float                 # useful MACs / (rows*cols*cycles)
    cycles_by_opcode: dict[str, int]

    @property
    def gops(self) -> float:
        return 2 * self.macs / self.seconds / 1e9


def matmul_cost(hw: HardwareParams, m: int, k: int, n: int, *, bias: bool = False,
                tile_m: int | None = None, tile_k: int | None = None) -> MatmulCost:
    """Cycles of ``requant([m,k] @ [k,n] (+ bias))`` as ``program.matmul_requant`` tiles it."""
    _, prog = plan_matmul(hw.replace(dram_bytes=1 << 32), m, k, n, bias=bias, tile_m=tile_m, tile_k=tile_k)
    by_op: Counter[str] = Counter()
    sch = schedule(hw, prog)
    for ins, b in zip(prog, sch.busy):
        by_op[ins.opcode.name] += b
    cycles = sch.cycles
    macs = m * k * n
    return MatmulCost(cycles, cycles / (hw.clock_mhz * 1e6), macs, macs / (hw.rows * hw.cols * cycles),
                      dict(sorted(by_op.items())))
