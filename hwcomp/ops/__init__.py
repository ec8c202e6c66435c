"""Every IR op: type inference + numpy reference implementation, registered by name."""

from . import elementwise, fused, nn, qdq, quantized, tensor  # noqa: F401  (registration side effects)
from .registry import OPS, OpDef, get, run_op, supported_ops

__all__ = ["OPS", "OpDef", "get", "run_op", "supported_ops"]
