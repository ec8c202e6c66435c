"""cocotb bench: the `requant` lane is bit-exact with hwcomp.ops.intmath.requantize."""

from __future__ import annotations

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from hwcomp.ops.intmath import requantize

from .bench_util import load_config, save_outputs


def vectors(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    acc = rng.integers(-(1 << 31), 1 << 31, n, dtype=np.int64)
    mult = rng.integers(1 << 30, 1 << 31, n, dtype=np.int64)
    shift = rng.integers(1, 63, n)
    zp = rng.integers(-128, 128, n)
    # realistic scales (result near the int8 range), saturation, and exact negative halves
    q = n // 4
    shift[:q] = rng.integers(30, 45, q)
    acc[:q] = rng.integers(-(1 << 20), 1 << 20, q)
    e = rng.integers(0, 23, q)   # (odd < 2^9) * 2^e stays inside int32
    mult[q:2 * q] = 1 << 30
    acc[q:2 * q] = -((2 * rng.integers(0, 256, q) + 1) << e)   # exact .5 ties below zero
    shift[q:2 * q] = 31 + e
    acc[2 * q:2 * q + 8] = [-(1 << 31), (1 << 31) - 1, 0, -1, 1, -(1 << 31), (1 << 31) - 1, -2]
    mult[2 * q:2 * q + 8] = (1 << 31) - 1
    shift[2 * q:2 * q + 8] = [1, 1, 1, 1, 1, 62, 62, 2]
    return acc, mult, shift, zp


@cocotb.test()
async def requant_is_bit_exact(dut) -> None:
    cfg = load_config()
    rng = np.random.default_rng(cfg["seed"])
    acc, mult, shift, zp = vectors(rng, int(cfg["n"]))
    want = requantize(acc, mult, shift, zp)   # per-element parameters
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.in_valid.value = 0
    dut.acc.value, dut.multiplier.value, dut.shift.value, dut.zero_point.value = 0, 1 << 30, 1, 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    got: list[int] = []
    i = 0
    while len(got) < len(acc):
        if i < len(acc):
            dut.in_valid.value = 1
            dut.acc.value = int(acc[i]) & 0xFFFFFFFF
            dut.multiplier.value = int(mult[i]) & 0xFFFFFFFF
            dut.shift.value = int(shift[i])
            dut.zero_point.value = int(zp[i]) & 0xFF
            i += 1
        else:
            dut.in_valid.value = 0
        await ReadOnly()
        if dut.out_valid.value:
            got.append(dut.y.value.to_signed())
        await RisingEdge(dut.clk)
    g = np.array(got)
    bad = np.flatnonzero(g != want)
    assert bad.size == 0, (f"{bad.size} mismatches; first: acc={acc[bad[0]]} mult={mult[bad[0]]} "
                           f"shift={shift[bad[0]]} zp={zp[bad[0]]}: rtl {g[bad[0]]}, intmath {want[bad[0]]}")
    save_outputs({"checked": int(g.size), "saturated": int(np.sum((want == 127) | (want == -128)))})
