"""Model frontends."""

from .onnx import from_onnx, load_onnx, parse_shapes

__all__ = ["from_onnx", "load_onnx", "parse_shapes"]
