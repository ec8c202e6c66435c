"""Bad input gets one clear `error:` line and a non-zero exit, never a traceback."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.builders import make_model


def _one_error_line(res, *needles):
    assert res.code == 2, (res.code, res.out, res.err)
    lines = [l for l in res.err.strip().splitlines() if l.strip()]
    text = " ".join(lines)
    assert lines[0].startswith("error:"), res.err
    assert "Traceback" not in res.err + res.out
    for n in needles:
        assert n in text, (n, text)


def test_truncated_onnx_file(cli, mlp_model, tmp_path):
    path, _, _ = mlp_model
    data = path.read_bytes()
    bad = tmp_path / "trunc.onnx"
    bad.write_bytes(data[: len(data) // 2])
    _one_error_line(cli("inspect", bad, "--shape", "x=1x8"), "trunc.onnx", "not a valid ONNX")


def test_non_onnx_file(cli, tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a model\n" * 10)
    _one_error_line(cli("inspect", bad), "not a valid ONNX")


def test_missing_file(cli, tmp_path):
    _one_error_line(cli("inspect", tmp_path / "nope.onnx"), "no such file")


def test_unsupported_op_names_op_and_node(cli, tmp_path):
    m = make_model([helper.make_node("Det", ["x"], ["y"], name="my_det")],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])])
    p = tmp_path / "det.onnx"
    onnx.save(m, p)
    _one_error_line(cli("inspect", p), "Det", "my_det")


def test_symbolic_dim_without_shape(cli, mlp_model):
    path, _, _ = mlp_model
    _one_error_line(cli("inspect", path), "'batch'", "--shape x=")


def test_bad_shape_spec(cli, mlp_model):
    path, _, _ = mlp_model
    _one_error_line(cli("inspect", path, "--shape", "x=1xq"), "--shape")


def test_npz_missing_input(cli, mlp_model, tmp_path):
    path, _, _ = mlp_model
    np.savez(tmp_path / "in.npz", other=np.zeros((1, 8), np.float32))
    _one_error_line(cli("run", path, "--inputs", tmp_path / "in.npz", "--shape", "x=1x8"), "'x'")


def test_npz_wrong_dtype(cli, mlp_model, tmp_path):
    path, _, _ = mlp_model
    np.savez(tmp_path / "in.npz", x=np.zeros((1, 8), np.int32))
    _one_error_line(cli("run", path, "--inputs", tmp_path / "in.npz"), "dtype int32", "float32")


def test_npz_wrong_shape(cli, mlp_model, tmp_path):
    path, _, _ = mlp_model
    np.savez(tmp_path / "in.npz", x=np.zeros((1, 7), np.float32))
    _one_error_line(cli("run", path, "--inputs", tmp_path / "in.npz"), "x")


def test_npz_wrong_shape_against_given_shape(cli, mlp_model, tmp_path):
    path, _, _ = mlp_model
    np.savez(tmp_path / "in.npz", x=np.zeros((2, 8), np.float32))
    _one_error_line(cli("run", path, "--inputs", tmp_path / "in.npz", "--shape", "x=1x8"), "shape [2, 8]", "[1, 8]")


def test_npz_unreadable(cli, mlp_model, tmp_path):
    path, _, _ = mlp_model
    (tmp_path / "in.npz").write_bytes(b"PK\x03\x04garbage")
    _one_error_line(cli("run", path, "--inputs", tmp_path / "in.npz"), "in.npz")


def test_missing_external_data(cli, tmp_path):
    w = np.ones((64, 64), np.float32)
    m = make_model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], {"w": w})
    p = tmp_path / "ext.onnx"
    onnx.save(m, p, save_as_external_data=True, all_tensors_to_one_file=True, location="ext.weights",
              size_threshold=0)
    (tmp_path / "ext.weights").unlink()
    _one_error_line(cli("inspect", p), "ext.weights", "missing")


def test_external_data_present_loads(cli, tmp_path):
    w = np.eye(64, dtype=np.float32)
    m = make_model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], {"w": w})
    p = tmp_path / "ext.onnx"
    onnx.save(m, p, save_as_external_data=True, location="ext.weights", size_threshold=0)
    x = np.arange(64, dtype=np.float32).reshape(1, 64)
    np.savez(tmp_path / "in.npz", x=x)
    res = cli("run", p, "--inputs", tmp_path / "in.npz", "--output", tmp_path / "out.npz")
    assert res.code == 0, res.err
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["y"], x)


def test_unknown_pass_name(cli, mlp_model):
    path, _, _ = mlp_model
    _one_error_line(cli("inspect", path, "--shape", "x=1x8", "--passes", "fold_constants,fuse_everything"),
                    "fuse_everything", "known passes")
