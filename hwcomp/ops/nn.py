"""Neural-network ONNX ops: MatMul, Gemm, Softmax, reductions, LayerNormalization, Conv, BatchNormalization."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import DType, TensorType
from .registry import broadcast_shape, by_evaluation, by_evaluation_needing, op, same_type


def matmul_shape(a: tuple[int, ...], b: tuple[int, ...], node=None) -> tuple[int, ...]:
    a1, b1 = a, b
    if len(a) == 1:
        a1 = (1,) + a
    if len(b) == 1:
        b1 = b + (1,)
    if a1[-1] != b1[-2]:
        where = f" at node {node.name!r}" if node else ""
        raise ShapeError(f"MatMul{where}: inner dimensions differ, {a} @ {b}")
    out = broadcast_shape(a1[:-2], b1[:-2], node=node) + (a1[-2], b1[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


@op("MatMul", infer=lambda n, t, c: [TensorType(matmul_shape(t[0].shape, t[1].shape, n), t[0].dtype)])
def matmul(node, a, b):
    return np.matmul(a, b)


@op("Gemm", infer=by_evaluation)
def gemm(node, a, b, c=None):
    a = a.T if node.attr("transA", 0) else a
    b = b.T if node.attr("transB", 0) else b
    y = node.attr("alpha", 1.0) * (a @ b)
    if c is not None:
        y = y + node.attr("beta", 1.0) * c
    return y.astype(a.dtype)


def softmax_ref(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x - m)
    return (e / np.sum(e, axis=axis, keepdims=True)).astype(x.dtype)


@op("Softmax", infer=same_type)
def softmax(node, x):
    return softmax_ref(x, node.attr("axis", -1))


@op("LogSoftmax", infer=same_type)
def log_softmax(node, x):
    axis = node.attr("axis", -1)
    m = np.max(x, axis=axis, keepdims=True)
    return (x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))).astype(x.dtype)


def _reduce(f):
    def compute(node, x, axes=None):
        axes = node.attr("axes") if axes is None else axes
        keep = bool(node.attr("keepdims", 1))
        if axes is None or np.size(axes) == 0:
            if node.attr("noop_with_empty_axes", 0):
                return x
            ax = None
        else:
            ax = tuple(int(a) for a in np.atleast_1d(axes))
        if x.size == 0 and f in (_REDUCE["ReduceMax"], _REDUCE["ReduceMin"]):
            is_max = f is _REDUCE["ReduceMax"]
            if x.dtype == bool:
                ident = not is_max
            elif np.issubdtype(x.dtype, np.integer):
                ident = np.iinfo(x.dtype).min if is_max else np.iinfo(x.dtype).max
            else:
                ident = -np.inf if is_max else np.inf
            shape = np.sum(np.zeros(x.shape, np.int8), axis=ax, keepdims=keep).shape
            return np.full(shape, ident, dtype=x.dtype)
        return np.asarray(f(x, ax, keep)).astype(x.dtype)
    return compute


_REDUCE = {
    "ReduceMean": lambda x, a, k: np.mean(x, axis=a, keepdims=k),
    "ReduceSum": lambda x, a, k: np.sum(x, axis=a, keepdims=k),
    "ReduceMax": lambda x, a, k: np.max(x, axis=a, keepdims=k),
    "ReduceMin": lambda x, a, k: np.min(x, axis=a, keepdims=k),
    "ReduceProd": lambda x, a, k: np.prod(x, axis=a, keepdims=k),
    "ReduceL1": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k),
    "ReduceL2": lambda x, a, k: np.sqrt(np.sum(np.square(x), axis=a, keepdims=k)),
    "ReduceSumSquare": lambda x, a, k: np.sum(np.square(x), axis=a, keepdims=k),
    "ReduceLogSumExp": lambda x, a, k: np.log(np.sum(np.exp(x), axis=a, keepdims=k)),
}
for _n, _f in _REDUCE.items():
    op(_n, infer=by_evaluation_needing(1))(_reduce(_f))


def layer_norm_ref(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None, axis: int = -1,
                   eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    axis = axis + x.ndim if axis < 0 else axis
    red = tuple(range(axis, x.ndim))
    xf = x.astype(np.float32)
    mean = xf.mean(axis=red, keepdims=True)
    var = np.square(xf - mean).mean(axis=red, keepdims=True)
    inv = 1.0 / np.sqrt(var + np.float32(eps))
    y = (xf - mean) * inv * gamma
    if beta is not None:
        y = y + beta
    return y.astype(x.dtype), mean, inv


def _ln_infer(node, types, consts):
    t = types[0]
    axis = node.attr("axis", -1)
    axis = axis + t.rank if axis < 0 else axis
    stat = t.shape[:axis] + (1,) * (t.rank - axis)
    return [TensorType(t.shape, t.dtype), TensorType(stat, DType.float32), TensorType(stat, DType.float32)][
        :max(1, len(node.outputs))]


@op("LayerNormalization", infer=_ln_infer)
def layer_normalization(node, x, gamma, beta=None):
    y, mean, inv = layer_norm_ref(x, gamma, beta, node.attr("axis", -1), node.attr("epsilon", 1e-5))
    return (y, mean, inv)[:max(1, len(node.outputs))]


@op("BatchNormalization", infer=lambda n, t, c: [TensorType(t[0].shape, t[0].dtype)])
def batch_norm(node, x, scale, bias, mean, var):
    shp = (1, -1) + (1,) * (x.ndim - 2)
    eps = node.attr("epsilon", 1e-5)
    return ((x - mean.reshape(shp)) / np.sqrt(var.reshape(shp) + eps) * scale.reshape(shp)
            + bias.reshape(shp)).astype(x.dtype)


@op("Conv", infer=by_evaluation)
def conv(node, x, w, b=None):
    """2-D/1-D convolution (NCHW) by im2col; groups, strides, dilations, explicit pads."""
    nd = x.ndim - 2
    strides = node.attr("strides") or [1] * nd
    dil = node.attr("dilations") or [1] * nd
    group = node.attr("group", 1)
    pads = node.attr("pads") or [0] * (2 * nd)
    auto_pad = node.attr("auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nd)
        for i in range(nd):
            in_sz, k = x.shape[2 + i], (w.shape[2 + i] - 1) * dil[i] + 1
            total = max(0, (-(-in_sz // strides[i]) - 1) * strides[i] + k - in_sz)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + nd] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad not in ("NOTSET", "VALID"):
        raise ShapeError(f"Conv auto_pad={auto_pad!r} is not supported: export with explicit pads")
    if nd == 1:
        x, w = x[..., None], w[..., None]
        strides, dil, pads = list(strides) + [1], list(dil) + [1], [pads[0], 0, pads[1], 0]
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    n, c, h, wd = xp.shape
    m, cg, kh, kw = w.shape
    oh = (h - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd - dil[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.zeros((n, m, oh, ow), dtype=np.float64 if x.dtype == np.float64 else np.float32)
    mg = m // group
    for g in range(group):
        xs = xp[:, g * cg:(g + 1) * cg]
        cols = np.empty((n, cg, kh, kw, oh, ow), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, i, j] = xs[:, :, i * dil[0]: i * dil[0] + strides[0] * oh: strides[0],
                                      j * dil[1]: j * dil[1] + strides[1] * ow: strides[1]]
        wg = w[g * mg:(g + 1) * mg].reshape(mg, -1)
        out[:, g * mg:(g + 1) * mg] = np.einsum("mk,nkp->nmp", wg, cols.reshape(n, cg * kh * kw, oh * ow)
                                                 ).reshape(n, mg, oh, ow)
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    out = out.astype(x.dtype)
    return out[..., 0] if nd == 1 else out
