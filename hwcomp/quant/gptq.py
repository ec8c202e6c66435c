"""GPTQ (Frantar et al. 2022) for group-wise weight-only quantization.

For y = x W with W [K, N] and H = E[x x^T] [K, K] from the calibration rows, the K rows of W are quantized
one at a time and each row's rounding error is spread over the rows not yet quantized through the Cholesky
factor of H^-1, so that the layer's output error (not the weight error) is minimised. Details:

- damping: H + damp * mean(diag H) * I (a Hessian from fewer rows than K is singular);
- act-order: rows go in order of decreasing H_kk (the channels with the most input energy first);
- static groups: each group's (scale, zero) is fixed before the sweep from the original weights with the
  output-error clip search (:func:`hwcomp.quant.params.clipped_qparams`), so act-order cannot mix groups
  and the codes use exactly the exported (scale, zero);
- lazy batch updates: the error of a block of rows updates the later rows in one matrix product.
"""

from __future__ import annotations

import numpy as np

from ..errors import QuantizationError
from .params import check_bits, clipped_qparams


def gptq_grouped(w: np.ndarray, h: np.ndarray, bits: int, group: int, damp: float = 0.1, act_order: bool = True,
                 block: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GPTQ codes of w [K, N] for inputs with E[x x^T] = h [K, K]: (codes, scale [G, N], zero [G, N]) as
    :func:`hwcomp.quant.params.weight_grouped` returns them."""
    bits = check_bits(bits)
    if not damp > 0:
        raise QuantizationError(f"GPTQ damping {damp!r} must be positive (e.g. 0.01 .. 0.1)")
    k, n = w.shape
    qmax = (1 << bits) - 1
    h = np.array(h, np.float64)
    dead = np.diag(h) == 0  # channels never active: any weight is exact
    h[dead, dead] = 1.0
    scale, zero = clipped_qparams(w, bits, group, h)
    order = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(k)
    hp = h[np.ix_(order, order)]
    hp[np.diag_indices(k)] += damp * np.mean(np.diag(hp))
    u = np.linalg.cholesky(np.linalg.inv(hp)).T  # upper triangular, H^-1 = u^T u
    wp = w.astype(np.float64)[order]
    sc = scale.astype(np.float64)[order // group]  # per permuted row: its group's scale / zero [K, N]
    zr = zero.astype(np.float64)[order // group]
    codes = np.zeros((k, n))
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        wb = wp[i1:i2].copy()
        err = np.zeros_like(wb)
        for j in range(i2 - i1):
            r = i1 + j
            c = np.clip(np.rint(wb[j] / sc[r]) + zr[r], 0, qmax)
            codes[r] = c
            err[j] = (wb[j] - (c - zr[r]) * sc[r]) / u[r, r]
            wb[j + 1:] -= np.outer(u[r, r + 1:i2], err[j])
        wp[i2:] -= u[i1:i2, i2:].T @ err
    out = np.empty_like(codes)
    out[order] = codes
    return out.astype(np.uint8 if bits <= 8 else np.uint16), scale, zero
