"""cocotb bench: `accel_sim_top` runs an assembled program on a DRAM image.

The bench programs the instruction memory through the host port, pulses start, waits for HALT
(with a timeout that names the last retired instruction), checks the final DRAM image against the
instruction-level model's image, and reports the cycle count.
"""

from __future__ import annotations

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import First, ReadOnly, RisingEdge, SimTimeoutError, Timer, with_timeout

from hwcomp.errors import SimulationError

from .bench_util import load_config, read_hex_bytes, save_outputs

CLOCK_NS = 10


@cocotb.test()
async def program_runs_bit_exact(dut) -> None:
    cfg = load_config()
    disasm: list[str] = cfg["disasm"]
    with open(cfg["program_hex"], encoding="ascii") as f:
        words = [int(w, 16) for w in f.read().split()]
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    dut.rst.value, dut.start.value, dut.imem_we.value, dut.dump.value = 1, 0, 0, 0
    dut.imem_waddr.value, dut.imem_wdata.value = 0, 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    for addr, word in enumerate(words):
        dut.imem_we.value, dut.imem_waddr.value, dut.imem_wdata.value = 1, addr, word
        await RisingEdge(dut.clk)
    dut.imem_we.value = 0
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0

    budget = int(cfg["timeout_cycles"])
    try:
        await with_timeout(First(RisingEdge(dut.halted), RisingEdge(dut.error)), budget * CLOCK_NS, "ns")
    except SimTimeoutError:
        n = int(dut.retired.value.to_unsigned())
        last = disasm[n - 1] if 0 < n <= len(disasm) else "none"
        cur = disasm[n] if n < len(disasm) else "past the end of the program"
        raise SimulationError(f"accelerator hung: no HALT after {budget} cycles; {n} instructions retired, "
                              f"last retired: {last}; stuck in: {cur} (pc={int(dut.pc.value.to_unsigned())})")
    await ReadOnly()
    n = int(dut.retired.value.to_unsigned())
    if dut.error.value:
        raise SimulationError(f"accelerator raised error at pc={int(dut.pc.value.to_unsigned())} "
                              f"({disasm[n] if n < len(disasm) else '?'}) after {n} retired instructions")
    cycles = int(dut.cycles.value.to_unsigned())
    await RisingEdge(dut.clk)
    dut.dump.value = 1
    await RisingEdge(dut.clk)
    dut.dump.value = 0
    await RisingEdge(dut.clk)
    await Timer(1, "ns")
    image = read_hex_bytes(cfg["dump_hex"], int(cfg["dram_bytes"]))
    want = np.load(cfg["expect_npy"])
    bad = np.flatnonzero(image != want)
    save_outputs({"cycles": cycles, "retired": n, "mismatched_bytes": int(bad.size)})
    assert n == len(disasm), f"retired {n} of {len(disasm)} instructions"
    assert bad.size == 0, (f"{bad.size} DRAM bytes differ from the model; first at 0x{bad[0]:x}: "
                           f"rtl {image[bad[0]]:#04x}, model {want[bad[0]]:#04x}")
