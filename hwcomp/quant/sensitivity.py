"""Per-layer sensitivity: the output error each quantizable layer adds when it alone is quantized."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..interp import run
from ..ir.graph import Graph
from ..passes.base import PassContext, get_pass
from .calibrate import collect
from .evaluate import cosine_rows


def layer_sensitivity(g: Graph, calib: Sequence[Mapping[str, np.ndarray]], probe: Mapping[str, np.ndarray] | None = None,
                      calibrator: str = "minmax", mode: str = "quantize_int8",
                      stats=None) -> list[dict]:
    """For each dense layer of the fused float graph ``g``: quantize only that layer (others float) and
    measure the graph outputs on ``probe`` (default: the first calibration batch) against float.
    Returns rows sorted by decreasing error: name, cos_mean (per output row), rel_l2 (relative L2)."""
    from ..passes.quantize import observed_values, prepare

    gp = prepare(g.copy())
    if stats is None and mode == "quantize_int8":
        stats = collect(gp, calib, observed_values(gp))
    probe = probe if probe is not None else calib[0]
    ref = run(g, probe)
    rows = []
    names = [n.name for n in gp.nodes if n.op == "dense"]
    p = get_pass(mode)
    for name in names:
        ctx = PassContext({"calib_inputs": calib, "calib_stats": stats, "calibrator": calibrator, "only": [name],
                           "keep_float": [k for k in names if k != name]})
        q = p(g, ctx)
        got = run(q, probe)
        cos, rel = [], []
        for k, r in ref.items():
            r = np.asarray(r, np.float64)
            o = np.asarray(got[k], np.float64)
            cos.append(cosine_rows(r.reshape(-1, r.shape[-1]), o.reshape(-1, o.shape[-1])).mean())
            rel.append(np.linalg.norm(r - o) / max(np.linalg.norm(r), 1e-30))
        rows.append({"name": name, "cos_mean": float(np.mean(cos)), "rel_l2": float(np.max(rel))})
    return sorted(rows, key=lambda r: -r["rel_l2"])
