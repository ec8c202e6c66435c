"""Activation-aware weight quantization (AWQ, Lin et al. 2023), without training.

The denses that read one value x (e.g. query/key/value) share a per-input-channel scale
s_k = E|x_k|^alpha (normalised by sqrt(max(s) * min(s))): their weights are quantized as Q(W * s) and x is
multiplied by 1/s first, so that the channels carrying large activations get finer weight steps while
x W = (x / s)(W * s) is unchanged before rounding. alpha is searched on a grid, minimising the summed output
error of those denses on the calibration rows,

    sum_W mean_rows ||x W - (x / s) deq(Q(W * s))||^2 = sum_W sum_n e_n^T H_s e_n,   e = W s - deq(Q(W s)),

with H_s = E[(x / s)(x / s)^T] taken from the second moments of x (``hwcomp.quant.calibrate.Moments``), Q
round-to-nearest group-wise. alpha = 0 is s = 1 (no scaling). The final codes then come from the clip
search (:func:`hwcomp.quant.params.weight_grouped_clip`) or GPTQ on (W * s, H_s).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import QuantizationError
from ..ops.quantized import dequant_grouped
from .params import weight_grouped

ALPHA_GRID = tuple(i / 20 for i in range(21))  # 0, 0.05, ..., 1


def check_alpha_grid(grid: Sequence[float]) -> tuple[float, ...]:
    try:
        out = tuple(float(a) for a in grid)
    except (TypeError, ValueError):
        raise QuantizationError(f"AWQ alpha grid {grid!r} must be a list of numbers in [0, 1]") from None
    if not out:
        raise QuantizationError("AWQ alpha grid is empty: give at least one alpha in [0, 1] "
                                "(e.g. 0, 0.05, ..., 1)")
    bad = [a for a in out if not 0.0 <= a <= 1.0]
    if bad:
        raise QuantizationError(f"AWQ alpha grid values {bad} outside [0, 1]")
    return out


def scale_for_alpha(mean_abs: np.ndarray, alpha: float) -> np.ndarray:
    """s = m^alpha / sqrt(max * min) (float32 [K]) for the per-channel mean |x| m (zero channels take the
    smallest non-zero mean)."""
    m = np.asarray(mean_abs, np.float64)
    pos = m[m > 0]
    m = np.where(m > 0, m, pos.min() if pos.size else 1.0)
    s = m ** alpha
    return (s / np.sqrt(s.max() * s.min())).astype(np.float32)


def scaled_h(h: np.ndarray, s: np.ndarray) -> np.ndarray:
    """E[(x / s)(x / s)^T] from h = E[x x^T]."""
    inv = 1.0 / np.asarray(s, np.float64)
    return h * inv[:, None] * inv[None, :]


def output_error(h: np.ndarray, w: np.ndarray, wq: np.ndarray) -> float:
    """Mean squared output error of x wq against x w over rows with E[x x^T] = h: sum_n e_n^T h e_n."""
    e = np.asarray(w, np.float64) - np.asarray(wq, np.float64)
    return float(np.einsum("kn,kn->", h @ e, e))


def search_scale(h: np.ndarray, mean_abs: np.ndarray, weights: Sequence[np.ndarray], bits: int, group: int,
                 grid: Sequence[float] = ALPHA_GRID) -> tuple[np.ndarray, float]:
    """The shared input scale s (float32 [K]) of the denses with weights [K, N_i] reading x (E[x x^T] = h,
    E|x| = mean_abs), and its alpha: the grid point with the least summed output error under group-wise
    round-to-nearest quantization."""
    grid = check_alpha_grid(grid)
    best = (np.inf, np.ones(h.shape[0], np.float32), 0.0)
    for a in grid:
        s = scale_for_alpha(mean_abs, a)
        hs = scaled_h(h, s)
        err = 0.0
        for w in weights:
            ws = (w * s[:, None]).astype(np.float32)
            err += output_error(hs, ws, dequant_grouped(*weight_grouped(ws, bits, group), group))
        if err < best[0]:
            best = (err, s, a)
    return best[1], best[2]
