"""Pruning passes on fused float graphs; each records what it did in the weight's ``TensorType.sparsity``.

- ``prune_magnitude``: unstructured, zero the ``sparsity`` fraction (default 0.5) of smallest-|w| entries of
  every dense weight (per matrix).
- ``prune_n_m``: N:M structured sparsity along the reduction axis K of a dense weight [K, N]: in every group
  of M consecutive k (for each output n) the M-N smallest |w| become zero -- exactly M-N zeros per group
  (default 2:4; K must be a multiple of M).
- ``prune_heads``: remove attention heads (num_heads shrinks; the Q/K/V weight columns and the output
  projection's rows of a pruned head are dropped). Heads are given per attention node
  (``ctx.options["heads"] = {node name or pattern: [head, ...]}``) or chosen by lowest importance
  ``||W_v[:, head]|| * ||W_o[head, :]||`` with ``head_fraction`` (default 0.25) per layer.

Options: ``sparsity``, ``n``, ``m``, ``heads``, ``head_fraction``, ``keep_float`` (names/patterns skipped).
"""

from __future__ import annotations

import fnmatch

import numpy as np

from ..errors import PassError
from ..ir.graph import Graph, Node
from ..ir.types import TensorType
from .base import PassContext, graph_pass


def _weight_nodes(g: Graph, keep) -> list[Node]:
    out = []
    for n in g.nodes:
        if n.op not in ("dense", "MatMul") or len(n.inputs) < 2:
            continue
        w = g.constants.get(n.inputs[1])
        if w is None or w.ndim != 2 or not np.issubdtype(w.dtype, np.floating):
            continue
        if any(fnmatch.fnmatchcase(k, p) for p in keep for k in (n.name, n.inputs[1]) if k):
            continue
        out.append(n)
    return out


def _set_weight(g: Graph, n: Node, w: np.ndarray, sparsity: dict, i: int = 1) -> None:
    """Give node n its own copy of input i's constant (weights may be shared) with a sparsity record."""
    name = g.fresh(n.inputs[i] + "_pruned")
    g.constants[name] = w
    g.types[name] = TensorType(w.shape, g.types[n.inputs[i]].dtype, None, sparsity)
    n.inputs[i] = name


@graph_pass("prune_magnitude")
def prune_magnitude(g: Graph, ctx: PassContext) -> Graph:
    """Unstructured magnitude pruning of dense weights to a target sparsity."""
    target = float(ctx.get("sparsity", 0.5))
    if not 0.0 <= target < 1.0:
        raise PassError(f"prune_magnitude: sparsity {target} must be in [0, 1)")
    done = 0
    for n in _weight_nodes(g, ctx.get("keep_float") or []):
        w = g.constants[n.inputs[1]]
        k = int(round(target * w.size))
        if k == 0:
            continue
        thresh_idx = np.argsort(np.abs(w), axis=None, kind="stable")[:k]
        wp = w.copy().ravel()
        wp[thresh_idx] = 0
        wp = wp.reshape(w.shape)
        _set_weight(g, n, wp, {"kind": "unstructured", "ratio": round(float(np.mean(wp == 0)), 6)})
        done += 1
    ctx.stats["prune_magnitude"] = {"weights": done, "sparsity": target}
    return g.remove_unused()


def n_m_mask(w: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep mask of N:M sparsity along axis 0 of w [K, N]: the n largest |w| of each group of m rows."""
    k, cols = w.shape
    grp = np.abs(w).reshape(k // m, m, cols)
    order = np.argsort(-grp, axis=1, kind="stable")  # ties: the earlier row wins
    keep = np.zeros_like(grp, dtype=bool)
    np.put_along_axis(keep, order[:, :n, :], True, axis=1)
    return keep.reshape(k, cols)


@graph_pass("prune_n_m")
def prune_n_m(g: Graph, ctx: PassContext) -> Graph:
    """N:M (default 2:4) structured pruning along the reduction axis of dense weights."""
    nk, m = int(ctx.get("n", 2)), int(ctx.get("m", 4))
    if not 0 < nk < m:
        raise PassError(f"prune_n_m: need 0 < n < m, got {nk}:{m}")
    done = 0
    for node in _weight_nodes(g, ctx.get("keep_float") or []):
        w = g.constants[node.inputs[1]]
        if w.shape[0] % m:
            raise PassError(f"prune_n_m: node {node.name!r} has reduction size K={w.shape[0]}, not a multiple of M={m}")
        wp = np.where(n_m_mask(w, nk, m), w, 0).astype(w.dtype)
        _set_weight(g, node, wp, {"kind": "n:m", "n": nk, "m": m, "axis": 0,
                                  "ratio": round(float(np.mean(wp == 0)), 6)})
        done += 1
    ctx.stats["prune_n_m"] = {"weights": done, "pattern": f"{nk}:{m}"}
    return g.remove_unused()


def _head_plan(g: Graph, att: Node):
    """(q, k, v dense nodes, out-projection dense nodes) around an attention node, or None."""
    prod, cons = g.producers(), g.consumers()
    qkv = [prod.get(i) for i in att.inputs[:3]]
    if any(p is None or p.op != "dense" or p.inputs[1] not in g.constants or len(cons.get(p.outputs[0], [])) != 1
           for p in qkv):
        return None
    outs = cons.get(att.outputs[0], [])
    if not outs or any(o.op != "dense" or o.inputs[0] != att.outputs[0] or o.inputs[1] not in g.constants for o in outs):
        return None
    if att.outputs[0] in g.outputs:
        return None
    return qkv, outs


@graph_pass("prune_heads")
def prune_heads(g: Graph, ctx: PassContext) -> Graph:
    """Remove attention heads (given, or the least important fraction per layer)."""
    spec = ctx.get("heads")
    frac = float(ctx.get("head_fraction", 0.25))
    pruned = {}
    for att in [n for n in g.nodes if n.op == "attention"]:
        plan = _head_plan(g, att)
        if plan is None:
            continue
        (qn, kn, vn), outs = plan
        h = int(att.attrs["num_heads"])
        hd = g.types[att.inputs[0]].shape[-1]
        d = hd // h
        if spec is not None:
            heads = sorted({int(x) for pat, hs in spec.items() if fnmatch.fnmatchcase(att.name, pat) for x in hs})
        else:
            wv, wo = g.constants[vn.inputs[1]], g.constants[outs[0].inputs[1]]
            imp = [np.linalg.norm(wv[:, i * d:(i + 1) * d]) * np.linalg.norm(wo[i * d:(i + 1) * d]) for i in range(h)]
            heads = sorted(np.argsort(imp, kind="stable")[: int(np.floor(frac * h))].tolist())
        if any(not 0 <= x < h for x in heads):
            raise PassError(f"prune_heads: node {att.name!r} has {h} heads; cannot prune {heads}")
        if len(heads) >= h:
            raise PassError(f"prune_heads: node {att.name!r}: pruning {len(heads)} of {h} heads leaves none")
        if not heads:
            continue
        keep_cols = np.concatenate([np.arange(i * d, (i + 1) * d) for i in range(h) if i not in heads])
        rec = {"kind": "heads", "pruned": heads, "of": h}
        for p in (qn, kn, vn):
            _set_weight(g, p, g.constants[p.inputs[1]][:, keep_cols].copy(), rec)
            if p.input(2):
                _set_weight(g, p, g.constants[p.inputs[2]][keep_cols].copy(), {}, i=2)
            t = g.types[p.outputs[0]]
            g.types[p.outputs[0]] = TensorType(t.shape[:-1] + (len(keep_cols),), t.dtype)
        for o in outs:
            _set_weight(g, o, g.constants[o.inputs[1]][keep_cols, :].copy(), rec)
        t = g.types[att.outputs[0]]
        g.types[att.outputs[0]] = TensorType(t.shape[:-1] + (len(keep_cols),), t.dtype)
        att.attrs["num_heads"] = h - len(heads)
        pruned[att.name] = heads
    ctx.stats["prune_heads"] = pruned
    return g.remove_unused()
