"""cocotb bench: one `pe` against a cycle-accurate Python model of its registers."""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from .bench_util import load_config, save_outputs


def _wrap32(x: int) -> int:
    return ((x + (1 << 31)) % (1 << 32)) - (1 << 31)


@cocotb.test()
async def pe_matches_register_model(dut) -> None:
    cfg = load_config()
    dataflow = int(cfg["dataflow"])
    rng = random.Random(cfg["seed"])
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for sig in (dut.calc, dut.load, dut.shift, dut.clear, dut.a_in, dut.b_in, dut.p_in, dut.s_in, dut.lsel):
        sig.value = 0
    for _ in range(2):  # the clock's first edge is at t=0: let it pass with idle inputs
        await RisingEdge(dut.clk)
    # a_q, b_q, p_q after reset-free initialisation (the PE's `initial` zeroes them, idle keeps them)
    a_q = b_q = p_q = 0
    checked = 0
    corner = [-128, 127, -1, 0, 1]
    for cycle in range(cfg["cycles"]):
        a = rng.choice(corner) if rng.random() < 0.3 else rng.randint(-128, 127)
        b = rng.choice(corner) if rng.random() < 0.3 else rng.randint(-128, 127)
        p = rng.choice([-(1 << 31), (1 << 31) - 1, 0]) if rng.random() < 0.2 else rng.randint(-(1 << 31), (1 << 31) - 1)
        calc = int(rng.random() < 0.8)
        load = int(rng.random() < 0.2)
        shift = int(rng.random() < 0.15)
        clear = int(rng.random() < 0.05)
        dut.a_in.value, dut.b_in.value, dut.p_in.value = a & 0xFF, b & 0xFF, p & 0xFFFFFFFF
        dut.calc.value, dut.load.value, dut.shift.value, dut.clear.value = calc, load, shift, clear
        await ReadOnly()
        got = (dut.a_out.value.to_signed(), dut.b_out.value.to_signed(), dut.p_out.value.to_signed())
        assert got == (a_q, b_q, p_q), f"cycle {cycle}: PE outputs {got}, model {(a_q, b_q, p_q)}"
        checked += 1
        await RisingEdge(dut.clk)
        # model the edge
        n_a, n_b, n_p = a_q, b_q, p_q
        if calc:
            n_a = a
        if dataflow == 0:
            if load:
                n_b = b
            if calc:
                n_p = _wrap32(p + a * b_q)
        else:
            if calc:
                n_b = b
            if clear:
                n_p = 0
            elif shift:
                n_p = p
            elif calc:
                n_p = _wrap32(p_q + a * b)
        a_q, b_q, p_q = n_a, n_b, n_p
    save_outputs({"checked": checked})
