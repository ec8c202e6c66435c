"""`hwcomp run MODEL --inputs in.npz --output out.npz`: run a model in the reference interpreter
(an .onnx or .hwir file) or a compiled artifact directory (dispatched to its backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from ..interp import run as interp_run
from .app import app, console
from .common import SHAPE_HELP, load_model, load_npz, save_npz


@app.command()
def run(model: str = typer.Argument(..., help="model.onnx, graph.hwir, or a compiled OUTDIR"),
        inputs: str = typer.Option(..., "--inputs", "-i", help=".npz keyed by graph input names"),
        output: Optional[str] = typer.Option(None, "--output", "-o", help=".npz to write, keyed by graph output names"),
        shape: Optional[list[str]] = typer.Option(None, "--shape", help=SHAPE_HELP + " (default: the shapes in --inputs)")) -> None:
    """Run a model on inputs; writes outputs keyed by graph output names."""
    feeds = load_npz(inputs)
    if Path(model).is_dir():
        from ..artifact import run_artifact
        outs = run_artifact(Path(model), feeds)
    else:
        g = load_model(model, shape, feeds)
        outs = interp_run(g, feeds)
    if output:
        save_npz(output, outs)
    t = Table(title="outputs" + (f" -> {output}" if output else ""))
    for c in ("name", "shape", "dtype", "min", "max", "mean"):
        t.add_column(c)
    for k, v in outs.items():
        v = np.asarray(v)
        t.add_row(k, str(list(v.shape)), str(v.dtype), f"{v.min():.4g}", f"{v.max():.4g}",
                  f"{v.astype(np.float64).mean():.4g}")
    console.print(t)
