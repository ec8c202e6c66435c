"""cocotb bench: a whole compiled model on `accel_host_top` (accelerator + host-accessible DRAM).

The bench is the host of the system: it runs ``backends.rtl.runtime.execute`` (host steps in numpy with the
interpreter's ops) and, for every hardware segment, patches the segment's inputs into DRAM (``$readmemh``
of a patch file), loads each program chunk into the instruction memory, starts it and waits for HALT (a hang
ends in a SimulationError naming the last retired instruction), then dumps the segment's outputs
(``$writememh`` of an address range). It writes the graph outputs to an .npz and the measured cycles per
segment chunk to the bench outputs; it compares nothing (the caller does, against the interpreter).
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import First, ReadOnly, RisingEdge, SimTimeoutError, Timer, with_timeout

from hwcomp.errors import SimulationError

from .bench_util import load_config, save_outputs

CLOCK_NS = 10
_HEX = np.array([f"{i:02x}" for i in range(256)])


def read_hex_lines(path: Path, n: int) -> np.ndarray:
    """Bytes of a ``$writememh`` dump (comment and ``@`` address lines skipped)."""
    text = path.read_text(encoding="ascii")
    vals = [ln for ln in (raw.split("//")[0].strip() for raw in text.splitlines()) if ln and not ln.startswith("@")]
    if len(vals) < n:
        raise SimulationError(f"DRAM dump {path} has {len(vals)} bytes, expected {n}")
    return np.array([int(v, 16) for v in vals[:n]], np.uint8)


class ModelBench:
    def __init__(self, dut, cfg: dict) -> None:
        self.dut, self.cfg = dut, cfg
        self.patch = Path(cfg["patch_hex"])
        self.dump = Path(cfg["dump_hex"])
        self.slack = float(cfg.get("timeout_factor", 2.0))

    async def reset(self) -> None:
        d = self.dut
        cocotb.start_soon(Clock(d.clk, CLOCK_NS, unit="ns").start())
        d.rst.value, d.start.value, d.imem_we.value, d.dump.value, d.load.value = 1, 0, 0, 0, 0
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
        parts = []
        for addr, raw in patches:
            parts.append(f"@{addr:x}\n")
            parts.append("\n".join(_HEX[np.asarray(raw, np.uint8)].tolist()) + "\n")
        self.patch.write_text("".join(parts), encoding="ascii")
        await self._pulse(self.dut.load)

    async def read(self, addr: int, nbytes: int) -> np.ndarray:
        d = self.dut
        d.dump_lo.value, d.dump_hi.value = addr, addr + nbytes - 1
        await self._pulse(d.dump)
        return read_hex_lines(self.dump, nbytes)

    async def run_chunk(self, seg: int, ci: int, chunk, predicted: int) -> int:
        from backends.rtl.isa import encode

        d = self.dut
        for addr, ins in enumerate(chunk):
            d.imem_we.value, d.imem_waddr.value, d.imem_wdata.value = 1, addr, encode(ins)
            await RisingEdge(d.clk)
        d.imem_we.value = 0
        d.start.value = 1
        await RisingEdge(d.clk)
        d.start.value = 0
        budget = int(self.slack * predicted) + 1000
        try:
            await with_timeout(First(RisingEdge(d.halted), RisingEdge(d.error)), budget * CLOCK_NS, "ns")
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

    cfg = load_config()
    try:
        art = Path(cfg["artifact"])
        plan = load_plan(art)
        g = hwcomp.ir.load(art / "graph.hwir")
        feeds = dict(np.load(cfg["inputs_npz"]))
        tb = ModelBench(dut, cfg)
        await tb.reset()
        stats = RunStats()
        gen = execute(plan, g, feeds, stats)
        try:
            req = next(gen)
            while True:
                req = gen.send(await tb.segment(req))
        except StopIteration as stop:
            outs = stop.value
        np.savez(cfg["outputs_npz"], **{f"o{i}": np.asarray(outs[k]) for i, k in enumerate(g.outputs)})
        save_outputs({"segments": stats.segments, "outputs": list(g.outputs)})
    except Exception as e:
        save_outputs({"error": f"{type(e).__name__}: {e}" if not isinstance(e, SimulationError) else str(e),
                      "traceback": traceback.format_exc()})
        raise
