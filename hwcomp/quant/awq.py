"""Activation-aware scaling for weight-only quantization (AWQ-style, Lin et al. 2023), without training.

For a dense layer y = x W with calibration rows X [R, K]: per input channel k, s_k = amax(x_k)^a
(normalised by the median), and the weight is quantized as Q(W * s) with the input divided by s at run time,
so that channels carrying large activations get finer weight steps. ``a`` is searched on a grid per layer,
minimising ||X W - (X / s) deq(Q(W * s))||^2 (a = 0 is plain round-to-nearest).
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from ..interp import run
from ..ir.graph import Graph
from .calibrate import token_mask_input, validate_batches

GRID = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)


def sample_rows(g: Graph, batches: Sequence[Mapping[str, np.ndarray]], names: Iterable[str], rows: int = 512,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Up to ``rows`` random rows (last axis kept; padding tokens skipped) of each named value."""
    batches = validate_batches(g, batches)
    want = set(names)
    got: dict[str, list[np.ndarray]] = {n: [] for n in want}
    rng = np.random.default_rng(seed)
    mname = token_mask_input(g)
    per = max(1, rows // max(1, len(batches)))
    cur: dict = {}

    def observe(name: str, arr: np.ndarray) -> None:
        if name in want:
            m = cur.get("mask")
            a = arr[m] if m is not None and arr.ndim >= 2 and arr.shape[:2] == m.shape else arr
            a = np.asarray(a, np.float32).reshape(-1, arr.shape[-1])
            idx = rng.choice(len(a), size=min(per, len(a)), replace=False)
            got[name].append(a[idx])

    for b in batches:
        cur["mask"] = np.asarray(b[mname]) != 0 if mname else None
        run(g, b, observer=observe)
    return {k: np.concatenate(v) for k, v in got.items() if v}


def search_scale(x: np.ndarray, w: np.ndarray, quant: Callable[[np.ndarray], np.ndarray],
                 grid: Sequence[float] = GRID) -> tuple[np.ndarray | None, float]:
    """Best per-input-channel scale s (None for a = 0) and its alpha. ``quant`` maps W to its dequantized
    quantization."""
    ref = x @ w
    amax = np.abs(x).max(axis=0).astype(np.float64)
    amax = np.where(amax > 0, amax, amax[amax > 0].min() if np.any(amax > 0) else 1.0)
    best, best_s, best_a = np.inf, None, 0.0
    for a in grid:
        s = amax ** a
        s = s / np.median(s)
        s = np.clip(s, 1e-4, 1e4).astype(np.float32)
        wd = quant((w * s[:, None]).astype(np.float32))
        err = float(np.square(ref - (x / s) @ wd).mean())
        if err < best:
            best, best_s, best_a = err, (None if a == 0 else s), a
    return best_s, best_a


def gptq_grouped(w: np.ndarray, x: np.ndarray, bits: int, group: int, damp: float = 0.01
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GPTQ (Frantar et al. 2022) for w [K, N] with calibration rows x [R, K]: quantize the K rows in order,
    each group's asymmetric scale/zero taken from the (error-updated) weights when the group starts, and
    spread each row's rounding error over the rows not yet quantized through the inverse Hessian
    (H = xᵀx + damp * mean(diag) * I). Returns (codes, scale [G, N], zero [G, N]) as weight_grouped."""
    from .params import check_bits

    bits = check_bits(bits)
    k, n = w.shape
    qmax = (1 << bits) - 1
    xx = x.astype(np.float64)
    h = xx.T @ xx
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    h += damp * np.mean(np.diag(h)) * np.eye(k)
    hinv = np.linalg.inv(h)
    u = np.linalg.cholesky(hinv).T  # upper: hinv = uᵀ u
    wk = w.astype(np.float64).copy()
    g = -(-k // group)
    scale = np.ones((g, n))
    zero = np.zeros((g, n))
    codes = np.zeros((k, n))
    for r in range(k):
        gi = r // group
        if r % group == 0:
            blk = wk[r:r + group]
            lo, hi = np.minimum(blk.min(axis=0), 0.0), np.maximum(blk.max(axis=0), 0.0)
            scale[gi] = np.where(hi > lo, (hi - lo) / qmax, 1.0).astype(np.float32)
            zero[gi] = np.clip(np.rint(-lo / scale[gi]), 0, qmax)
        c = np.clip(np.rint(wk[r] / scale[gi]) + zero[gi], 0, qmax)
        codes[r] = c
        err = (wk[r] - (c - zero[gi]) * scale[gi]) / u[r, r]
        wk[r + 1:] -= np.outer(u[r, r + 1:], err)
    return codes.astype(np.uint8 if bits <= 8 else np.uint16), scale.astype(np.float32), zero.astype(np.int32)
