"""`hwcomp compile MODEL.onnx --target cuda|llvm|fpga|asic ... -o OUTDIR`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from ..artifact import get_backend
from ..errors import HwcompError
import numpy as np

from ..passes import PassContext, get_pass, run_pipeline
from .app import app, console
from .common import SHAPE_HELP, load_model, load_npz


def builtin_calibration(g, n: int = 32) -> list[dict]:
    """The zoo's calibration sentences, tokenized to the graph's input shape, for token-id models: at least ``n``
    distinct sentences in as few batches as the graph's batch size allows (batch 1: 32 batches; batch 32: one).
    MiniLM-L6's int8 embeddings reach cos 0.998 from 16 sentences on (0.9964 from 8). A fixed number of batches
    would make a batch-32 compile calibrate 32x as long (BERT-base on 2 cores: 165 s of a 172 s compile) on the
    same 96 sentences cycled."""
    from ..errors import QuantizationError

    names = set(g.inputs)
    if not names <= {"input_ids", "attention_mask", "token_type_ids"} or "input_ids" not in names:
        raise QuantizationError("quantization needs calibration data for this model: pass --calib FILE.npz "
                                f"(keyed by {', '.join(g.inputs)})")
    from .. import zoo

    batch, seq = g.types["input_ids"].shape
    sets = zoo.calibration_inputs("minilm-l6", n=-(-n // batch), seq=seq, batch=batch)
    if "token_type_ids" in names:
        for s in sets:
            s["token_type_ids"] = np.zeros_like(s["input_ids"])
    return [{k: v for k, v in s.items() if k in names} for s in sets]


def quantize_graph(g, quant: str, calib: list[str] | None, calibrator: str, group: int, keep_float: list[str] | None,
                   extra: dict | None = None, integer_only: bool = False):
    """Apply hwcomp's quantization passes by mode name ("none" returns the graph unchanged)."""
    if quant in ("none", "fp32", "fp16"):
        return g
    name = {"int8": "quantize_int8", "w8": "quantize_w8", "w4": "quantize_w4"}.get(quant)
    if name is None:
        raise HwcompError(f"unknown --quant {quant!r}; choose none, int8, w8 or w4")
    get_pass(name)
    options = {"calibrator": calibrator, "group_size": group, "keep_float": list(keep_float or []), **(extra or {})}
    if quant == "int8":
        options["calib_inputs"] = [load_npz(c) for c in calib] if calib else builtin_calibration(g)
    elif calib:  # weight-only: calibration data selects GPTQ (else round-to-nearest; see `hwcomp quantize`)
        options["calib_inputs"] = [load_npz(c) for c in calib]
    seq = [name] + (["integer_nonlinear"] if integer_only and quant == "int8" else [])
    return run_pipeline(g, seq, PassContext(options=options))


@app.command("compile")
def compile_(model: str = typer.Argument(..., help="model.onnx (float or QDQ) or graph.hwir"),
             target: str = typer.Option(..., "--target", "-t", help="cuda | llvm | fpga | asic"),
             output: str = typer.Option(..., "-o", "--output", help="artifact directory to write"),
             shape: Optional[list[str]] = typer.Option(None, "--shape", help=SHAPE_HELP),
             passes: Optional[str] = typer.Option(None, "--passes", help="pass pipeline (default: the target's)"),
             quant: str = typer.Option("none", "--quant", help="none | int8 | w8 | w4"),
             precision: str = typer.Option("fp16", "--precision", help="GPU float precision: fp16 | fp32"),
             calib: Optional[list[str]] = typer.Option(None, "--calib", help="calibration .npz (repeatable)"),
             calibrator: str = typer.Option("minmax", "--calibrator", help="minmax | percentile | entropy | mse"),
             group: int = typer.Option(128, "--group", help="group size for w4/w8"),
             keep_float: Optional[list[str]] = typer.Option(None, "--keep-float", help="layer to keep in float"),
             arch: str = typer.Option("sm_90", "--arch", help="CUDA arch (cuda target)"),
             array: str = typer.Option("16x16", "--array", help="systolic array ROWSxCOLS (fpga/asic)"),
             dataflow: str = typer.Option("ws", "--dataflow", help="ws | os (fpga/asic)"),
             tuning_db: Optional[str] = typer.Option(None, "--tuning-db", help="MetaSchedule database dir (cuda/llvm)"),
             integer_only: Optional[bool] = typer.Option(None, "--integer-only/--float-nonlinear",
                                                         help="int8: I-BERT integer softmax/GELU/layer norm (default: "
                                                              "on for fpga/asic/cuda, off for llvm)"),
             ) -> None:
    """Compile a model for a target and write a deployable artifact directory with report.json."""
    backend = get_backend(target)
    t0 = time.perf_counter()
    g = load_model(model, shape)
    g = run_pipeline(g, passes or backend.default_pipeline, PassContext())
    if integer_only is None:
        integer_only = target in ("fpga", "asic", "cuda")
    g = quantize_graph(g, quant, calib, calibrator, group, keep_float, integer_only=integer_only)
    report = backend.compile(g, Path(output), precision=precision, arch=arch, array=array, dataflow=dataflow,
                             tuning_db=tuning_db, quant=quant, source=str(model))
    console.print(f"compiled {model} for {target} in {time.perf_counter() - t0:.1f} s -> {output}")
    for k in ("summary",):
        if k in report:
            console.print(report[k])
