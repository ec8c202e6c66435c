"""ONNX quantization ops: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger."""

from __future__ import annotations

import numpy as np

from ..ir.types import DType, TensorType
from .intmath import int_matmul
from .nn import matmul_shape
from .registry import by_evaluation, op


def _bcast_param(p: np.ndarray, x: np.ndarray, axis: int, block: int) -> np.ndarray:
    """Broadcast a per-tensor / per-axis / blocked scale or zero point against x."""
    p = np.asarray(p)
    if p.ndim == 0 or p.size == 1:
        return p.reshape(())
    axis = axis + x.ndim if axis < 0 else axis
    if block:
        return np.repeat(p, block, axis=axis)[tuple(slice(0, s) for s in x.shape)]
    shape = [1] * x.ndim
    shape[axis] = -1
    return p.reshape(shape)


_QRANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255), np.dtype(np.int16): (-32768, 32767),
           np.dtype(np.uint16): (0, 65535), np.dtype(np.int32): (-(1 << 31), (1 << 31) - 1)}


def quantize_linear(x, scale, zp, axis=1, block=0, out_dtype=None, qrange=None):
    s = _bcast_param(scale, x, axis, block).astype(np.float32)
    z = _bcast_param(zp, x, axis, block) if zp is not None else np.zeros((), np.int64)
    dt = np.dtype(out_dtype) if out_dtype is not None else (np.asarray(zp).dtype if zp is not None else np.uint8)
    lo, hi = qrange or _QRANGE[np.dtype(dt)]
    q = np.rint(x.astype(np.float32) / s) + z.astype(np.float32)
    return np.clip(q, lo, hi).astype(dt)


def dequantize_linear(q, scale, zp, axis=1, block=0):
    s = _bcast_param(scale, q, axis, block).astype(np.float32)
    z = _bcast_param(zp, q, axis, block).astype(np.int64) if zp is not None else np.zeros((), np.int64)
    return ((q.astype(np.int64) - z).astype(np.float32) * s).astype(s.dtype)


def _out_dtype(node, zp):
    if node.attr("output_dtype"):
        return DType(node.attr("output_dtype"))
    return DType.from_numpy(zp.dtype) if zp is not None else DType.uint8


def _ql_infer(node, types, consts):
    zp_t = types[2] if len(types) > 2 else None
    return [TensorType(types[0].shape, zp_t.dtype if zp_t is not None else
                       (DType(node.attr("output_dtype")) if node.attr("output_dtype") else DType.uint8))]


@op("QuantizeLinear", infer=_ql_infer)
def quantize_linear_op(node, x, scale, zp=None):
    dt = _out_dtype(node, zp)
    qr = (-8, 7) if dt is DType.int4 else (0, 15) if dt is DType.uint4 else None
    return quantize_linear(x, scale, zp, node.attr("axis", 1), node.attr("block_size", 0), dt.numpy, qr)


@op("DequantizeLinear", infer=lambda n, t, c: [TensorType(t[0].shape, t[1].dtype)])
def dequantize_linear_op(node, q, scale, zp=None):
    return dequantize_linear(q, scale, zp, node.attr("axis", 1), node.attr("block_size", 0)).astype(scale.dtype)


@op("DynamicQuantizeLinear", infer=lambda n, t, c: [TensorType(t[0].shape, DType.uint8), TensorType((), DType.float32),
                                                     TensorType((), DType.uint8)])
def dynamic_quantize_linear(node, x):
    lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = np.float32((hi - lo) / 255.0) if hi > lo else np.float32(1.0)
    zp = np.uint8(np.clip(np.rint(-lo / scale), 0, 255))
    return quantize_linear(x, scale, zp, out_dtype=np.uint8), np.array(scale, np.float32), np.array(zp, np.uint8)


@op("MatMulInteger", infer=lambda n, t, c: [TensorType(matmul_shape(t[0].shape, t[1].shape, n), DType.int32)])
def matmul_integer(node, a, b, a_zp=None, b_zp=None):
    az = 0 if a_zp is None else (a_zp.reshape(-1, 1) if a_zp.size > 1 else a_zp.reshape(()))
    bz = 0 if b_zp is None else b_zp.reshape(()) if b_zp.size == 1 else b_zp
    return int_matmul(a, b, az, bz)


@op("QLinearMatMul", infer=by_evaluation)
def qlinear_matmul(node, a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp):
    acc = int_matmul(a, b, a_zp.reshape(()) if a_zp.size == 1 else a_zp, b_zp.reshape(()) if b_zp.size == 1 else b_zp)
    real = acc.astype(np.float64) * (a_s.astype(np.float64) * b_s.astype(np.float64)) / y_s
    return np.clip(np.rint(real) + y_zp.astype(np.int64), *_QRANGE[y_zp.dtype]).astype(y_zp.dtype)
