"""`hwcomp inspect MODEL [--ir] [--after PASS]`: op histogram, parameters, FLOPs/MACs, shapes."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from ..cost.flops import flops_by_class
from ..ir import save as save_ir
from .app import app, console
from .common import SHAPE_HELP, load_model


def _fmt(n: float) -> str:
    for unit, div in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


@app.command()
def inspect(model: str = typer.Argument(..., help="model.onnx or graph.hwir"),
            shape: Optional[list[str]] = typer.Option(None, "--shape", help=SHAPE_HELP),
            ir: bool = typer.Option(False, "--ir", help="print the hwcomp IR as text"),
            after: Optional[str] = typer.Option(None, "--after", help="show the graph after this pass of the pipeline"),
            passes: Optional[str] = typer.Option(None, "--passes", help="comma-separated pass pipeline (default: the cuda/fpga default)"),
            save: Optional[str] = typer.Option(None, "--save", help="write the (transformed) graph to FILE.hwir")) -> None:
    """Summarize a model: inputs/outputs, op histogram, parameters, FLOPs/MACs per op class."""
    g = load_model(model, shape)
    if after or passes:
        from ..passes import run_pipeline
        g = run_pipeline(g, passes.split(",") if passes else None, stop_after=after)
    if save:
        save_ir(g, save)
    if ir:
        console.print(str(g), highlight=False, soft_wrap=True)
        return
    t = Table(title=f"{g.name}: inputs and outputs")
    t.add_column("kind"), t.add_column("name"), t.add_column("type")
    for i in g.inputs:
        t.add_row("input", i, str(g.types[i]))
    for o in g.outputs:
        t.add_row("output", o, str(g.types[o]))
    console.print(t)
    count, nbytes = g.param_count()
    console.print(f"parameters: {count:,} ({nbytes / 2**20:.2f} MiB); nodes: {len(g.nodes)}")
    h = Table(title="op histogram")
    h.add_column("op"), h.add_column("count", justify="right")
    for k, v in g.op_histogram().items():
        h.add_row(k, str(v))
    console.print(h)
    f = Table(title="compute per op class")
    for c in ("class", "nodes", "MACs", "FLOPs", "share"):
        f.add_column(c, justify="right" if c != "class" else "left")
    by = flops_by_class(g)
    total = sum(d["flops"] for d in by.values()) or 1
    for k, d in by.items():
        f.add_row(k, str(d["nodes"]), _fmt(d["macs"]), _fmt(d["flops"]), f"{100 * d['flops'] / total:.1f}%")
    f.add_row("total", str(len(g.nodes)), _fmt(sum(d["macs"] for d in by.values())), _fmt(total), "100%")
    console.print(f)
