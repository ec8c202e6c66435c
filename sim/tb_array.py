"""cocotb bench: `systolic_array` computes int8 matmuls exactly (numpy oracle), both dataflows."""

from __future__ import annotations

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from hwcomp.ops.intmath import int_matmul

from .bench_util import hw_from, load_config, pack, save_outputs, unpack


class ArrayTB:
    def __init__(self, dut, rows: int, cols: int) -> None:
        self.dut, self.rows, self.cols = dut, rows, cols
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        for sig in (dut.in_valid, dut.in_a, dut.in_b, dut.ws_load, dut.os_clear, dut.os_shift, dut.in_sel, dut.ws_lsel):
            sig.value = 0

    async def idle(self, n: int) -> None:
        d = self.dut
        d.in_valid.value, d.ws_load.value, d.os_clear.value, d.os_shift.value = 0, 0, 0, 0
        for _ in range(n):
            await RisingEdge(d.clk)

    async def ws_matmul(self, a: np.ndarray, w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """a [M, rows] @ w [rows, cols]: load w bottom row first, stream a with random bubbles."""
        d = self.dut
        for r in range(self.rows - 1, -1, -1):
            d.ws_load.value, d.in_b.value = 1, pack(w[r], 8)
            await RisingEdge(d.clk)
        d.ws_load.value = 0
        out: list[list[int]] = []
        m, i = a.shape[0], 0
        while len(out) < m:
            if i < m and rng.random() < 0.8:
                d.in_valid.value, d.in_a.value = 1, pack(a[i], 8)
                d.in_b.value = pack(rng.integers(-128, 128, self.cols), 8)  # ignored in WS compute
                i += 1
            else:
                d.in_valid.value, d.in_a.value = 0, pack(rng.integers(-128, 128, self.rows), 8)  # masked
            await ReadOnly()
            if d.out_valid.value:
                out.append(unpack(d.out_c.value.to_unsigned(), 32, self.cols))
            await RisingEdge(d.clk)
        d.in_valid.value = 0
        return np.array(out, dtype=np.int64)

    async def os_matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a [rows, K] @ b [K, cols]: clear, stream K steps, flush, drain rows bottom-up."""
        d = self.dut
        d.os_clear.value = 1
        await RisingEdge(d.clk)
        d.os_clear.value = 0
        for k in range(a.shape[1]):
            d.in_valid.value, d.in_a.value, d.in_b.value = 1, pack(a[:, k], 8), pack(b[k], 8)
            await RisingEdge(d.clk)
        await self.idle(self.rows + self.cols - 2)
        out = np.zeros((self.rows, self.cols), np.int64)
        for step in range(self.rows):
            d.os_shift.value = 1
            await ReadOnly()
            assert d.out_valid.value == 1
            out[self.rows - 1 - step] = unpack(d.out_c.value.to_unsigned(), 32, self.cols)
            await RisingEdge(d.clk)
        d.os_shift.value = 0
        return out


@cocotb.test()
async def array_matches_numpy(dut) -> None:
    cfg = load_config()
    hw = hw_from(cfg)
    rng = np.random.default_rng(cfg["seed"])
    tb = ArrayTB(dut, hw.rows, hw.cols)
    await tb.idle(2)
    cases = []
    for kind in cfg["cases"]:
        if hw.dataflow == "ws":
            m = int(cfg["m"])
            if kind == "min":   # every product is (-128)*(-128) = 16384
                a, w = np.full((m, hw.rows), -128), np.full((hw.rows, hw.cols), -128)
            elif kind == "mixed":
                a = rng.choice([-128, 127], (m, hw.rows))
                w = rng.choice([-128, 127], (hw.rows, hw.cols))
            else:
                a, w = rng.integers(-128, 128, (m, hw.rows)), rng.integers(-128, 128, (hw.rows, hw.cols))
            got = await tb.ws_matmul(a, w, rng)
            want = int_matmul(a, w)
        else:
            k = int(cfg["k"])
            if kind == "min":
                a, b = np.full((hw.rows, k), -128), np.full((k, hw.cols), -128)
            elif kind == "mixed":
                a, b = rng.choice([-128, 127], (hw.rows, k)), rng.choice([-128, 127], (k, hw.cols))
            else:
                a, b = rng.integers(-128, 128, (hw.rows, k)), rng.integers(-128, 128, (k, hw.cols))
            got = await tb.os_matmul(a, b)
            want = int_matmul(a, b)
        bad = np.argwhere(got != want)
        assert bad.size == 0, f"case {kind}: {len(bad)} mismatches, first at {bad[0].tolist()}: " \
                              f"got {got[tuple(bad[0])]}, want {want[tuple(bad[0])]}"
        cases.append({"kind": kind, "max_abs": int(np.abs(want).max())})
        await tb.idle(3)
    save_outputs({"cases": cases})
