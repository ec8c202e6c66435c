"""ONNX graph builders for tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def make_model(nodes, inputs, outputs, initializers=(), opset=17, name="g") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, [numpy_helper.from_array(np.asarray(v), k)
                                                              for k, v in dict(initializers).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)
