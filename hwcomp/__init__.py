"""hwcomp: a hardware-aware compiler for transformer inference.

Python API (mirrors the CLI)::

    g = hwcomp.load_onnx("model.onnx", shapes={"input_ids": (1, 128)})
    outputs = hwcomp.run(g, {"input_ids": ids, "attention_mask": mask})
"""

from .errors import HwcompError
from .frontend.onnx import load_onnx
from .interp import run
from .ir import DType, Graph, Node, QuantParams, TensorType, load, save, verify

__version__ = "0.1.0"
__all__ = ["DType", "Graph", "HwcompError", "Node", "QuantParams", "TensorType", "load", "load_onnx", "run",
           "save", "verify"]
