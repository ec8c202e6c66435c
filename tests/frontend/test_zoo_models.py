"""Every zoo model x both torch exporters x eager/SDPA attention: hwcomp imports it, its interpreter
matches ONNX Runtime, and fusion turns every attention block, layer norm and GELU into fused ops."""

import numpy as np
import pytest

import hwcomp
from hwcomp import zoo
from hwcomp.passes import PassContext, run_pipeline

TINY = ["bert-tiny", "gpt2-tiny", "minilm-l6"]
LARGE = ["bert-small", "bert-base", "gpt2-small"]
GRID = [(m, e, a) for m in TINY + LARGE for e in zoo.EXPORTERS for a in zoo.ATTNS]
BATCH, SEQ = 2, 32
TOL = 1e-4  # max abs error relative to the output's max magnitude


def _params():
    for m, e, a in GRID:
        marks = [pytest.mark.slow] if m in LARGE else []
        yield pytest.param(m, e, a, marks=marks, id=f"{m}-{e}-{a}")


def _rel_err(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-12))


@pytest.mark.parametrize("name,exporter,attn", list(_params()))
def test_import_run_and_fuse_match_onnxruntime(name, exporter, attn):
    path = zoo.get(name, exporter=exporter, attn=attn)
    feeds = zoo.sample_inputs(name, batch=BATCH, seq=SEQ, seed=1)
    ref = dict(zip(zoo.output_names(name), zoo.ort_run(path, feeds)))

    g = hwcomp.load_onnx(path, {k: v.shape for k, v in feeds.items()})
    hwcomp.verify(g)
    out = hwcomp.run(g, feeds)
    errs = {k: _rel_err(out[k], ref[k]) for k in ref}

    fused = run_pipeline(g, "default", PassContext(verify_each=True))
    fout = hwcomp.run(fused, feeds)
    ferrs = {k: _rel_err(fout[k], ref[k]) for k in ref}
    print(f"\n{name}/{exporter}/{attn}: rel. max error vs ORT {errs} (fused {ferrs}); "
          f"{len(g.nodes)} -> {len(fused.nodes)} nodes")
    assert max(errs.values()) <= TOL
    assert max(ferrs.values()) <= TOL

    layers = zoo.config(name)["layers"]
    h = fused.op_histogram()
    assert h.get("attention", 0) == layers, h
    n_ln = h.get("layer_norm", 0) + h.get("add_layer_norm", 0)
    assert n_ln == 2 * layers + 1, h
    gelus = h.get("gelu", 0) + sum(1 for n in fused.nodes if n.op == "dense" and n.attr("activation", "").startswith("gelu"))
    assert gelus == layers, h
    for raw in ("Softmax", "LayerNormalization", "Erf", "Tanh", "Gelu", "MatMul", "Gemm", "ReduceMean"):
        assert raw not in h, f"{raw} left unfused: {h}"
