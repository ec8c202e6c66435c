"""Quantized ops: quantize/dequantize, int8 dense, weight-only dense, integer attention and the I-BERT
integer nonlinears. Produced by ``hwcomp/passes/quantize.py``; the integer algorithms are those of
``hwcomp/ops/intmath.py`` (the specification the RTL implements); quantization parameters are attributes
(numbers and int32/float32 arrays), so each op's computation is self-contained.

Conventions: ``*_zero_point`` attrs are ints; requantization of an int accumulator is always
``intmath.requantize(acc, multiplier, shift, out_zero_point, qmin, qmax)`` (int32 multiplier in
[2^30, 2^31), right shift in [1, 62], round half up, saturate) with ``out_bits`` (8 or 16) choosing the
range. ``out_dtype="float32"`` replaces requantization by a float epilogue ``float32(acc) * out_scale``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import DType, QuantParams, TensorType
from . import intmath
from .fused import ACTIVATIONS, activation_ref, split_heads
from .nn import matmul_shape, softmax_ref
from .registry import op

_INT_DTYPES = {8: DType.int8, 16: DType.int16, 32: DType.int32}


def _qrange(bits: int, signed: bool = True) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _int_dtype(bits: int, node) -> DType:
    for b in (8, 16, 32):
        if bits <= b:
            return _INT_DTYPES[b]
    raise ShapeError(f"node {node.name!r} ({node.op}): {bits} bits do not fit an integer type")


def _out_type(node, shape: tuple[int, ...]) -> TensorType:
    """Output type from the out_dtype/out_bits/out_scale/out_zero_point attrs."""
    if node.attr("out_dtype", "int8") == "float32":
        return TensorType(shape, DType.float32)
    bits = int(node.attr("out_bits", 8))
    q = None
    if node.attr("out_scale_q") is not None:
        sc = np.asarray(node.attrs["out_scale_q"], np.float32)
        q = QuantParams(sc, np.int32(node.attr("out_zero_point", 0)), bits, axis=None if sc.ndim == 0 else -1)
    return TensorType(shape, _int_dtype(bits, node), q)


def _epilogue(node, acc: np.ndarray) -> np.ndarray:
    """int accumulator -> requantized int (out_bits) or float32 (dequant epilogue)."""
    if node.attr("out_dtype", "int8") == "float32":
        y = acc.astype(np.float32) * np.asarray(node.attrs["out_scale"], np.float32)
        return activation_ref(y.astype(np.float32), node.attr("activation", "none"))
    lo, hi = _qrange(int(node.attr("out_bits", 8)))
    zp = int(node.attr("out_zero_point", 0))
    y = intmath.requantize(acc, node.attrs["multiplier"], node.attrs["shift"], zp, lo, hi)
    if node.attr("activation", "none") == "relu":
        y = np.maximum(y, zp).astype(y.dtype)
    return y.astype(_int_dtype(int(node.attr("out_bits", 8)), node).numpy)


# ---- quantize / dequantize -----------------------------------------------------------------------------

def _scale(node, rank: int) -> np.ndarray:
    """The scale attr: a float, or a float32 vector along the last axis (per-channel smoothing)."""
    return np.asarray(node.attrs["scale"], np.float32)


def _q_infer(node, types, consts):
    bits, signed = int(node.attr("bits", 8)), bool(node.attr("signed", 1))
    sc = _scale(node, types[0].rank)
    q = QuantParams(sc, np.int32(node.attr("zero_point", 0)), bits, signed, axis=None if sc.ndim == 0 else -1)
    dt = _int_dtype(bits, node) if signed else {8: DType.uint8, 16: DType.uint16}[8 if bits <= 8 else 16]
    return [TensorType(types[0].shape, dt, q)]


@op("quantize", infer=_q_infer)
def quantize(node, x):
    """q = clip(rint(x / scale) + zero_point, qmin, qmax): ONNX QuantizeLinear (float32 divide, round half to
    even, saturate) with attrs scale (float, or float32 [C] along the last axis: SmoothQuant-style
    per-channel smoothing folded into the consumer's weights), zero_point (int), bits (2..16), signed (0/1)."""
    bits, signed = int(node.attr("bits", 8)), bool(node.attr("signed", 1))
    lo, hi = _qrange(bits, signed)
    q = np.rint(np.asarray(x, np.float32) / _scale(node, np.ndim(x))) + np.float32(node.attr("zero_point", 0))
    return np.clip(q, lo, hi).astype(_q_infer(node, [TensorType(np.shape(x), DType.float32)], [None])[0].dtype.numpy)


@op("dequantize", infer=lambda n, t, c: [TensorType(t[0].shape, DType.float32)])
def dequantize(node, q):
    """x = float32(q - zero_point) * scale (attrs scale, zero_point)."""
    d = (np.asarray(q).astype(np.int64) - int(node.attr("zero_point", 0))).astype(np.float32)
    return d * _scale(node, np.ndim(q))


# ---- int8 dense ----------------------------------------------------------------------------------------

def _qdense_infer(node, types, consts):
    x, w = types[0], types[1]
    if w.rank != 2 or x.shape[-1] != w.shape[0]:
        raise ShapeError(f"qdense {node.name!r}: x {x.shape} and w {w.shape} ([K, N]) do not fit")
    act = node.attr("activation", "none")
    if act not in ACTIVATIONS or (node.attr("out_dtype", "int8") != "float32" and act not in ("none", "relu")):
        raise ShapeError(f"qdense {node.name!r}: activation {act!r} needs out_dtype float32 (integer outputs "
                         "take none/relu)")
    return [_out_type(node, matmul_shape(x.shape, w.shape, node))]


@op("qdense", infer=_qdense_infer)
def qdense(node, x, w, bias=None):
    """acc = wrap_int32(sum_k (x - x_zero_point) * w + bias) (int32 accumulator), then the epilogue:
    requantize(acc, multiplier[N], shift[N], out_zero_point) [+ relu as max(y, out_zero_point)], or with
    out_dtype float32: act(float32(acc) * out_scale[N]) where out_scale = x_scale * w_scale."""
    acc = intmath.int_matmul_fast(x, w, int(node.attr("x_zero_point", 0)))
    if bias is not None:
        acc = intmath.wrap_int32(acc.astype(np.int64) + bias.astype(np.int64))
    return _epilogue(node, acc)


# ---- weight-only dense ---------------------------------------------------------------------------------

def dequant_grouped(wq: np.ndarray, scale: np.ndarray, zero: np.ndarray, group: int) -> np.ndarray:
    """w[k, n] = float32(wq[k, n] - zero[k // group, n]) * scale[k // group, n]."""
    k = wq.shape[0]
    idx = np.arange(k) // group
    return (wq.astype(np.int32) - zero[idx].astype(np.int32)).astype(np.float32) * scale[idx].astype(np.float32)


def _wdense_infer(node, types, consts):
    x, w, s = types[0], types[1], types[2]
    g = int(node.attrs["group_size"])
    if w.rank != 2 or x.shape[-1] != w.shape[0] or s.shape != (-(-w.shape[0] // g), w.shape[1]):
        raise ShapeError(f"wdense {node.name!r}: x {x.shape}, w {w.shape}, scale {s.shape} do not fit group {g}")
    return [TensorType(matmul_shape(x.shape, w.shape, node), x.dtype)]


@op("wdense", infer=_wdense_infer)
def wdense(node, x, wq, scale, zero, bias=None):
    """Weight-only quantized dense: act(x @ dequant_grouped(wq, scale, zero, group_size) + bias).
    wq int [K, N] holding `bits`-bit unsigned codes (0..2^bits-1), scale float32 / zero int [ceil(K/group), N]
    (asymmetric, group-wise along K); activations stay float. Optional attr in_scale float32 [K]
    (activation-aware scaling): x is divided by it first, the codes quantize W * in_scale."""
    w = dequant_grouped(wq, scale, zero, int(node.attrs["group_size"]))
    x = np.asarray(x, np.float32)
    if node.attr("in_scale") is not None:  # activation-aware scaling: the weight was quantized as W * s
        x = x / np.asarray(node.attrs["in_scale"], np.float32)
    y = np.matmul(x.reshape(-1, x.shape[-1]), w).reshape(x.shape[:-1] + (w.shape[1],))  # one 2-D GEMM
    if bias is not None:
        y = y + bias
    return activation_ref(y.astype(np.float32), node.attr("activation", "none"))


# ---- integer attention ---------------------------------------------------------------------------------

def _qattn_infer(node, types, consts):
    q, k, v = types[:3]
    h = node.attrs["num_heads"]
    if q.rank != 3 or q.shape[-1] % h or k.shape != q.shape[:1] + k.shape[1:2] + q.shape[2:] or v.shape[:2] != k.shape[:2]:
        raise ShapeError(f"qattention {node.name!r}: q {q.shape}, k {k.shape}, v {v.shape} do not fit {h} heads")
    return [_out_type(node, q.shape[:2] + (v.shape[-1],))]


@op("qattention", infer=_qattn_infer)
def qattention(node, q, k, v, mask=None):
    """Integer multi-head attention on int8 q, k, v [B, S, H*D] (symmetric, zero point 0).

    1. acc = int32 q_h @ k_hᵀ, real score = acc * score_scale (score_scale = s_q * s_k * attention scale).
    2. mask (float, additive, never quantized by calibration) -> m = clip(rint(mask / score_scale), -2^30, 2^30)
       (host-side conversion); x = acc + m; causal positions above the diagonal -> x = -2^30.
    3. softmax="int": p = intmath.int_softmax(x, exp_ln2, exp_b, exp_c, prob_bits) (I-BERT);
       softmax="float": p = clip(rint(softmax(float32(x) * score_scale) * 2^prob_bits), 0, 2^prob_bits - 1).
    4. acc2 = int32 p @ v_h (p unsigned prob_bits, units 2^-prob_bits); heads merged to [B, S, H*D];
       epilogue: requantize(acc2, multiplier, shift, out_zero_point) or float32(acc2) * out_scale.
    """
    h = int(node.attrs["num_heads"])
    ss = float(node.attrs["score_scale"])
    pb = int(node.attr("prob_bits", 8))
    qh, kh, vh = (split_heads(t, h) for t in (q, k, v))
    acc = intmath.int_matmul_fast(qh, kh.transpose(0, 1, 3, 2)).astype(np.int64)
    if mask is not None:
        m = np.clip(np.rint(np.asarray(mask, np.float64) / ss), -(1 << 30), 1 << 30).astype(np.int64)
        acc = acc + m
    if node.attr("causal", 0):
        sq, sk = acc.shape[-2:]
        acc = np.where(np.tril(np.ones((sq, sk), bool), sk - sq), acc, -(1 << 30))
    if node.attr("softmax", "int") == "int":
        p = intmath.int_softmax(acc, int(node.attrs["exp_ln2"]), int(node.attrs["exp_b"]), int(node.attrs["exp_c"]), pb)
    else:
        pf = softmax_ref((acc.astype(np.float64) * ss).astype(np.float32), -1)
        p = np.clip(np.rint(pf * np.float32(1 << pb)), 0, (1 << pb) - 1).astype(np.int64)
    acc2 = intmath.int_matmul_fast(p, vh)
    b, _, sq, d = acc2.shape
    acc2 = acc2.transpose(0, 2, 1, 3).reshape(b, sq, h * d)
    return _epilogue(node, acc2)


def exp_constants(score_scale: float) -> tuple[int, int, int]:
    """(exp_ln2, exp_b, exp_c) for intmath.i_exp at input scale S = score_scale (I-BERT coefficients)."""
    a, b, c = 0.35815147, 0.96963238, 1.0
    s = float(score_scale)
    return int(np.floor(-np.log(2.0) / s)), int(np.floor(b / a / s)), int(np.floor(c / a / s ** 2))


# ---- I-BERT nonlinears ---------------------------------------------------------------------------------

@op("int_gelu", infer=lambda n, t, c: [_out_type(n, t[0].shape)])
def int_gelu(node, x):
    """I-BERT i-GELU: acc = intmath.int_gelu(x, b_int, one_int) (units S*sc/2), then the epilogue
    (requantize with multiplier/shift/out_zero_point, or float32 * out_scale). x int, zero point 0."""
    acc = intmath.int_gelu(x, int(node.attrs["b_int"]), int(node.attrs["one_int"]))
    return _epilogue(node, acc)


def gelu_constants(s_in: float) -> tuple[int, int, float]:
    """(b_int, one_int, acc_scale) of intmath.int_gelu for input scale s_in."""
    se = s_in / np.sqrt(2.0)
    sc = 0.2888 * se * se
    return int(np.floor(1.769 / se)), int(np.floor(1.0 / sc)), float(s_in * sc / 2.0)


@op("int_layer_norm", infer=lambda n, t, c: [_out_type(n, t[0].shape)])
def int_layer_norm(node, x):
    """Integer layer norm over the last axis: acc = intmath.int_layer_norm(x, gamma_int, beta_int, eps_int,
    frac_bits) (units sqrt(C) * s_gamma / 2^frac_bits), then the epilogue. x int, zero point 0; gamma_int
    int16-ranged per channel, beta_int int32 per channel (attrs)."""
    acc = intmath.int_layer_norm(x, node.attrs["gamma_int"], node.attrs["beta_int"], int(node.attrs["eps_int"]),
                                 int(node.attr("frac_bits", 14)))
    return _epilogue(node, acc)


@op("int_softmax", infer=lambda n, t, c: [TensorType(t[0].shape, DType.uint16 if n.attr("prob_bits", 8) > 8
                                                     else DType.uint8)])
def int_softmax(node, x):
    """I-BERT softmax over the last axis of int x (units S): intmath.int_softmax(x, exp_ln2, exp_b, exp_c,
    prob_bits) -> unsigned probabilities in units 2^-prob_bits."""
    pb = int(node.attr("prob_bits", 8))
    p = intmath.int_softmax(x, int(node.attrs["exp_ln2"]), int(node.attrs["exp_b"]), int(node.attrs["exp_c"]), pb)
    return p.astype(np.uint16 if pb > 8 else np.uint8)
