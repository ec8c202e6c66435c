"""Calibration: run the float graph in the interpreter over calibration batches and derive activation
ranges with one of three calibrators.

One pass over the data collects, for every observed value, its min/max and a signed histogram on a
symmetric range [-A, A] (``BINS`` bins). When a later batch exceeds A, A doubles and adjacent bin pairs
merge, which is exact: no "too many bins" failure, no stored activations. All calibrators are then
computed from the same statistics:

- ``minmax``: the observed [min, max].
- ``percentile``: the (100-p)/2 and (100+p)/2 percentiles of the values (p = 99.99 by default).
- ``entropy``: TensorRT's KL-divergence threshold on |x| (2048 bins, 128 quantized levels), applied
  symmetrically and intersected with [min, max].
- ``mse``: the range (each end shrunk independently from [min, max]) minimising the expected squared
  quantization error (clipping + rounding noise) over the histogram.

Only the values a pass asks for are observed; in particular the attention-mask arithmetic is never
calibrated (masks stay float inputs of ``attention``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import InputError, QuantizationError
from ..interp import check_inputs, run
from ..ir.graph import Graph

log = logging.getLogger(__name__)

CALIBRATORS = ("minmax", "percentile", "entropy", "mse")
BINS = 4096  # signed histogram over [-A, A]: 2048 bins for |x|


@dataclass
class Stats:
    """Running statistics of one value."""

    lo: float = np.inf
    hi: float = -np.inf
    amax: float = 0.0  # histogram half-range A
    hist: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.float64))
    count: int = 0
    chan_lo: np.ndarray | None = None  # per-channel (last axis) min / max, for smoothing
    chan_hi: np.ndarray | None = None

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float32)
        if x.ndim >= 1 and x.size and np.all(np.isfinite(x)):
            x2 = x.reshape(-1, x.shape[-1])
            lo_c, hi_c = x2.min(axis=0), x2.max(axis=0)
            if self.chan_lo is None or self.chan_lo.shape != lo_c.shape:
                self.chan_lo, self.chan_hi = lo_c, hi_c
            else:
                self.chan_lo, self.chan_hi = np.minimum(self.chan_lo, lo_c), np.maximum(self.chan_hi, hi_c)
        x = x.ravel()
        x = x[np.isfinite(x)]
        if x.size == 0:
            return
        lo, hi = float(x.min()), float(x.max())
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        m = max(abs(lo), abs(hi))
        if self.amax == 0.0:
            self.amax = m if m > 0 else 1e-8
        while m > self.amax:  # double the range: merge bin pairs into the middle half (exact)
            merged = self.hist.reshape(-1, 2).sum(axis=1)
            self.hist = np.zeros(BINS, np.float64)
            self.hist[BINS // 4: 3 * BINS // 4] = merged
            self.amax *= 2.0
        h, _ = np.histogram(x, bins=BINS, range=(-self.amax, self.amax))
        self.hist += h
        self.count += x.size

    # ---- calibrators -------------------------------------------------------------------------------
    def minmax(self) -> tuple[float, float]:
        return self.lo, self.hi

    def percentile(self, p: float = 99.99) -> tuple[float, float]:
        cdf = np.cumsum(self.hist)
        total = cdf[-1]
        if total == 0:
            return self.minmax()
        edges = np.linspace(-self.amax, self.amax, BINS + 1)
        lo_i = int(np.searchsorted(cdf, total * (100.0 - p) / 200.0, side="left"))
        hi_i = int(np.searchsorted(cdf, total * (100.0 + p) / 200.0, side="left"))
        lo, hi = float(edges[lo_i]), float(edges[min(hi_i + 1, BINS)])
        return max(lo, self.lo), min(hi, self.hi)

    def entropy(self, levels: int = 128) -> tuple[float, float]:
        half = BINS // 2
        absh = self.hist[half:] + self.hist[:half][::-1]  # |x| histogram, 2048 bins on [0, A]
        t = kl_threshold(absh, levels)
        amax = (t / absh.size) * self.amax
        if amax <= 0:
            return self.minmax()
        return max(-amax, self.lo), min(amax, self.hi)

    def mse(self, bits: int = 8, steps: int = 40) -> tuple[float, float]:
        """The [lo, hi] (shrunk from [min, max], each end independently) minimising the expected squared
        error of asymmetric ``bits``-bit quantization over the histogram: clipping error outside, step^2/12
        rounding noise inside."""
        centers = (np.arange(BINS) + 0.5) * (2 * self.amax / BINS) - self.amax
        h = self.hist
        lo0, hi0 = min(self.lo, 0.0), max(self.hi, 0.0)
        fr = np.linspace(0.05, 1.0, steps)
        best, arg = np.inf, (lo0, hi0)
        for lo in lo0 * fr if lo0 < 0 else [0.0]:
            his = hi0 * fr if hi0 > 0 else np.array([0.0])
            step = np.maximum((his - lo) / ((1 << bits) - 1), 1e-12)
            clip_err = np.where(centers[None, :] > his[:, None], (centers[None, :] - his[:, None]) ** 2, 0.0) \
                + np.where(centers < lo, (centers - lo) ** 2, 0.0)[None, :]
            err = (clip_err * h).sum(1) + step ** 2 / 12 * h.sum()
            i = int(err.argmin())
            if err[i] < best:
                best, arg = float(err[i]), (float(lo), float(his[i]))
        return arg

    def range(self, method: str) -> tuple[float, float]:
        if self.count == 0:
            raise QuantizationError("no finite values were observed for this tensor during calibration")
        if method == "minmax":
            return self.minmax()
        if method == "percentile":
            return self.percentile()
        if method == "entropy":
            return self.entropy()
        if method == "mse":
            return self.mse()
        raise QuantizationError(f"unknown calibrator {method!r}; choose one of {', '.join(CALIBRATORS)}")


def kl_threshold(hist: np.ndarray, levels: int = 128) -> int:
    """TensorRT entropy calibration: the number of |x| bins i (levels <= i <= len(hist)) whose clipped
    distribution P (outliers folded into the last bin) is closest in KL divergence to its quantization Q
    onto ``levels`` levels. Returns len(hist) for degenerate histograms."""
    hist = np.asarray(hist, np.float64)
    n = hist.size
    nz = np.nonzero(hist)[0]
    if nz.size == 0 or nz[-1] < levels:
        return int(nz[-1]) + 1 if nz.size else n
    best_i, best_kl = n, np.inf
    csum_tail = np.cumsum(hist[::-1])[::-1]  # csum_tail[i] = sum(hist[i:])
    for i in range(levels, n + 1, 16 if n > 1024 else 1):
        p = hist[:i].copy()
        if i < n:
            p[-1] += csum_tail[i]
        if p.sum() == 0:
            continue
        # Q: merge the first i bins into `levels` chunks, spread each chunk's mass over its non-empty bins.
        src = hist[:i]
        lens = np.full(levels, i // levels)
        lens[: i % levels] += 1  # np.array_split's chunking
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        sums = np.add.reduceat(src, starts)
        cnts = np.add.reduceat((src > 0).astype(np.float64), starts)
        per = np.where(cnts > 0, sums / np.maximum(cnts, 1), 0.0)
        q = np.where(src > 0, np.repeat(per, lens), 0.0)
        pm = p / p.sum()
        qs = q.sum()
        if qs == 0:
            continue
        qm = q / qs
        mask = pm > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            kl = float(np.sum(pm[mask] * np.log(pm[mask] / np.where(qm[mask] > 0, qm[mask], 1e-12))))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return best_i


def validate_batches(g: Graph, batches: Sequence[Mapping[str, np.ndarray]] | None) -> list[dict[str, np.ndarray]]:
    """Check calibration batches against the graph's inputs; split arrays whose leading axis is a multiple of
    the graph's batch. Raises QuantizationError naming the problem."""
    if batches is None or len(batches) == 0:
        raise QuantizationError("empty calibration set: give at least one batch (--calib FILE.npz, keyed by "
                                f"the graph inputs {', '.join(g.inputs)})")
    out: list[dict[str, np.ndarray]] = []
    for bi, b in enumerate(batches):
        extra = sorted(set(b) - set(g.inputs))
        missing = [i for i in g.inputs if i not in b]
        if missing or extra:
            raise QuantizationError(
                f"calibration batch {bi}: names {sorted(b)} do not match the graph inputs "
                f"{', '.join(f'{i}: {g.types[i]}' for i in g.inputs)}"
                + (f" (missing {missing})" if missing else "") + (f" (unknown {extra})" if extra else ""))
        n_split = None
        for name in g.inputs:
            want, got = g.types[name].shape, np.shape(b[name])
            if got == want:
                n_split = n_split or 1
                continue
            if len(got) == len(want) and len(want) >= 1 and got[1:] == want[1:] and want[0] and got[0] % want[0] == 0:
                k = got[0] // want[0]
                if n_split not in (None, k):
                    raise QuantizationError(f"calibration batch {bi}: inputs have inconsistent leading sizes")
                n_split = k
                continue
            raise QuantizationError(f"calibration batch {bi}: input {name!r} has shape {list(got)}, the graph "
                                    f"expects {list(want)} (or a multiple of it along axis 0)")
        for j in range(n_split or 1):
            piece = {}
            for name in g.inputs:
                a = np.asarray(b[name])
                rows = g.types[name].shape[0] if g.types[name].shape else 0
                piece[name] = a if a.shape == g.types[name].shape else a[j * rows:(j + 1) * rows]
            try:
                out.append(check_inputs(g, piece))
            except InputError as e:
                raise QuantizationError(f"calibration batch {bi}: {e}") from None
    return out


def token_mask_input(g: Graph) -> str | None:
    """The graph's [batch, seq] 0/1 token mask input (``attention_mask``), if it has one."""
    for name in g.inputs:
        t = g.types[name]
        if "mask" in name.lower() and t.rank == 2 and t.dtype.is_int:
            return name
    return None


def _observe_tokens(g: Graph, batches: Sequence[Mapping[str, np.ndarray]], want: set[str],
                    fn: Callable[[str, np.ndarray], None],
                    token_mask: str | None | bool = True) -> list[dict]:
    """Run the float graph over the (validated) batches, calling ``fn(name, value)`` for each value in
    ``want``; values of shape [B, S, ...] come only at the positions where the token mask (default: the
    graph's ``attention_mask``-like input; ``False``: none) is non-zero. Graph inputs are passed directly.
    Returns the validated batches."""
    batches = validate_batches(g, batches)
    mname = token_mask_input(g) if token_mask is True else (token_mask or None)
    if mname is not None and mname not in g.inputs:
        raise QuantizationError(f"token mask {mname!r} is not a graph input ({', '.join(g.inputs)})")
    cur: dict[str, np.ndarray | None] = {"mask": None}

    def observe(name: str, arr: np.ndarray) -> None:
        if name in want:
            m = cur["mask"]
            fn(name, arr[m] if m is not None and arr.ndim >= 2 and arr.shape[:2] == m.shape else arr)

    for i, b in enumerate(batches):
        cur["mask"] = np.asarray(b[mname]) != 0 if mname is not None else None
        run(g, b, observer=observe)
        log.info("calibration batch %d/%d", i + 1, len(batches))
    for n in want & set(g.inputs):  # graph inputs are observed directly
        for b in batches:
            fn(n, b[n])
    return batches


def collect(g: Graph, batches: Sequence[Mapping[str, np.ndarray]], names: Iterable[str],
            token_mask: str | None | bool = True, divide: Mapping[str, np.ndarray] | None = None) -> dict[str, Stats]:
    """Run the float graph over the batches, gathering Stats for ``names`` (float values only).

    ``token_mask`` (default: the graph's ``attention_mask``-like input): values of shape [B, S, ...]
    are observed only at positions where the mask is non-zero, so padding tokens (whose results the
    model discards) do not widen the ranges. ``False`` observes everything. ``divide`` maps a value to a
    per-channel (last axis) divisor applied before observing (the statistics of x / c for smoothed inputs).
    """
    divide = dict(divide or {})
    want = {n for n in names if n in g.types and g.types[n].dtype.is_float and n not in g.constants}
    stats = {n: Stats() for n in want}

    def update(name: str, arr: np.ndarray) -> None:
        stats[name].update(arr / divide[name] if name in divide else arr)

    _observe_tokens(g, batches, want, update, token_mask)
    return stats


@dataclass
class Moments:
    """Second moments of one value's rows (its last axis is K): what a weight quantizer needs to predict
    the output error of y = x W without keeping the activations."""

    xx: np.ndarray  # float64 [K, K]: sum of x^T x over the observed rows
    abs_sum: np.ndarray  # float64 [K]: sum of |x| per channel
    rows: int = 0

    @property
    def h(self) -> np.ndarray:
        """E[x x^T] [K, K]: the mean output error of x (W - Wq) is sum_n e_n^T h e_n, e = W - Wq."""
        return self.xx / max(self.rows, 1)

    @property
    def mean_abs(self) -> np.ndarray:
        """E|x_k| [K]."""
        return self.abs_sum / max(self.rows, 1)


def collect_moments(g: Graph, batches: Sequence[Mapping[str, np.ndarray]], names: Iterable[str],
                    token_mask: str | None | bool = True) -> dict[str, Moments]:
    """Run the float graph over the batches, accumulating :class:`Moments` of the rows (last axis kept) of
    each named float value, over every non-padding token (see :func:`collect` for ``token_mask``)."""
    want = {n for n in names if n in g.types and g.types[n].dtype.is_float and n not in g.constants}
    out: dict[str, Moments] = {}

    def update(name: str, arr: np.ndarray) -> None:
        x = np.asarray(arr, np.float64).reshape(-1, arr.shape[-1])
        m = out.get(name)
        if m is None:
            m = out[name] = Moments(np.zeros((x.shape[1], x.shape[1])), np.zeros(x.shape[1]))
        m.xx += x.T @ x
        m.abs_sum += np.abs(x).sum(axis=0)
        m.rows += len(x)

    _observe_tokens(g, batches, want, update, token_mask)
    return out


def ranges(stats: Mapping[str, Stats], method: str) -> dict[str, tuple[float, float]]:
    if method not in CALIBRATORS:
        raise QuantizationError(f"unknown calibrator {method!r}; choose one of {', '.join(CALIBRATORS)}")
    out = {}
    for n, s in stats.items():
        if s.count:
            out[n] = s.range(method)
    return out
