"""Quantization parameters from ranges and weights (pure numpy; no graph)."""

from __future__ import annotations

import numpy as np

from ..errors import QuantizationError

_TINY = 1e-8


def check_bits(bits: int, what: str = "bit width") -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= int(bits) <= 16:
        raise QuantizationError(f"{what} {bits!r} outside 2..16")
    return int(bits)


def act_qparams(lo: float, hi: float, bits: int = 8, symmetric: bool = False) -> tuple[float, int]:
    """(scale, zero_point) of a signed ``bits``-bit activation covering [lo, hi] (widened to include 0).
    Asymmetric: scale = (hi - lo) / (2^bits - 1), zero point = rint(qmin - lo / scale) clipped.
    Symmetric: scale = max(|lo|, |hi|) / (2^(bits-1) - 1), zero point 0."""
    bits = check_bits(bits)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    qmin, qmax = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if symmetric:
        scale = max(abs(lo), abs(hi)) / qmax
        return float(np.float32(max(scale, _TINY))), 0
    scale = float(np.float32(max((hi - lo) / (qmax - qmin), _TINY)))
    zp = int(np.clip(np.rint(qmin - lo / scale), qmin, qmax))
    return scale, zp


def weight_per_channel(w: np.ndarray, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-output-channel quantization of w [K, N]: (wq int8/int16 [K, N], scale float32 [N]).
    scale[n] = max_k |w[k, n]| / (2^(bits-1) - 1) (1.0 for an all-zero column); wq = rint(w / scale)."""
    bits = check_bits(bits)
    qmax = (1 << (bits - 1)) - 1
    amax = np.abs(w).max(axis=0).astype(np.float32)
    scale = np.where(amax > 0, amax / np.float32(qmax), np.float32(1.0)).astype(np.float32)
    wq = np.clip(np.rint(w / scale), -qmax, qmax)
    return wq.astype(np.int8 if bits <= 8 else np.int16), scale


def weight_grouped(w: np.ndarray, bits: int, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric group-wise quantization along K of w [K, N] into unsigned ``bits``-bit codes:
    (codes uint8/uint16 [K, N], scale float32 [G, N], zero int32 [G, N]), G = ceil(K / group).
    Per group: scale = (max - min) / (2^bits - 1) over the group's range widened to include 0,
    zero = rint(-min / scale), codes = clip(rint(w / scale) + zero, 0, 2^bits - 1)."""
    bits = check_bits(bits)
    if group <= 0:
        raise QuantizationError(f"group size {group} must be positive (e.g. 32, 64, 128)")
    k, n = w.shape
    g = -(-k // group)
    pad = g * group - k
    wp = np.concatenate([w, np.zeros((pad, n), w.dtype)]) if pad else w
    wg = wp.reshape(g, group, n)
    if pad:  # padded rows must not widen the last group's range: reuse its real rows
        last = w[(g - 1) * group:]
        lo_last, hi_last = last.min(axis=0), last.max(axis=0)
    lo = np.minimum(wg.min(axis=1), 0.0)
    hi = np.maximum(wg.max(axis=1), 0.0)
    if pad:
        lo[-1], hi[-1] = np.minimum(lo_last, 0.0), np.maximum(hi_last, 0.0)
    qmax = (1 << bits) - 1
    scale = np.where(hi > lo, (hi - lo) / qmax, 1.0).astype(np.float32)
    zero = np.clip(np.rint(-lo / scale), 0, qmax).astype(np.int32)
    idx = np.arange(k) // group
    codes = np.clip(np.rint(w / scale[idx]) + zero[idx], 0, qmax)
    return codes.astype(np.uint8 if bits <= 8 else np.uint16), scale, zero


def weight_grouped_clip(w: np.ndarray, bits: int, group: int, h: np.ndarray,
                        ratios: tuple[float, ...] = (1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6)
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`weight_grouped` with each (group, column) range shrunk by the ratio (of those given) that
    minimises sum_k h[k] * (w[k, n] - deq[k, n])^2 -- h the mean squared activation of input channel k,
    a diagonal estimate of the layer's output error."""
    bits = check_bits(bits)
    k, n = w.shape
    g = -(-k // group)
    pad = g * group - k
    wp = np.concatenate([w, np.zeros((pad, n), w.dtype)]) if pad else w
    hp = np.concatenate([h, np.zeros(pad)]) if pad else h
    wg = wp.reshape(g, group, n).astype(np.float64)
    hg = hp.reshape(g, group, 1).astype(np.float64)
    lo0 = np.minimum(wg.min(axis=1), 0.0)
    hi0 = np.maximum(wg.max(axis=1), 0.0)
    if pad:  # padded zero rows must not count: the last group's range from its real rows
        last = w[(g - 1) * group:].astype(np.float64)
        lo0[-1], hi0[-1] = np.minimum(last.min(axis=0), 0.0), np.maximum(last.max(axis=0), 0.0)
    qmax = (1 << bits) - 1
    best_err = np.full((g, n), np.inf)
    best_scale = np.ones((g, n))
    best_zero = np.zeros((g, n))
    for r in ratios:
        lo, hi = lo0 * r, hi0 * r
        scale = np.where(hi > lo, (hi - lo) / qmax, 1.0).astype(np.float32).astype(np.float64)
        zero = np.clip(np.rint(-lo / scale), 0, qmax)
        codes = np.clip(np.rint(wg / scale[:, None, :]) + zero[:, None, :], 0, qmax)
        err = (hg * np.square(wg - (codes - zero[:, None, :]) * scale[:, None, :])).sum(axis=1)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_scale = np.where(better, scale, best_scale)
        best_zero = np.where(better, zero, best_zero)
    scale = best_scale.astype(np.float32)
    zero = best_zero.astype(np.int32)
    idx = np.arange(k) // group
    codes = np.clip(np.rint(w / scale[idx]) + zero[idx], 0, qmax)
    return codes.astype(np.uint8 if bits <= 8 else np.uint16), scale, zero
