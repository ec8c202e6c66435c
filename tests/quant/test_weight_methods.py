"""Weight-only methods (rtn / awq / gptq / awq+gptq): numerics against numpy oracles, the explicit AWQ scale in
the IR, the QDQ export in ONNX Runtime, and bad settings as one error."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from hwcomp.errors import QuantizationError
from hwcomp.frontend.onnx import load_onnx
from hwcomp.interp import run
from hwcomp.passes import PassContext, get_pass, run_pipeline
from hwcomp.quant import awq
from hwcomp.quant.calibrate import collect_moments
from hwcomp.quant.export import export_qdq
from hwcomp.quant.gptq import gptq_grouped
from hwcomp.quant.params import clipped_qparams, weight_grouped, weight_grouped_clip
from tests.builders import make_model

K, N, GROUP = 128, 48, 32


def _rtn_oracle(w, bits, group):
    """Group-wise asymmetric round to nearest, written out per group and column."""
    out = np.empty_like(w, np.float64)
    qmax = 2 ** bits - 1
    for g0 in range(0, w.shape[0], group):
        blk = w[g0:g0 + group].astype(np.float64)
        for n in range(w.shape[1]):
            lo, hi = min(blk[:, n].min(), 0.0), max(blk[:, n].max(), 0.0)
            s = float(np.float32((hi - lo) / qmax)) if hi > lo else 1.0
            z = np.clip(np.rint(-lo / s), 0, qmax)
            out[g0:g0 + group, n] = (np.clip(np.rint(blk[:, n] / s) + z, 0, qmax) - z) * s
    return out


def _deq(codes, scale, zero, group):
    idx = np.arange(codes.shape[0]) // group
    return (codes.astype(np.float64) - zero[idx]) * scale[idx]


def _out_mse(x, w, w_eff):
    return float(np.mean(np.sum(np.square(x.astype(np.float64) @ (w.astype(np.float64) - w_eff)), axis=1)))


@pytest.fixture(scope="module")
def outlier_dense():
    """x [512, K] with 4 outlier channels (x30), W [K, N]: the setting AWQ is for."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, K)).astype(np.float32)
    x[:, [5, 40, 77, 100]] *= 30.0
    w = (rng.standard_normal((K, N)) * 0.05).astype(np.float32)
    return x, w


def test_rtn_matches_numpy_oracle(outlier_dense):
    _, w = outlier_dense
    assert np.allclose(_deq(*weight_grouped(w, 4, GROUP), GROUP), _rtn_oracle(w, 4, GROUP), rtol=0, atol=1e-7)


def test_awq_output_error_below_rtn_on_outlier_channels(outlier_dense):
    x, w = outlier_dense
    x64 = x.astype(np.float64)
    h, mean_abs = x64.T @ x64 / len(x), np.abs(x64).mean(axis=0)
    s, alpha = awq.search_scale(h, mean_abs, [w], 4, GROUP)
    # the chosen alpha is the grid point with the least output MSE, each measured directly in numpy
    errs = []
    for a in awq.ALPHA_GRID:
        sa = np.abs(x64).mean(axis=0) ** a
        sa = (sa / np.sqrt(sa.max() * sa.min())).astype(np.float32)
        errs.append(_out_mse(x / sa, w * sa[:, None], _rtn_oracle((w * sa[:, None]).astype(np.float32), 4, GROUP)))
    assert alpha == awq.ALPHA_GRID[int(np.argmin(errs))] and alpha > 0
    rtn = _out_mse(x, w, _rtn_oracle(w, 4, GROUP))
    w_awq = _rtn_oracle((w * s[:, None]).astype(np.float32), 4, GROUP) / s[:, None]
    assert _out_mse(x, w, w_awq) == pytest.approx(min(errs), rel=1e-3)
    assert _out_mse(x, w, w_awq) < 0.6 * rtn
    # output_error (from E[x x^T]) is the mean squared output error over the rows
    assert awq.output_error(h, w, w_awq) == pytest.approx(_out_mse(x, w, w_awq), rel=1e-6)


def test_clip_search_is_the_best_ratio_per_group_and_column(outlier_dense):
    x, w = outlier_dense
    x64 = x.astype(np.float64)
    h = x64.T @ x64 / len(x)
    ratios = (1.0, 0.9, 0.8, 0.7)
    scale, zero = clipped_qparams(w, 4, GROUP, h, ratios)
    g, n = 1, 7  # one (group, column), brute force over the ratios
    col = w[g * GROUP:(g + 1) * GROUP, n].astype(np.float64)
    hg = h[g * GROUP:(g + 1) * GROUP, g * GROUP:(g + 1) * GROUP]
    best = None
    for r in ratios:
        lo, hi = min(col.min(), 0) * r, max(col.max(), 0) * r
        s = float(np.float32((hi - lo) / 15))
        z = np.clip(np.rint(-lo / s), 0, 15)
        e = col - (np.clip(np.rint(col / s) + z, 0, 15) - z) * s
        if best is None or e @ hg @ e < best[0]:
            best = (e @ hg @ e, s, z)
    assert scale[g, n] == np.float32(best[1]) and zero[g, n] == best[2]
    w_clip = _deq(*weight_grouped_clip(w, 4, GROUP, h, ratios), GROUP)
    assert _out_mse(x, w, w_clip) <= _out_mse(x, w, _rtn_oracle(w, 4, GROUP))


def test_gptq_beats_rtn_on_correlated_inputs_and_uses_its_static_groups():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((1024, K)) @ rng.standard_normal((K, K)) * 0.2 + rng.standard_normal((1024, K))).astype(np.float32)
    w = (rng.standard_normal((K, N)) * 0.05).astype(np.float32)
    x64 = x.astype(np.float64)
    h = x64.T @ x64 / len(x)
    codes, scale, zero = gptq_grouped(w, h, 4, GROUP)
    assert codes.min() >= 0 and codes.max() <= 15
    s_ref, z_ref = clipped_qparams(w, 4, GROUP, h)
    assert np.array_equal(scale, s_ref) and np.array_equal(zero, z_ref)
    gptq = _out_mse(x, w, _deq(codes, scale, zero, GROUP))
    assert gptq < 0.8 * _out_mse(x, w, _deq(*weight_grouped_clip(w, 4, GROUP, h), GROUP))  # error feedback pays
    assert gptq < 0.7 * _out_mse(x, w, _rtn_oracle(w, 4, GROUP))
    # fewer rows than K: the damped Hessian keeps it finite and still better than round to nearest
    few = x[:64].astype(np.float64)
    c2, s2, z2 = gptq_grouped(w, few.T @ few / len(few), 4, GROUP)
    assert np.isfinite(_deq(c2, s2, z2, GROUP)).all()
    assert _out_mse(x[:64], w, _deq(c2, s2, z2, GROUP)) < _out_mse(x[:64], w, _rtn_oracle(w, 4, GROUP))


def test_moments_are_those_of_the_non_padding_rows(bert_tiny):
    _, g, calib, _ = bert_tiny
    d = next(n for n in g.nodes if n.op == "dense")
    x = d.inputs[0]
    (m,) = collect_moments(g, calib[:2], [x]).values()
    rows = []
    for b in calib[:2]:
        seen = {}
        run(g, b, observer=lambda name, arr: seen.setdefault(name, arr) if name == x else None)
        rows.append(seen[x][b["attention_mask"] != 0])
    r = np.concatenate(rows).astype(np.float64)
    assert m.rows == len(r)
    assert np.allclose(m.h, r.T @ r / len(r)) and np.allclose(m.mean_abs, np.abs(r).mean(axis=0))


@pytest.fixture
def shared_input_model(tmp_path):
    """x [8, 64] (channel 3 an outlier) -> two MatMuls reading x (like query/key) -> Add."""
    rng = np.random.default_rng(2)
    w1, w2 = (rng.standard_normal((64, 16)).astype(np.float32) for _ in range(2))
    m = make_model([helper.make_node("MatMul", ["x", "w1"], ["a"], name="mm1"),
                    helper.make_node("MatMul", ["x", "w2"], ["b"], name="mm2"),
                    helper.make_node("Add", ["a", "b"], ["y"], name="add")],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 64])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 16])], {"w1": w1, "w2": w2})
    p = tmp_path / "shared.onnx"
    onnx.save(m, p)
    calib = [{"x": (rng.standard_normal((8, 64)) * (1 + 19 * (np.arange(64) == 3))).astype(np.float32)} for _ in range(8)]
    return p, calib


def test_awq_scale_is_one_explicit_mul_and_exact_before_rounding(shared_input_model):
    path, calib = shared_input_model
    g = run_pipeline(load_onnx(path), "default")
    ctx = PassContext({"calib_inputs": calib, "weight_method": "awq", "group_size": 16}, verify_each=True)
    q = run_pipeline(g, ["quantize_w4"], ctx)
    muls = [n for n in q.nodes if n.op == "Mul" and n.attr("awq")]
    assert len(muls) == 1 and muls[0].inputs[0] == "x" and ctx.stats["quantize_w4"]["awq_alpha"]["x"] > 0
    readers = [n for n in q.nodes if n.op == "wdense"]
    assert len(readers) == 2 and all(n.inputs[0] == muls[0].outputs[0] for n in readers)
    inv = q.constants[muls[0].inputs[1]]
    x = calib[0]["x"]
    for w in (g.constants["w1"], g.constants["w2"]):  # (x * 1/s)(W * s) == x W
        assert np.allclose((x * inv) @ (w * (1 / inv)[:, None]), x @ w, rtol=1e-5, atol=1e-4)
    # with 16-bit codes the rounding vanishes: the scaled graph computes the float model
    q16 = run_pipeline(g, ["quantize_w8"], PassContext({"calib_inputs": calib, "weight_method": "awq", "bits": 16,
                                                        "group_size": 16}))
    assert any(n.op == "Mul" and n.attr("awq") for n in q16.nodes)
    ref = run(g, {"x": x})["y"]
    assert np.abs(run(q16, {"x": x})["y"] - ref).max() < 1e-3 * np.abs(ref).max()


@pytest.mark.parametrize("method", ["rtn", "awq", "gptq", "awq+gptq"])
def test_qdq_export_runs_in_ort_and_agrees_with_interpreter(shared_input_model, tmp_path, method):
    path, calib = shared_input_model
    g = run_pipeline(load_onnx(path), "default")
    opts = {"weight_method": method, "group_size": 16, **({"calib_inputs": calib} if method != "rtn" else {})}
    q = run_pipeline(g, ["quantize_w4"], PassContext(opts))
    out = tmp_path / "w4.onnx"
    m = export_qdq(path, q, out)
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("DequantizeLinear") == 2 and ops.count("Mul") == (1 if method.startswith("awq") else 0)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # plain QDQ semantics
    sess = ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
    for b in calib[:3]:
        mine = run(q, b)["y"]
        assert np.allclose(sess.run(None, b)[0], mine, rtol=1e-5, atol=1e-5 * np.abs(mine).max())


def test_bert_tiny_awq_gptq_export_agrees_with_interpreter(bert_tiny, tmp_path):
    path, g, calib, ev = bert_tiny
    q = run_pipeline(g, ["quantize_w4"], PassContext({"calib_inputs": calib, "weight_method": "awq+gptq",
                                                      "group_size": 32}, verify_each=True))
    assert q.op_histogram()["wdense"] == 12
    out = tmp_path / "bert_w4.onnx"
    export_qdq(path, q, out)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, sess.run(None, ev[0])))
    mine = run(q, ev[0])["last_hidden_state"]
    assert np.abs(got["last_hidden_state"] - mine).max() < 1e-4 * np.abs(mine).max()


@pytest.mark.parametrize("opts,msg", [
    ({"weight_method": "awq", "awq_grid": []}, "AWQ alpha grid is empty"),
    ({"weight_method": "awq", "awq_grid": [0.5, 1.5]}, r"AWQ alpha grid values \[1.5\] outside \[0, 1\]"),
    ({"weight_method": "smoothquant"}, "unknown weight method 'smoothquant'; choose one of rtn, awq, gptq, awq\\+gptq"),
    ({"weight_method": "gptq", "gptq_damp": 0.0}, "GPTQ damping 0.0 must be positive"),
])
def test_bad_weight_method_settings(shared_input_model, opts, msg):
    path, calib = shared_input_model
    g = run_pipeline(load_onnx(path), "default")
    with pytest.raises(QuantizationError, match=msg):
        get_pass("quantize_w4")(g, PassContext({"calib_inputs": calib, **opts}))


def test_calibrated_method_without_calibration_names_the_fix(shared_input_model):
    path, _ = shared_input_model
    g = run_pipeline(load_onnx(path), "default")
    with pytest.raises(QuantizationError, match="weight method 'awq' needs calibration data"):
        get_pass("quantize_w4")(g, PassContext({"weight_method": "awq"}))


@pytest.mark.parametrize("args,msg", [
    (["--mode", "w4", "--weight-method", "awq"], "weight method 'awq' needs calibration data"),
    (["--mode", "w4", "--weight-method", "best"], "unknown weight method 'best'"),
    (["--mode", "int8", "--weight-method", "gptq"], "--weight-method is for the weight-only modes"),
])
def test_cli_bad_weight_method_is_one_error_line(cli, mlp_model, tmp_path, args, msg):
    path, _, _ = mlp_model
    r = cli("quantize", path, "--shape", "x=4x8", "-o", tmp_path / "o.onnx", *args)
    assert r.code == 2 and msg in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_cli_weight_method_gptq_with_calibration(cli, mlp_model, tmp_path):
    path, _, _ = mlp_model
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32))
    rep = tmp_path / "rep.json"
    r = cli("quantize", path, "--shape", "x=4x8", "--mode", "w4", "--group", "4", "--calib", calib,
            "--weight-method", "gptq", "-o", tmp_path / "g.onnx", "--report", rep)
    assert r.code == 0, r.err
    d = json.loads(rep.read_text())
    assert d["weight_method"] == "gptq" and d["ort_vs_hwcomp_max_abs"]["y"] < 1e-3
