"""`hwcomp quantize`: writes a QDQ model that `hwcomp run` and ONNX Runtime run; bad input -> one error line."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest


@pytest.fixture
def calib_npz(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "calib.npz"
    np.savez(p, x=rng.standard_normal((16, 8)).astype(np.float32))  # 4 batches of the --shape x=4x8
    return p


def test_quantize_int8_writes_qdq_and_report_and_hwcomp_runs_it(cli, mlp_model, calib_npz, tmp_path):
    path, _, _ = mlp_model
    out, rep = tmp_path / "q.onnx", tmp_path / "rep.json"
    r = cli("quantize", path, "--shape", "x=4x8", "--calib", calib_npz, "--calibrator", "minmax", "-o", out, "--report", rep)
    assert r.code == 0, r.err
    assert "accuracy vs float" in r.out and "onnxruntime_qdq" in r.out
    ops = [n.op_type for n in onnx.load(out).graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    d = json.loads(rep.read_text())
    assert d["hwcomp"]["y"]["max_abs"] < 0.1 and d["onnxruntime_qdq"]["y"]["max_abs"] < 0.1
    assert d["ort_vs_hwcomp_max_abs"]["y"] < 1e-4  # ORT on the QDQ file == hwcomp's integer pipeline
    feeds = tmp_path / "in.npz"
    np.savez(feeds, x=np.ones((4, 8), np.float32))
    r = cli("run", out, "--inputs", feeds)
    assert r.code == 0, r.err


def test_quantize_w4_with_groups(cli, mlp_model, tmp_path):
    path, _, _ = mlp_model
    r = cli("quantize", path, "--shape", "x=2x8", "--mode", "w4", "--group", "4", "-o", tmp_path / "w4.onnx")
    assert r.code == 0, r.err
    assert any(n.op_type == "DequantizeLinear" for n in onnx.load(tmp_path / "w4.onnx").graph.node)


@pytest.mark.parametrize("args,msg", [
    (["--mode", "int3"], "unknown --mode 'int3'"),
    (["--bits", "1"], "--bits 1 outside 2..16"),
    (["--bits", "17", "--mode", "w4"], "--bits 17 outside 2..16"),
    (["--pass", "no_such_pass"], "unknown pass 'no_such_pass'"),
    (["--calibrator", "kl"], "unknown calibrator 'kl'"),
    ([], "needs calibration data"),
])
def test_quantize_bad_input_is_one_error_line(cli, mlp_model, calib_npz, tmp_path, args, msg):
    path, _, _ = mlp_model
    calib = ["--calib", str(calib_npz)] if args and args[0] != "--mode" and msg != "needs calibration data" else []
    if not args:
        calib = []
    r = cli("quantize", path, "--shape", "x=4x8", "-o", tmp_path / "o.onnx", *calib, *args)
    assert r.code == 2
    assert msg in r.err and "Traceback" not in r.err


def test_quantize_calibration_with_wrong_names_or_shapes(cli, mlp_model, tmp_path):
    path, _, _ = mlp_model
    bad = tmp_path / "bad.npz"
    np.savez(bad, y=np.zeros((4, 8), np.float32))
    r = cli("quantize", path, "--shape", "x=4x8", "--calib", bad, "-o", tmp_path / "o.onnx")
    assert r.code == 2 and "do not match the graph inputs" in r.err
    np.savez(bad, x=np.zeros((4, 5), np.float32))
    r = cli("quantize", path, "--shape", "x=4x8", "--calib", bad, "-o", tmp_path / "o.onnx")
    assert r.code == 2 and "has shape [4, 5], the graph expects [4, 8]" in r.err
    empty = tmp_path / "empty.npz"
    np.savez(empty)
    r = cli("quantize", path, "--shape", "x=4x8", "--calib", empty, "-o", tmp_path / "o.onnx")
    assert r.code == 2 and "error:" in r.err
