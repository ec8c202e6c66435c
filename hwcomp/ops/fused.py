"""hwcomp's fused float ops (see docs/ir.md). Each is exactly the composition of ONNX ops it replaces."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import TensorType
from .elementwise import gelu_ref
from .nn import layer_norm_ref, matmul_shape, softmax_ref
from .registry import op, same_type

ACTIVATIONS = ("none", "gelu", "gelu_tanh", "relu", "tanh")


def activation_ref(y: np.ndarray, act: str) -> np.ndarray:
    if act == "none":
        return y
    if act == "gelu":
        return gelu_ref(y, "none")
    if act == "gelu_tanh":
        return gelu_ref(y, "tanh")
    if act == "relu":
        return np.maximum(y, 0).astype(y.dtype)
    if act == "tanh":
        return np.tanh(y)
    raise ShapeError(f"unknown activation {act!r}; expected one of {ACTIVATIONS}")


def _dense_infer(node, types, consts):
    return [TensorType(matmul_shape(types[0].shape, types[1].shape, node), types[0].dtype)]


@op("dense", infer=_dense_infer)
def dense(node, x, w, bias=None):
    """act(x @ w + bias), w laid out [K, N]."""
    # One 2-D GEMM over the flattened leading dims (numpy's stacked matmul is several times slower).
    y = np.matmul(x.reshape(-1, x.shape[-1]), w).reshape(x.shape[:-1] + (w.shape[-1],)) if x.ndim > 2 else np.matmul(x, w)
    if bias is not None:
        y = y + bias
    return activation_ref(y.astype(x.dtype), node.attr("activation", "none"))


@op("gelu", infer=same_type)
def gelu(node, x):
    return gelu_ref(x, node.attr("approximate", "none"))


@op("layer_norm", infer=same_type)
def layer_norm(node, x, gamma, beta=None):
    return layer_norm_ref(x, gamma, beta, node.attr("axis", -1), node.attr("epsilon", 1e-5))[0]


@op("add_layer_norm", infer=lambda n, t, c: [TensorType(t[0].shape, t[0].dtype), TensorType(t[0].shape, t[0].dtype)])
def add_layer_norm(node, x, residual, gamma, beta=None):
    """(layer_norm(x + residual), x + residual)."""
    s = (x + residual).astype(x.dtype)
    return layer_norm_ref(s, gamma, beta, -1, node.attr("epsilon", 1e-5))[0], s


def split_heads(x: np.ndarray, h: int) -> np.ndarray:
    """[B, S, H*D] -> [B, H, S, D]."""
    b, s, hd = x.shape
    return x.reshape(b, s, h, hd // h).transpose(0, 2, 1, 3)


def attention_ref(q, k, v, mask, num_heads: int, scale: float, causal: bool) -> np.ndarray:
    """softmax(q_h k_hᵀ * scale + mask [+ causal]) v_h per head; rows masked entirely with -inf give 0.

    Computed head by head with 2-D matmuls (numpy's stacked matmul is far slower for these shapes)."""
    b, sq, hd = q.shape
    sk, d = k.shape[1], hd // num_heads
    dv = v.shape[-1] // num_heads
    out = np.empty((b, sq, num_heads * dv), dtype=q.dtype)
    sc = np.asarray(scale, q.dtype)
    if mask is not None:
        mask = np.broadcast_to(mask, (b, num_heads, sq, sk))
    tri = np.tril(np.ones((sq, sk), bool), sk - sq) if causal else None
    # Contiguous per-head matrices: numpy hands strided views to a slow non-BLAS loop.
    qh, kh = (np.ascontiguousarray(split_heads(t, num_heads)) for t in (q, k))
    vh = np.ascontiguousarray(v.reshape(b, sk, num_heads, dv).transpose(0, 2, 1, 3))
    for bi in range(b):
        for h in range(num_heads):
            s = np.dot(qh[bi, h], kh[bi, h].T) * sc
            if mask is not None:
                s = s + mask[bi, h]
            if tri is not None:
                s = np.where(tri, s, np.asarray(-np.inf, s.dtype))
            p = softmax_ref(s.astype(q.dtype), -1)
            p = np.where(np.isnan(p), 0, p).astype(q.dtype)
            out[bi, :, h * dv:(h + 1) * dv] = np.dot(p, vh[bi, h])
    return out


def _attention_infer(node, types, consts):
    q, k, v = types[:3]
    h = node.attrs["num_heads"]
    if q.rank != 3 or q.shape[-1] % h or k.shape[-1] != q.shape[-1] or v.shape[:2] != k.shape[:2]:
        raise ShapeError(f"attention {node.name!r}: q {q.shape}, k {k.shape}, v {v.shape} do not fit {h} heads")
    return [TensorType(q.shape[:2] + (v.shape[-1],), q.dtype)]


@op("attention", infer=_attention_infer)
def attention(node, q, k, v, mask=None):
    """Multi-head scaled-dot-product attention on [B, S, H*D] tensors with an additive mask."""
    return attention_ref(q, k, v, mask, node.attrs["num_heads"], node.attrs["scale"], bool(node.attr("causal", 0)))
