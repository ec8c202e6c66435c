"""`hwcomp simulate OUTDIR --inputs in.npz [--output out.npz] [--sim verilator|icarus]`: run a compiled
fpga/asic artifact on the RTL, check every output bit-exactly against the interpreter on OUTDIR/graph.hwir,
and print cycles (simulated vs predicted), MAC utilisation and where the cycles went."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from ..artifact import get_backend, read_report
from ..errors import SimulationError
from .app import app, console
from .common import load_npz, save_npz


def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> list[str]:
    """One line per output that differs in dtype, shape or any bit."""
    bad = []
    for name, a in ref.items():
        a = np.ascontiguousarray(a)
        if name not in got:
            bad.append(f"{name}: missing from the simulation's outputs")
            continue
        b = np.ascontiguousarray(got[name])
        if a.dtype != b.dtype or a.shape != b.shape:
            bad.append(f"{name}: interpreter {a.dtype}{list(a.shape)} vs rtl {b.dtype}{list(b.shape)}")
        elif not np.array_equal(a.view(np.uint8), b.view(np.uint8)):
            diff = np.flatnonzero(a.reshape(-1).view(np.uint8 if a.itemsize == 1 else f"u{a.itemsize}")
                                  != b.reshape(-1).view(np.uint8 if b.itemsize == 1 else f"u{b.itemsize}"))
            i = int(diff[0])
            bad.append(f"{name}: {diff.size} of {a.size} elements differ; first at flat index {i}: interpreter "
                       f"{a.reshape(-1)[i]!r}, rtl {b.reshape(-1)[i]!r}")
    return bad


@app.command()
def simulate(outdir: str = typer.Argument(..., help="artifact directory from `hwcomp compile --target fpga|asic`"),
             inputs: str = typer.Option(..., "--inputs", "-i", help=".npz keyed by graph input names"),
             output: Optional[str] = typer.Option(None, "--output", "-o", help=".npz to write the RTL's outputs to"),
             sim: str = typer.Option("verilator", "--sim", help="verilator | icarus"),
             waves: bool = typer.Option(False, "--waves", help="dump waveforms"),
             ) -> None:
    """Run the model on the RTL and check it bit-exactly against the interpreter."""
    import hwcomp
    from ..backends.rtl.runtime import RunStats, load_plan

    art = Path(outdir)
    report = read_report(art)
    target = str(report.get("target"))
    if target not in ("fpga", "asic"):
        raise SimulationError(f"{outdir} was compiled for {target!r}; simulate takes fpga/asic artifacts "
                              "(use `hwcomp run` for the others)")
    feeds = load_npz(inputs)
    g = hwcomp.ir.load(art / "graph.hwir")
    stats = RunStats()
    t0 = time.perf_counter()
    got = get_backend(target).run(art, feeds, sim=sim, waves=waves, stats=stats)
    t_sim = time.perf_counter() - t0
    ref = hwcomp.run(g, feeds)
    if output:
        save_npz(output, got)
    plan = load_plan(art)
    hw = plan.hw
    macs = sum(p.macs for s in plan.segments for p in s.phases)
    cycles, predicted = stats.cycles, stats.predicted
    t = Table(title=f"{outdir} on {sim} ({hw.rows}x{hw.cols} {hw.dataflow}, {t_sim:.1f} s)")
    for c in ("segment", "nodes", "rtl cycles", "model cycles", "MAC util"):
        t.add_column(c)
    segs = {s.index: s for s in plan.segments}
    for s in stats.segments:
        seg = segs[s["index"]]
        cyc = sum(s["cycles"])
        t.add_row(str(s["index"]), ", ".join(p.op for p in seg.phases), str(cyc), str(sum(s["predicted"])),
                  f"{seg.macs / (hw.rows * hw.cols * cyc):.1%}" if cyc else "-")
    console.print(t)
    by_op = {}
    for s in report.get("cycles", {}).get("segments", []):
        for k, v in s["cycles_by_opcode"].items():
            by_op[k] = by_op.get(k, 0) + v
    total = sum(by_op.values()) or 1
    stall = ", ".join(f"{k} {v / total:.1%}" for k, v in sorted(by_op.items(), key=lambda kv: -kv[1]))
    err = abs(cycles - predicted) / predicted if predicted else 0.0
    console.print(f"cycles: rtl {cycles}, model {predicted} ({err:.2%} apart); MAC utilisation "
                  f"{macs / (hw.rows * hw.cols * cycles):.1%} of {hw.rows * hw.cols} MACs/cycle" if cycles else
                  "no hardware segments")
    console.print(f"cycle breakdown (model, by instruction; MATMUL = compute, LOAD/STORE = DMA stalls): {stall}")
    host = report.get("host_steps", [])
    console.print(f"host steps (numpy, not hardware): {len(host)} — "
                  + ", ".join(sorted({h['op'] + ('' if h['what'] == 'node' else f" ({h['what']})") for h in host})))
    bad = compare({k: ref[k] for k in g.outputs}, got)
    if bad:
        raise SimulationError(f"{len(bad)} of {len(g.outputs)} outputs differ from the interpreter: " + "; ".join(bad[:5]))
    console.print(f"bit-exact: all {len(g.outputs)} outputs match the interpreter")
