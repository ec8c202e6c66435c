"""MiniLM-L6 (real weights) int8 / w8 / w4 accuracy: hwcomp vs ONNX Runtime quantize_static.

Calibration: the zoo's calibration sentences (the first --ncalib for int8, the first --weight-ncalib for
w8/w4); evaluation: its held-out eval sentences (sentence-embedding cosine to float32 and top-1
nearest-neighbour agreement). Results are merged by key into bench/quant/minilm_accuracy.json (int8 modes as
"int8/<calibrator>", weight-only as "w4/g<group>/<method>").

    python bench/quant/minilm_accuracy.py [--seq 64] [--batch 8] [--ncalib 32] [--ort]
    python bench/quant/minilm_accuracy.py --modes w4 --groups 128,64,32 --weight-methods rtn,awq,gptq,awq+gptq
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hwcomp import zoo
from hwcomp.frontend.onnx import load_onnx
from hwcomp.interp import run
from hwcomp.passes import PassContext, run_pipeline
from hwcomp.passes.quantize import WEIGHT_METHODS
from hwcomp.quant.evaluate import embedding_report, run_batches


def batches_of(sents, batch, seq):
    n = len(sents) - len(sents) % batch
    return [zoo.tokenize(sents[i:i + batch], seq) for i in range(0, n, batch)]


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ncalib", type=int, default=32)
    ap.add_argument("--ort", action="store_true", help="also run ORT quantize_static (QDQ, per-channel)")
    ap.add_argument("--modes", default="int8,int8-nosmooth,int8+inl,w8,w4")
    ap.add_argument("--weight-ncalib", type=int, default=96, help="calibration sentences for w8/w4 (96: all)")
    ap.add_argument("--groups", default="128", help="w8/w4 group sizes")
    ap.add_argument("--weight-methods", default=",".join(WEIGHT_METHODS))
    ap.add_argument("-o", "--out", default=str(Path(__file__).with_suffix(".json")))
    a = ap.parse_args(argv)
    path = zoo.get("minilm-l6")
    shapes = {"input_ids": (a.batch, a.seq), "attention_mask": (a.batch, a.seq)}
    g = run_pipeline(load_onnx(path, shapes), "default")
    calib = batches_of(zoo.calibration_sentences()[: a.ncalib], a.batch, a.seq)
    wcalib = batches_of(zoo.calibration_sentences()[: a.weight_ncalib], a.batch, a.seq)
    ev = batches_of(zoo.eval_sentences(), a.batch, a.seq)
    t = time.time()
    ref = run_batches(lambda b: run(g, b), ev)["sentence_embedding"]
    out = Path(a.out)
    res = json.loads(out.read_text()) if out.exists() else {"results": {}}
    res.update({"model": "minilm-l6", "seq": a.seq, "calib_sentences": len(calib) * a.batch,
                "weight_calib_sentences": len(wcalib) * a.batch, "eval_sentences": len(ref),
                "float_eval_s": round(time.time() - t, 1)})
    res["note"] = ("int8: static PTQ, per-channel int8 weights, per-tensor int8 activations (SmoothQuant alpha 0.75 "
                   "folded into weights unless -nosmooth), attention/softmax/layernorm float; int8+inl: also I-BERT "
                   "integer softmax/GELU/layernorm; w8/w4: weight-only group-wise asymmetric, w<bits>/g<group>/<method> "
                   "with method rtn (round to nearest, no calibration), awq (activation-aware scales + output-error "
                   "clip search), gptq (act-order, damp 0.1, clip-searched static groups), awq+gptq; "
                   "ort_static_qdq: onnxruntime quantize_static QDQ per-channel on the same calibration batches")

    def measure(key: str, passes: list[str], ctx: PassContext, n_calib: int) -> None:
        t = time.time()
        q = run_pipeline(g, passes, ctx)
        tq = time.time() - t
        got = run_batches(lambda b: run(q, b), ev)["sentence_embedding"]
        res["results"][key] = {**embedding_report(ref, got), "quantize_s": round(tq, 1), "calib_sentences": n_calib}
        print(key, res["results"][key], flush=True)

    ctx8 = PassContext({"calib_inputs": calib})  # one context: the calibration statistics are reused
    for mode in a.modes.split(","):
        if mode.startswith("int8"):
            ctx8.options["smooth_alpha"] = None if mode == "int8-nosmooth" else 0.75
            passes = ["quantize_int8"] + (["integer_nonlinear"] if mode == "int8+inl" else [])
            for c in ("minmax", "percentile", "entropy", "mse"):
                ctx8.options["calibrator"] = c
                measure(f"{mode}/{c}", passes, ctx8, len(calib) * a.batch)
            continue
        for group in map(int, a.groups.split(",")):
            for method in a.weight_methods.split(","):
                ctx = PassContext({"group_size": group, "weight_method": method,
                                   **({"calib_inputs": wcalib} if method != "rtn" else {})})
                measure(f"{mode}/g{group}/{method}", [f"quantize_{mode}"], ctx, 0 if method == "rtn" else len(wcalib) * a.batch)
    if a.ort:
        from hwcomp.quant.ort_baseline import ort_static
        for c in ("MinMax", "Percentile", "Entropy"):
            try:
                got = ort_static(path, calib, ev, c)
                res["results"][f"ort_static_qdq/{c}"] = embedding_report(ref, got)
            except Exception as e:  # ORT's own failures are part of the comparison
                res["results"][f"ort_static_qdq/{c}"] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
            print(c, res["results"][f"ort_static_qdq/{c}"], flush=True)
    out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
