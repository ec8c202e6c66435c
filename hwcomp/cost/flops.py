"""FLOP / MAC counts per node and per op class (for `hwcomp inspect` and roofline reports)."""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node

# Op class of each op for reports. Ops absent here count as "elementwise" (1 FLOP per output element).
OP_CLASS = {
    "MatMul": "matmul", "Gemm": "matmul", "dense": "matmul", "qdense": "matmul", "MatMulInteger": "matmul",
    "Conv": "conv", "attention": "attention", "qattention": "attention",
    "Softmax": "softmax", "LogSoftmax": "softmax",
    "LayerNormalization": "norm", "layer_norm": "norm", "add_layer_norm": "norm",
    "Gelu": "activation", "gelu": "activation", "Erf": "activation", "Tanh": "activation", "Relu": "activation",
    "Sigmoid": "activation",
    "Reshape": "data movement", "Transpose": "data movement", "Gather": "data movement", "Concat": "data movement",
    "Slice": "data movement", "Split": "data movement", "Unsqueeze": "data movement", "Squeeze": "data movement",
    "Expand": "data movement", "GatherND": "data movement", "Cast": "data movement", "Where": "data movement",
}
_ZERO_FLOP = {"data movement"}


def node_macs(g: Graph, n: Node) -> int:
    """Multiply-accumulates of matmul-like ops (0 for others)."""
    t = g.types
    if n.op in ("MatMul", "dense", "qdense", "MatMulInteger"):
        a, out = t[n.inputs[0]].shape, t[n.outputs[0]].shape
        return int(np.prod(out, dtype=np.int64)) * int(a[-1])
    if n.op == "Gemm":
        a = t[n.inputs[0]].shape
        k = a[0] if n.attr("transA", 0) else a[-1]
        return int(np.prod(t[n.outputs[0]].shape, dtype=np.int64)) * int(k)
    if n.op in ("attention", "qattention"):
        b, sq, hd = t[n.inputs[0]].shape
        sk = t[n.inputs[1]].shape[1]
        return 2 * b * sq * sk * hd
    if n.op == "Conv":
        w = t[n.inputs[1]].shape
        return int(np.prod(t[n.outputs[0]].shape, dtype=np.int64)) * int(np.prod(w[1:], dtype=np.int64))
    return 0


def node_flops(g: Graph, n: Node) -> int:
    macs = node_macs(g, n)
    if macs:
        return 2 * macs
    cls = OP_CLASS.get(n.op, "elementwise")
    if cls in _ZERO_FLOP:
        return 0
    size = sum(g.types[o].size for o in n.outputs if o)
    per = {"softmax": 5, "norm": 8, "activation": 8}.get(cls, 1)
    return per * size


def flops_by_class(g: Graph) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for n in g.nodes:
        cls = OP_CLASS.get(n.op, "elementwise")
        d = out.setdefault(cls, {"nodes": 0, "macs": 0, "flops": 0})
        d["nodes"] += 1
        d["macs"] += node_macs(g, n)
        d["flops"] += node_flops(g, n)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["flops"]))
