"""`hwcomp quantize MODEL.onnx --mode int8|w8|w4 -o OUT.onnx`: quantize, write QDQ ONNX, report accuracy."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from ..errors import InputError, QuantizationError
from ..interp import run as interp_run
from ..passes import PassContext, get_pass, run_pipeline
from .app import app, console
from .common import SHAPE_HELP, load_model, load_npz

MODES = {"int8": "quantize_int8", "w8": "quantize_w8", "w4": "quantize_w4"}


def _token_batches(g, sentences: list[str]) -> list[dict]:
    from .. import zoo

    batch, seq = g.types["input_ids"].shape
    n = len(sentences) - len(sentences) % batch
    out = []
    for i in range(0, n, batch):
        t = zoo.tokenize(sentences[i:i + batch], seq)
        if "token_type_ids" in g.inputs:
            t["token_type_ids"] = np.zeros_like(t["input_ids"])
        out.append({k: v for k, v in t.items() if k in g.inputs})
    return out


def _is_token_model(g) -> bool:
    return "input_ids" in g.inputs and set(g.inputs) <= {"input_ids", "attention_mask", "token_type_ids"}


def accuracy_report(g_float, g_quant, batches: list[dict], qdq_path: Path | None = None) -> dict:
    """Per-output errors of the quantized graph (hwcomp interpreter, and ORT on the QDQ file when given)
    against the float graph; for a ``sentence_embedding`` output also embedding cosine and top-1 NN agreement."""
    from ..quant.evaluate import embedding_report, output_errors, run_batches

    ref = run_batches(lambda b: interp_run(g_float, b), batches)
    got = run_batches(lambda b: interp_run(g_quant, b), batches)
    rep: dict = {"n_batches": len(batches), "hwcomp": output_errors(ref, got)}
    if "sentence_embedding" in ref:
        rep["hwcomp_embedding"] = embedding_report(ref["sentence_embedding"], got["sentence_embedding"])
    if qdq_path is not None:
        import onnxruntime as ort

        sess = ort.InferenceSession(str(qdq_path), providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        ort_out = run_batches(lambda b: dict(zip(names, sess.run(None, b))), batches)
        ort_out = {k: v for k, v in ort_out.items() if k in ref}
        rep["onnxruntime_qdq"] = output_errors({k: ref[k] for k in ort_out}, ort_out)
        rep["ort_vs_hwcomp_max_abs"] = {k: float(np.abs(ort_out[k] - got[k]).max()) for k in ort_out}
        if "sentence_embedding" in ort_out:
            rep["onnxruntime_qdq_embedding"] = embedding_report(ref["sentence_embedding"], ort_out["sentence_embedding"])
    return rep


@app.command()
def quantize(model: str = typer.Argument(..., help="float model.onnx"),
             output: str = typer.Option(..., "-o", "--output", help="QDQ .onnx to write"),
             mode: str = typer.Option("int8", "--mode", help="int8 (static PTQ) | w8 | w4 (weight-only)"),
             calib: Optional[list[str]] = typer.Option(None, "--calib", help="calibration .npz keyed by input names (repeatable; arrays may stack several batches along axis 0)"),
             calibrator: str = typer.Option("minmax", "--calibrator", help="minmax | percentile | entropy | mse"),
             group: int = typer.Option(128, "--group", help="weight-only group size along K"),
             weight_method: Optional[str] = typer.Option(None, "--weight-method", help="w8/w4: rtn | awq | gptq | awq+gptq (default gptq with calibration data, else rtn)"),
             bits: Optional[int] = typer.Option(None, "--bits", help="integer width (2..16; default 8 for int8/w8, 4 for w4)"),
             smooth: float = typer.Option(0.75, "--smooth-alpha", help="SmoothQuant migration strength for int8 (negative: off)"),
             shape: Optional[list[str]] = typer.Option(None, "--shape", help=SHAPE_HELP),
             keep_float: Optional[list[str]] = typer.Option(None, "--keep-float", help="layer (node/weight name or glob) to keep float (repeatable)"),
             passes: Optional[list[str]] = typer.Option(None, "--pass", help="extra pass to run after quantization (repeatable)"),
             eval_npz: Optional[list[str]] = typer.Option(None, "--eval", help="held-out .npz for the accuracy report (default: held-out sentences for token models, else the calibration data)"),
             report: Optional[str] = typer.Option(None, "--report", help="write the accuracy report as JSON"),
             save_ir: Optional[str] = typer.Option(None, "--save-ir", help="also save the quantized hwcomp graph (.hwir)")) -> None:
    """Quantize a float ONNX model (static int8 PTQ or weight-only int8/int4), write it as QDQ ONNX and
    print its accuracy against the float model."""
    if mode not in MODES:
        raise QuantizationError(f"unknown --mode {mode!r}; choose int8, w8 or w4")
    if weight_method is not None and mode == "int8":
        raise QuantizationError("--weight-method is for the weight-only modes w8/w4 (int8 uses --calibrator)")
    for p in passes or []:
        get_pass(p)
    from ..quant.params import check_bits
    nbits = check_bits(bits if bits is not None else (4 if mode == "w4" else 8), "--bits")
    calib_sets = [load_npz(c) for c in calib or []]
    first = calib_sets[0] if calib_sets else None
    g = load_model(model, shape, _first_batch(first, shape))
    t0 = time.perf_counter()
    fused = run_pipeline(g, "default")
    opts: dict = {"calibrator": calibrator, "group_size": group, "bits": nbits, "keep_float": list(keep_float or []),
                  "smooth_alpha": None if smooth < 0 else smooth, "weight_method": weight_method}
    if calib_sets:
        opts["calib_inputs"] = calib_sets
    elif _is_token_model(fused):  # built-in calibration sentences (int8: the first 32; w8/w4: all, for GPTQ/AWQ)
        from .. import zoo
        opts["calib_inputs"] = _token_batches(fused, zoo.calibration_sentences()[:32 if mode == "int8" else None])
    if mode == "int8":
        if "calib_inputs" not in opts:
            raise QuantizationError("int8 quantization needs calibration data for this model: pass --calib FILE.npz "
                                    f"keyed by {', '.join(fused.inputs)}")
    ctx = PassContext(opts)
    q = run_pipeline(fused, [MODES[mode], *(passes or [])], ctx)
    t_quant = time.perf_counter() - t0
    from ..quant.export import export_qdq
    out = Path(output)
    export_qdq(model, q, out)
    if save_ir:
        from ..ir import save as save_ir_fn
        save_ir_fn(q, save_ir)
    # accuracy
    if eval_npz:
        from ..quant.calibrate import validate_batches
        try:
            ev = validate_batches(fused, [load_npz(e) for e in eval_npz])
        except QuantizationError as e:
            raise InputError(f"--eval: {e}") from None
        ev_src = "--eval"
    elif _is_token_model(fused):
        from .. import zoo
        ev, ev_src = _token_batches(fused, zoo.eval_sentences()), "held-out sentences"
    else:
        from ..quant.calibrate import validate_batches
        ev, ev_src = validate_batches(fused, opts.get("calib_inputs") or [_random_feeds(fused)]), "calibration data"
    rep = accuracy_report(fused, q, ev, out)
    rep.update({"model": model, "mode": mode, "calibrator": calibrator if mode == "int8" else None,
                "weight_method": q.metadata["quant"].get("weight_method"), "eval": ev_src,
                "quantize_s": round(t_quant, 2), "output": str(out), "pass_stats": _jsonable(ctx.stats)})
    _print(rep)
    if report:
        Path(report).write_text(json.dumps(rep, indent=1))


def _first_batch(first, shape):
    return first if first is not None and not shape else None


def _random_feeds(g) -> dict:
    rng = np.random.default_rng(0)
    return {i: rng.standard_normal(g.types[i].shape).astype(g.types[i].dtype.numpy) if g.types[i].dtype.is_float
            else np.zeros(g.types[i].shape, g.types[i].dtype.numpy) for i in g.inputs}


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    return x if isinstance(x, (int, float, str, bool, type(None))) else str(x)


def _print(rep: dict) -> None:
    t = Table(title=f"{rep['mode']} accuracy vs float ({rep['eval']}, {rep['n_batches']} batches)")
    for c in ("runtime", "output", "max abs err", "mean abs err", "cos mean", "cos min"):
        t.add_column(c)
    for rt in ("hwcomp", "onnxruntime_qdq"):
        for k, v in rep.get(rt, {}).items():
            t.add_row(rt, k, f"{v['max_abs']:.4g}", f"{v['mean_abs']:.4g}", f"{v['cos_mean']:.5f}", f"{v['cos_min']:.5f}")
    console.print(t)
    for rt in ("hwcomp", "onnxruntime_qdq"):
        e = rep.get(f"{rt}_embedding")
        if e:
            console.print(f"{rt}: sentence-embedding cos mean {e['emb_cos_mean']:.5f} min {e['emb_cos_min']:.5f}, "
                          f"top-1 nearest-neighbour agreement {e['nn_top1_agreement']:.3f} ({e['n']} sentences)")
    console.print(f"wrote {rep['output']} ({rep['quantize_s']} s to fuse + calibrate + quantize)")
