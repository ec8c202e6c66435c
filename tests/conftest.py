"""Shared fixtures: small ONNX graphs built with onnx.helper, and a CLI runner."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.builders import make_model

from hwcomp.cli import main as cli_main


@pytest.fixture
def mlp_model(tmp_path):
    """x[batch, 8] -> MatMul(W) + b -> Relu, with a symbolic batch dim; saved to a file."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    m = make_model(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Add", ["h", "b"], ["hb"], name="add"),
         helper.make_node("Relu", ["hb"], ["y"], name="relu")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        {"w": w, "b": b})
    path = tmp_path / "mlp.onnx"
    onnx.save(m, path)
    return path, w, b


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err


@pytest.fixture
def cli(capsys):
    def run(*args: str) -> CliResult:
        code = cli_main([str(a) for a in args])
        cap = capsys.readouterr()
        return CliResult(code, cap.out, cap.err)
    return run
