"""quantize_int8 / quantize_w8 / quantize_w4 / integer_nonlinear on a tiny BERT: structure, numerics, errors."""

from __future__ import annotations

import numpy as np
import pytest

from hwcomp.errors import PassError, QuantizationError
from hwcomp.interp import run
from hwcomp.ir import verify
from hwcomp.passes import PassContext, get_pass, run_pipeline
from hwcomp.quant import calibrate as cal
from hwcomp.quant.evaluate import cosine_rows


def _cos(g, q, batches):
    outs = []
    for b in batches:
        r, o = run(g, b)["last_hidden_state"], run(q, b)["last_hidden_state"]
        outs.append(cosine_rows(r.reshape(-1, r.shape[-1]), o.reshape(-1, o.shape[-1])).min())
    return min(outs)


@pytest.mark.parametrize("calibrator", ["minmax", "percentile", "entropy", "mse"])
def test_quantize_int8_every_dense_becomes_qdense_and_stays_accurate(bert_tiny, calibrator):
    _, g, calib, ev = bert_tiny
    ctx = PassContext({"calib_inputs": calib, "calibrator": calibrator}, verify_each=True)
    q = run_pipeline(g, ["quantize_int8"], ctx)
    hist = q.op_histogram()
    assert hist.get("qdense") == g.op_histogram()["dense"] and "dense" not in hist
    assert hist["attention"] == g.op_histogram()["attention"]  # attention (and its float mask) stays float
    mask_vals = {n.inputs[3] for n in g.nodes if n.op == "attention" and len(n.inputs) > 3}
    assert not mask_vals & set(ctx.options["calib_stats"])  # the mask arithmetic is never calibrated
    assert _cos(g, q, ev) > 0.99


def test_integer_nonlinear_swaps_in_ibert_ops_and_folds_requantization(bert_tiny):
    _, g, calib, ev = bert_tiny
    q = run_pipeline(g, ["quantize_int8", "integer_nonlinear"],
                     PassContext({"calib_inputs": calib, "smooth_alpha": None}, verify_each=True))
    hist = q.op_histogram()
    assert hist["qattention"] == 2 and hist["int_gelu"] == 2 and hist["int_layer_norm"] >= 4
    assert "attention" not in hist and "gelu" not in hist
    prod = q.producers()
    for n in q.nodes:  # no dequantize -> quantize round trips with the same parameters are left
        if n.op == "quantize" and n.inputs[0] in prod and prod[n.inputs[0]].op == "dequantize":
            d = prod[n.inputs[0]]
            assert not np.array_equal(np.asarray(d.attrs["scale"]), np.asarray(n.attrs["scale"]))
    # q/k/v come straight from requantizing qdense ops
    for n in q.nodes:
        if n.op == "qattention":
            assert all(prod[i].op == "qdense" and prod[i].attrs["out_dtype"] == "int8" for i in n.inputs[:3])
    assert _cos(g, q, ev) > 0.95


def test_integer_nonlinear_per_op_selection_keeps_the_rest_float(bert_tiny):
    _, g, calib, _ = bert_tiny
    q = run_pipeline(g, ["quantize_int8", "integer_nonlinear"],
                     PassContext({"calib_inputs": calib, "integer_ops": ["gelu"]}))
    hist = q.op_histogram()
    assert hist["int_gelu"] == 2 and hist["attention"] == 2 and "int_layer_norm" not in hist


def test_keep_float_and_only_select_layers(bert_tiny):
    _, g, calib, _ = bert_tiny
    ctx = PassContext({"calib_inputs": calib, "keep_float": ["*intermediate*"]})
    q = run_pipeline(g, ["quantize_int8"], ctx)
    assert q.op_histogram()["dense"] == 2 and q.op_histogram()["qdense"] == 10
    stats = ctx.options["calib_stats"]
    name = next(n.name for n in g.nodes if n.op == "dense")
    q1 = run_pipeline(g, ["quantize_int8"], PassContext({"calib_inputs": calib, "calib_stats": stats, "only": [name]}))
    assert q1.op_histogram()["qdense"] == 1


@pytest.mark.parametrize("mode,cos", [("quantize_w8", 0.999), ("quantize_w4", 0.95)])
def test_weight_only_modes(bert_tiny, mode, cos):
    _, g, _, ev = bert_tiny
    q = run_pipeline(g, [mode], PassContext({"group_size": 32}, verify_each=True))
    assert q.op_histogram()["wdense"] == 12
    assert _cos(g, q, ev) > cos


def test_calibration_errors_name_the_problem(bert_tiny):
    _, g, calib, _ = bert_tiny
    p = get_pass("quantize_int8")
    with pytest.raises(QuantizationError, match="empty calibration set"):
        p(g, PassContext({"calib_inputs": []}))
    with pytest.raises(QuantizationError, match=r"do not match the graph inputs.*missing \['attention_mask'\]"):
        p(g, PassContext({"calib_inputs": [{"input_ids": calib[0]["input_ids"]}]}))
    bad = {k: v[:, :8] for k, v in calib[0].items()}
    with pytest.raises(QuantizationError, match=r"input 'input_ids' has shape \[2, 8\], the graph expects \[2, 16\]"):
        p(g, PassContext({"calib_inputs": [bad]}))
    with pytest.raises(QuantizationError, match="unknown calibrator 'kl'"):
        p(g, PassContext({"calib_inputs": calib, "calibrator": "kl"}))
    with pytest.raises(QuantizationError, match="bit width 1 outside 2..16"):
        p(g, PassContext({"calib_inputs": calib, "bits": 1}))
    with pytest.raises(QuantizationError, match="bit width 17 outside 2..16"):
        get_pass("quantize_w4")(g, PassContext({"bits": 17}))
    with pytest.raises(PassError, match="unknown pass 'quantize_int3'"):
        run_pipeline(g, ["quantize_int3"])
    with pytest.raises(PassError, match="run quantize_int8 first"):
        run_pipeline(g, ["integer_nonlinear"])


def test_stacked_calibration_arrays_split_into_graph_batches(bert_tiny):
    _, g, calib, _ = bert_tiny
    stacked = {k: np.concatenate([c[k] for c in calib]) for k in calib[0]}
    assert len(cal.validate_batches(g, [stacked])) == 4


def test_calibrators_survive_degenerate_and_mask_like_data():
    s = cal.Stats()
    s.update(np.zeros(100, np.float32))
    for m in cal.CALIBRATORS:
        lo, hi = s.range(m)
        assert lo <= 0 <= hi
    s = cal.Stats()
    s.update(np.array([0.0, 1.0, -3.4e38], np.float32))  # a huge negative mask constant
    s.update(np.random.default_rng(0).standard_normal(10000).astype(np.float32) * 1e3)
    for m in cal.CALIBRATORS:
        lo, hi = s.range(m)
        assert np.isfinite(lo) and np.isfinite(hi) and lo <= hi


def test_histogram_growth_keeps_counts_and_percentile_close_to_numpy():
    x = np.random.default_rng(1).standard_normal(200_000).astype(np.float32)
    s = cal.Stats()
    for part in np.array_split(np.sort(np.abs(x)) * np.sign(x), 8):  # growing range forces re-binning
        s.update(part)
    assert s.hist.sum() == x.size
    lo, hi = s.percentile(99.0)
    assert abs(hi - np.percentile(x, 99.5)) < 0.05 and abs(lo - np.percentile(x, 0.5)) < 0.05


def test_kl_threshold_clips_a_long_tail():
    x = np.abs(np.random.default_rng(2).standard_normal(100_000))
    h, _ = np.histogram(np.append(x, 50.0), bins=2048, range=(0, 50))  # one far outlier
    t = cal.kl_threshold(h)
    assert 128 <= t < 1024  # threshold well below the outlier (bin 2047), above the bulk


def test_verify_passes_on_every_quantized_graph(bert_tiny):
    _, g, calib, _ = bert_tiny
    for seq in (["quantize_int8"], ["quantize_int8", "integer_nonlinear"], ["quantize_w4"]):
        verify(run_pipeline(g, seq, PassContext({"calib_inputs": calib})))
