"""cocotb bench: a whole compiled model on `accel_host_top` (accelerator + host-accessible DRAM).

The bench is the host of the system: it runs ``backends.rtl.runtime.execute`` (host steps in numpy with the
interpreter's ops) and, for every hardware segment, patches the segment's inputs into DRAM (``$readmemh``
of a patch file), loads each program chunk (``$readmemh`` of the chunk into the top's program loader, which
copies it into the instruction memory and starts it: one Python wake-up per chunk), waits for HALT (a hang
ends in a SimulationError naming the last retired instruction), then dumps the segment's outputs
(``$writememh`` of an address range). It writes the graph outputs to an .npz and the measured cycles per
segment chunk to the bench outputs, with the wall seconds spent per activity (``seconds``: host steps,
file I/O, simulation); it compares nothing (the caller does, against the interpreter).
"""

from __future__ import annotations

import time
import traceback
from collections import defaultdict
from pathlib import Path

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import First, ReadOnly, RisingEdge, SimTimeoutError, Timer, with_timeout

from hwcomp.errors import SimulationError

from .bench_util import hex_lines, load_config, parse_hex_bytes, save_outputs

CLOCK_NS = 10


def read_hex_lines(path: Path, n: int) -> np.ndarray:
    """Bytes of a ``$writememh`` dump (comment and ``@`` address lines skipped)."""
    vals = parse_hex_bytes(path.read_bytes())
    if vals.size < n:
        raise SimulationError(f"DRAM dump {path} has {vals.size} bytes, expected {n}")
    return vals[:n]


class ModelBench:
    def __init__(self, dut, cfg: dict) -> None:
        self.dut, self.cfg = dut, cfg
        self.patch = Path(cfg["patch_hex"])
        self.dump = Path(cfg["dump_hex"])
        self.prog = Path(cfg["prog_hex"]) if cfg.get("prog_hex") else None
        self.slack = float(cfg.get("timeout_factor", 2.0))
        self.seconds: dict[str, float] = defaultdict(float)   # wall seconds per activity

    async def reset(self) -> None:
        d = self.dut
        if not self.cfg.get("internal_clock"):   # accel_host_sim generates its own clock
            cocotb.start_soon(Clock(d.clk, CLOCK_NS, unit="ns").start())
        d.rst.value, d.start.value, d.imem_we.value, d.dump.value, d.load.value = 1, 0, 0, 0, 0
        d.prog.value, d.prog_len.value = 0, 0
        d.imem_waddr.value, d.imem_wdata.value, d.dump_lo.value, d.dump_hi.value = 0, 0, 0, 0
        for _ in range(3):
            await RisingEdge(d.clk)
        d.rst.value = 0
        await RisingEdge(d.clk)

    async def _pulse(self, sig) -> None:
        sig.value = 1
        await RisingEdge(self.dut.clk)
        sig.value = 0
        await RisingEdge(self.dut.clk)
        await Timer(1, "ns")

    async def write(self, patches) -> None:
        if not patches:
            return
        t0 = time.perf_counter()
        self.patch.write_bytes(b"".join(f"@{addr:x}\n".encode() + hex_lines(raw) for addr, raw in patches))
        t1 = time.perf_counter()
        await self._pulse(self.dut.load)
        self.seconds["patch_files"] += t1 - t0
        self.seconds["patch_sim"] += time.perf_counter() - t1

    async def read(self, addr: int, nbytes: int) -> np.ndarray:
        d = self.dut
        t0 = time.perf_counter()
        d.dump_lo.value, d.dump_hi.value = addr, addr + nbytes - 1
        await self._pulse(d.dump)
        t1 = time.perf_counter()
        data = read_hex_lines(self.dump, nbytes)
        self.seconds["dump_sim"] += t1 - t0
        self.seconds["dump_files"] += time.perf_counter() - t1
        return data

    async def _load_and_start(self, chunk) -> None:
        """The chunk into the instruction memory, then start: through the top's loader (one $readmemh, one
        pulse) when the config names a program file, else one host-port write per word."""
        from backends.rtl.isa import encode

        d = self.dut
        t0 = time.perf_counter()
        if self.prog is not None:
            self.prog.write_text("".join(f"{encode(ins):032x}\n" for ins in chunk), encoding="ascii")
            self.seconds["program_files"] += time.perf_counter() - t0
            d.prog_len.value, d.prog.value = len(chunk), 1
            await RisingEdge(d.clk)
            d.prog.value = 0
            return
        for addr, ins in enumerate(chunk):
            d.imem_we.value, d.imem_waddr.value, d.imem_wdata.value = 1, addr, encode(ins)
            await RisingEdge(d.clk)
        d.imem_we.value = 0
        d.start.value = 1
        await RisingEdge(d.clk)
        d.start.value = 0
        self.seconds["program_port"] += time.perf_counter() - t0

    async def run_chunk(self, seg: int, ci: int, chunk, predicted: int) -> int:
        d = self.dut
        await self._load_and_start(chunk)
        budget = int(self.slack * predicted) + 1000
        load = len(chunk) + 2 if self.prog is not None else 0   # the loader's copy precedes the start
        t0 = time.perf_counter()
        try:
            await with_timeout(First(RisingEdge(d.halted), RisingEdge(d.error)), (budget + load) * CLOCK_NS,
                               "ns")
        except SimTimeoutError:
            n = int(d.retired.value.to_unsigned())
            last = str(chunk[n - 1]) if 0 < n <= len(chunk) else "none"
            cur = str(chunk[n]) if n < len(chunk) else "past the end of the program"
            raise SimulationError(f"accelerator hung in segment {seg} chunk {ci}: no HALT after {budget} cycles "
                                  f"(model predicts {predicted}); {n} instructions retired, last retired: {last}; "
                                  f"stuck in: {cur} (pc={int(d.pc.value.to_unsigned())})") from None
        await ReadOnly()
        n = int(d.retired.value.to_unsigned())
        if d.error.value:
            raise SimulationError(f"accelerator raised error in segment {seg} chunk {ci} at pc="
                                  f"{int(d.pc.value.to_unsigned())} ({chunk[n] if n < len(chunk) else '?'})")
        if n != len(chunk):
            raise SimulationError(f"segment {seg} chunk {ci}: retired {n} of {len(chunk)} instructions")
        cycles = int(d.cycles.value.to_unsigned())
        await RisingEdge(d.clk)
        self.seconds["run_sim"] += time.perf_counter() - t0
        return cycles

    async def segment(self, req):
        from backends.rtl.runtime import SegmentResult

        await self.write(req.patches)
        cycles = [await self.run_chunk(req.index, ci, ch, p)
                  for ci, (ch, p) in enumerate(zip(req.chunks, req.predicted_cycles))]
        data = [await self.read(a, nb) for a, nb in req.reads]
        return SegmentResult(data, cycles)


@cocotb.test()
async def model_runs_on_rtl(dut) -> None:
    import hwcomp.ir
    from backends.rtl.runtime import RunStats, execute, load_plan

    t_setup = time.perf_counter()
    cfg = load_config()
    try:
        art = Path(cfg["artifact"])
        plan = load_plan(art)
        g = hwcomp.ir.load(art / "graph.hwir")
        feeds = dict(np.load(cfg["inputs_npz"]))
        tb = ModelBench(dut, cfg)
        await tb.reset()
        tb.seconds["setup"] += time.perf_counter() - t_setup
        stats = RunStats()
        gen = execute(plan, g, feeds, stats)
        t0 = time.perf_counter()
        try:
            req = next(gen)
            while True:
                tb.seconds["host"] += time.perf_counter() - t0
                res = await tb.segment(req)
                t0 = time.perf_counter()
                req = gen.send(res)
        except StopIteration as stop:
            outs = stop.value
        tb.seconds["host"] += time.perf_counter() - t0
        np.savez(cfg["outputs_npz"], **{f"o{i}": np.asarray(outs[k]) for i, k in enumerate(g.outputs)})
        save_outputs({"segments": stats.segments, "outputs": list(g.outputs),
                      "seconds": {k: round(v, 3) for k, v in sorted(tb.seconds.items())}})
    except Exception as e:
        save_outputs({"error": f"{type(e).__name__}: {e}" if not isinstance(e, SimulationError) else str(e),
                      "traceback": traceback.format_exc()})
        raise
