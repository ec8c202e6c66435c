"""IR: serialization round-trips, the verifier names the first malformed node, printing is one line per node."""

import numpy as np
import pytest

import hwcomp
from hwcomp.errors import VerifyError
from hwcomp.ir import DType, Graph, Node, QuantParams, TensorType, load, save, verify


def _graph() -> Graph:
    g = Graph("t")
    g.inputs = ["x"]
    g.types["x"] = TensorType((2, 4), DType.float32)
    w = g.add_constant("w", np.arange(12, dtype=np.float32).reshape(4, 3))
    q = QuantParams(np.array([0.5, 0.25, 1.0], np.float32), np.zeros(3, np.int32), bits=8, axis=1)
    g.types[w].quant = q
    (y,) = g.add_node("MatMul", ["x", w], [TensorType((2, 3), DType.float32)], name="mm")
    (z,) = g.add_node("Relu", [y], [TensorType((2, 3), DType.float32)], name="relu")
    g.outputs = [z]
    return g


def test_save_load_round_trips_structure_constants_and_quant(tmp_path):
    g = _graph()
    save(g, tmp_path / "g.hwir")
    h = load(tmp_path / "g.hwir")
    assert str(h) == str(g)
    assert h.types["w"].quant == g.types["w"].quant
    np.testing.assert_array_equal(h.constants["w"], g.constants["w"])
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(hwcomp.run(h, {"x": x})[g.outputs[0]], np.maximum(x @ g.constants["w"], 0))


def test_verifier_accepts_good_graph():
    verify(_graph())


def test_verifier_names_undefined_input():
    g = _graph()
    g.nodes[1].inputs = ["nope"]
    with pytest.raises(VerifyError, match=r"'relu'.*'nope'"):
        verify(g)


def test_verifier_names_wrong_recorded_shape():
    g = _graph()
    g.types["mm"] = TensorType((2, 5), DType.float32)
    with pytest.raises(VerifyError, match=r"'mm'.*\[2, 5\].*\[2, 3\]"):
        verify(g)


def test_verifier_names_unknown_op():
    g = _graph()
    g.nodes.insert(0, Node("Frobnicate", ["x"], ["f"], {}, "fro"))
    g.types["f"] = TensorType((2, 4), DType.float32)
    with pytest.raises(VerifyError, match="'fro'.*Frobnicate"):
        verify(g)


def test_printer_one_line_per_node():
    text = str(_graph())
    assert sum(1 for l in text.splitlines() if " = MatMul(" in l or " = Relu(" in l) == 2
    assert "q8s" in text  # quantization shown on the weight's type


def test_bit_width_outside_range_rejected():
    with pytest.raises(ValueError, match="2..16"):
        QuantParams(np.ones(1), np.zeros(1), bits=17)
