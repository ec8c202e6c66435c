"""Accuracy of a quantized model against its float original: per-output errors, cosine, and for
sentence-embedding models the embedding cosine and top-1 nearest-neighbour agreement."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows (leading axis) of a and b, flattened per row."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    return np.where(both_zero, 1.0, (a * b).sum(1) / np.maximum(na * nb, 1e-30))


def nn_agreement(ref: np.ndarray, got: np.ndarray) -> float:
    """Fraction of rows whose nearest neighbour (cosine, excluding itself) among the other rows is the same
    in both embedding sets."""
    def nn(e):
        e = np.asarray(e, np.float64)
        e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-30)
        s = e @ e.T
        np.fill_diagonal(s, -np.inf)
        return s.argmax(1)
    return float(np.mean(nn(ref) == nn(got)))


def output_errors(ref: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per output: max/mean abs error and cosine (per leading-axis row: mean and min)."""
    out = {}
    for k, r in ref.items():
        r = np.asarray(r, np.float64)
        q = np.asarray(got[k], np.float64)
        d = np.abs(r - q)
        cos = cosine_rows(r.reshape(-1, r.shape[-1]), q.reshape(-1, q.shape[-1])) if r.ndim else np.array([1.0])
        out[k] = {"max_abs": float(d.max(initial=0.0)), "mean_abs": float(d.mean()) if d.size else 0.0,
                  "cos_mean": float(cos.mean()), "cos_min": float(cos.min())}
    return out


def run_batches(fn: Callable[[dict], Mapping[str, np.ndarray]], batches: Sequence[dict]) -> dict[str, np.ndarray]:
    """Run fn over batches and concatenate each output along axis 0."""
    outs: dict[str, list[np.ndarray]] = {}
    for b in batches:
        for k, v in fn(b).items():
            outs.setdefault(k, []).append(np.asarray(v))
    return {k: np.concatenate(v, axis=0) for k, v in outs.items()}


def embedding_report(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    cos = cosine_rows(ref, got)
    return {"emb_cos_mean": float(cos.mean()), "emb_cos_min": float(cos.min()),
            "nn_top1_agreement": nn_agreement(ref, got), "n": int(len(ref))}
