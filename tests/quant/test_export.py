"""QDQ ONNX export: ONNX Runtime runs it and agrees with hwcomp's interpreter; the frontend re-imports it."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from hwcomp.errors import QuantizationError
from hwcomp.frontend.onnx import load_onnx
from hwcomp.interp import run
from hwcomp.passes import PassContext, run_pipeline
from hwcomp.quant.export import export_qdq
from tests.builders import make_model


@pytest.fixture
def linear_model(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((32, 16)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    m = make_model([helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Add", ["h", "b"], ["y"], name="add")],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])], {"w": w, "b": b})
    p = tmp_path / "lin.onnx"
    onnx.save(m, p)
    return p


def _ort(path, feeds, optimize=True):
    so = ort.SessionOptions()
    if not optimize:  # plain QDQ semantics (ORT's fused 8-bit MatMulNBits kernel approximates activations)
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return s.run(None, feeds)[0]


@pytest.mark.parametrize("smooth", [None, 0.75])
def test_int8_qdq_export_agrees_with_interpreter_within_one_step(linear_model, tmp_path, smooth):
    rng = np.random.default_rng(1)
    calib = [{"x": (rng.standard_normal((4, 32)) * (1 + 9 * (np.arange(32) == 3))).astype(np.float32)} for _ in range(4)]
    g = run_pipeline(load_onnx(linear_model), "default")
    q = run_pipeline(g, ["quantize_int8"], PassContext({"calib_inputs": calib, "smooth_alpha": smooth, "calibrator": "minmax"}))
    out = tmp_path / "q.onnx"
    export_qdq(linear_model, q, out)
    ops = [n.op_type for n in onnx.load(out).graph.node]
    assert ops.count("QuantizeLinear") == 1 and ops.count("DequantizeLinear") == 2
    x = calib[0]["x"]
    mine, theirs = run(q, {"x": x})["y"], _ort(out, {"x": x})
    qd = next(n for n in q.nodes if n.op == "qdense")
    step = float(np.max(qd.attrs["acc_scale"]))  # one unit of the int32 accumulator
    assert np.abs(mine - theirs).max() <= 1e-5 * np.abs(mine).max() + step
    # hwcomp re-imports its own QDQ file and runs it
    back = run(load_onnx(out), {"x": x})["y"]
    assert np.allclose(back, theirs, atol=1e-4)


@pytest.mark.parametrize("bits,group", [(4, 8), (8, 16)])
def test_weight_only_export_blocked_dequantize_agrees(linear_model, tmp_path, bits, group):
    g = run_pipeline(load_onnx(linear_model), "default")
    q = run_pipeline(g, [f"quantize_w{bits}"], PassContext({"group_size": group}))
    out = tmp_path / "w.onnx"
    m = export_qdq(linear_model, q, out)
    assert next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 21
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear")
    assert {a.name: helper.get_attribute_value(a) for a in dq.attribute}["block_size"] == group
    x = np.random.default_rng(2).standard_normal((4, 32)).astype(np.float32)
    mine = run(q, {"x": x})["y"]
    assert np.allclose(mine, _ort(out, {"x": x}, optimize=False), rtol=1e-5, atol=1e-5)
    assert np.abs(_ort(out, {"x": x}) - mine).max() < 0.02 * np.abs(mine).max()  # ORT's fused kernel: close


def test_bert_tiny_int8_export_runs_in_ort_close_to_interpreter(bert_tiny, tmp_path):
    path, g, calib, ev = bert_tiny
    q = run_pipeline(g, ["quantize_int8"], PassContext({"calib_inputs": calib}))
    out = tmp_path / "bert_q.onnx"
    export_qdq(path, q, out)
    mine = run(q, ev[0])["last_hidden_state"]
    theirs = _ort(out, ev[0])
    assert np.abs(mine - theirs).max() < 0.05 * np.abs(mine).max()


def test_export_rejects_integer_nonlinear_ops(bert_tiny, tmp_path):
    path, g, calib, _ = bert_tiny
    q = run_pipeline(g, ["quantize_int8", "integer_nonlinear"], PassContext({"calib_inputs": calib}))
    with pytest.raises(QuantizationError, match="cannot express the integer ops"):
        export_qdq(path, q, tmp_path / "x.onnx")


def test_fold_qdq_turns_exported_qdq_back_into_qdense(bert_tiny, tmp_path):
    path, g, calib, ev = bert_tiny
    q = run_pipeline(g, ["quantize_int8"], PassContext({"calib_inputs": calib}))
    out = tmp_path / "bert_q.onnx"
    export_qdq(path, q, out)
    imported = run_pipeline(load_onnx(out, {"input_ids": (2, 16), "attention_mask": (2, 16)}), "default")
    ctx = PassContext(verify_each=True)
    folded = run_pipeline(imported, ["fold_qdq"], ctx)
    assert ctx.stats["fold_qdq"]["qdense"] == 12 and "QuantizeLinear" not in folded.op_histogram()
    a, b = run(folded, ev[0])["last_hidden_state"], run(q, ev[0])["last_hidden_state"]
    assert np.abs(a - b).max() < 0.02 * np.abs(b).max()


def test_fold_qdq_reads_ort_quantize_static_output(bert_tiny, tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    path, g, calib, ev = bert_tiny

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib)

        def get_next(self):
            return next(self.it, None)

    out = tmp_path / "ort_q.onnx"
    quantize_static(str(path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    imported = run_pipeline(load_onnx(out, {"input_ids": (2, 16), "attention_mask": (2, 16)}), "default")
    ctx = PassContext()
    folded = run_pipeline(imported, ["fold_qdq"], ctx)
    assert ctx.stats["fold_qdq"]["qdense"] >= 1
    a, b = run(folded, ev[0])["last_hidden_state"], run(imported, ev[0])["last_hidden_state"]
    assert np.abs(a - b).max() < 0.05 * np.abs(b).max()
