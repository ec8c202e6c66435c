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


CLIP_RATIOS = tuple(1.0 - i / 40 for i in range(21))  # 1.0, 0.975, ..., 0.5


def _grouped(w: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """w [K, N] as float64 groups [G, group, N] (the last group zero-padded) and each group's range
    [lo, hi] [G, N] over its real rows, widened to include 0."""
    if group <= 0:
        raise QuantizationError(f"group size {group} must be positive (e.g. 32, 64, 128)")
    k, n = w.shape
    g = -(-k // group)
    wp = np.zeros((g * group, n), np.float64)
    wp[:k] = w
    wg = wp.reshape(g, group, n)
    real = np.arange(g * group).reshape(g, group, 1) < k  # padded rows must not widen the last range
    lo = np.minimum(np.where(real, wg, np.inf).min(axis=1), 0.0)
    hi = np.maximum(np.where(real, wg, -np.inf).max(axis=1), 0.0)
    return wg, lo, hi


def grouped_qparams(lo: np.ndarray, hi: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric unsigned ``bits``-bit (scale float32, zero int32) covering [lo, hi] (lo <= 0 <= hi):
    scale = (hi - lo) / (2^bits - 1) (1.0 for an empty range), zero = rint(-lo / scale)."""
    qmax = (1 << bits) - 1
    scale = np.where(hi > lo, (hi - lo) / qmax, 1.0).astype(np.float32)
    zero = np.clip(np.rint(-lo / scale), 0, qmax).astype(np.int32)
    return scale, zero


def grouped_codes(w: np.ndarray, scale: np.ndarray, zero: np.ndarray, bits: int, group: int) -> np.ndarray:
    """Codes of w [K, N] under group-wise (scale, zero) [G, N]:
    clip(rint(w / scale) + zero, 0, 2^bits - 1)."""
    idx = np.arange(w.shape[0]) // group
    codes = np.clip(np.rint(w / scale[idx]) + zero[idx], 0, (1 << bits) - 1)
    return codes.astype(np.uint8 if bits <= 8 else np.uint16)


def weight_grouped(w: np.ndarray, bits: int, group: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric group-wise quantization along K of w [K, N] into unsigned ``bits``-bit codes (round to
    nearest): (codes uint8/uint16 [K, N], scale float32 [G, N], zero int32 [G, N]), G = ceil(K / group).
    Per group: scale = (max - min) / (2^bits - 1) over the group's range widened to include 0,
    zero = rint(-min / scale), codes = clip(rint(w / scale) + zero, 0, 2^bits - 1)."""
    bits = check_bits(bits)
    _, lo, hi = _grouped(w, group)
    scale, zero = grouped_qparams(lo, hi, bits)
    return grouped_codes(w, scale, zero, bits, group), scale, zero


def clipped_qparams(w: np.ndarray, bits: int, group: int, h: np.ndarray,
                    ratios: tuple[float, ...] = CLIP_RATIOS) -> tuple[np.ndarray, np.ndarray]:
    """Group-wise (scale, zero) [G, N] of w [K, N] with each (group, column) range [lo, hi] shrunk by the
    ratio (of those given) that minimises the group's share of the layer's output error,
    e^T H_g e with e = w[g, n] - deq[g, n] and H_g the group's diagonal block of ``h`` = E[x x^T] [K, K]
    (AWQ's clip search, exact within each group)."""
    bits = check_bits(bits)
    if not ratios or not all(0.0 < r <= 1.0 for r in ratios):
        raise QuantizationError(f"clip ratios {tuple(ratios)!r} must be a non-empty list of values in (0, 1]")
    wg, lo0, hi0 = _grouped(w, group)
    g, size, n = wg.shape
    k = w.shape[0]
    hp = np.zeros((g * size, g * size))
    hp[:k, :k] = h
    blocks = [slice(i * size, (i + 1) * size) for i in range(g)]
    hg = np.stack([hp[b, b] for b in blocks])  # [G, group, group]
    qmax = (1 << bits) - 1
    best_err = np.full((g, n), np.inf)
    best_scale = np.ones((g, n), np.float32)
    best_zero = np.zeros((g, n), np.int32)
    for r in ratios:
        scale, zero = grouped_qparams(lo0 * r, hi0 * r, bits)
        s64, z64 = scale.astype(np.float64)[:, None, :], zero[:, None, :]
        e = wg - (np.clip(np.rint(wg / s64) + z64, 0, qmax) - z64) * s64
        err = np.einsum("gin,gin->gn", np.matmul(hg, e), e)
        better = err < best_err
        best_err = np.where(better, err, best_err)
        best_scale = np.where(better, scale, best_scale)
        best_zero = np.where(better, zero, best_zero)
    return best_scale, best_zero


def weight_grouped_clip(w: np.ndarray, bits: int, group: int, h: np.ndarray,
                        ratios: tuple[float, ...] = CLIP_RATIOS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`weight_grouped` with the ranges of :func:`clipped_qparams` (``h`` = E[x x^T] of the layer's
    input)."""
    scale, zero = clipped_qparams(w, bits, group, h, ratios)
    return grouped_codes(w, scale, zero, bits, group), scale, zero
