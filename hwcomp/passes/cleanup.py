"""Cleanup passes: constant folding, no-op removal, canonicalization, CSE, DCE."""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node
from ..ir.types import TensorType
from ..ops import run_op
from .base import PassContext, graph_pass

_FOLD_LIMIT = 64 << 20  # bytes a folded constant may take


@graph_pass("dce")
def dce(g: Graph, ctx: PassContext) -> Graph:
    """Dead-code elimination: drop nodes and constants no output depends on."""
    return g.remove_unused()


@graph_pass("fold_constants")
def fold_constants(g: Graph, ctx: PassContext) -> Graph:
    """Evaluate nodes whose inputs are all constants; Shape/Size of static tensors become constants."""
    keep: list[Node] = []
    with np.errstate(all="ignore"):
        for n in g.nodes:
            if n.op in ("Shape", "Size") and n.inputs[0] in g.types:
                from ..ops.tensor import shape_op_value
                t = g.types[n.inputs[0]]
                g.constants[n.outputs[0]] = shape_op_value(n, t.shape) if n.op == "Shape" else np.array(t.size, np.int64)
                continue
            if n.inputs and all((not i) or i in g.constants for i in n.inputs) and not _is_quant_boundary(n):
                outs = run_op(n, [g.constants[i] if i else None for i in n.inputs])
                if sum(o.nbytes for o in outs) <= _FOLD_LIMIT:
                    for o, v in zip(n.outputs, outs):
                        if o:
                            g.constants[o] = v
                            g.types[o] = TensorType(v.shape, g.types[o].dtype, g.types[o].quant, g.types[o].sparsity)
                    continue
            keep.append(n)
    g.nodes = keep
    return g.remove_unused()


def _is_quant_boundary(n: Node) -> bool:
    # Keep DequantizeLinear of constant weights: it is how QDQ models carry int8 weights.
    return n.op in ("DequantizeLinear", "dequantize")


def alias(g: Graph, old: str, new: str) -> bool:
    """Make every use of `old` read `new` instead. A graph output keeps its public name: the producer of
    `new` is renamed to `old`. Returns False (and changes nothing) when that is impossible because `new`
    is a graph input, a constant or another graph output."""
    if old in g.outputs:
        if new in g.inputs or new in g.constants or new in g.outputs:
            return False
        for n in g.nodes:  # the value's old producer loses the name (dead from here on, DCE removes it)
            if old in n.outputs:
                dead = g.fresh(old + "_replaced")
                g.types[dead] = g.types[old]
                n.outputs = [dead if o == old else o for o in n.outputs]
        for n in g.nodes:
            n.outputs = [old if o == new else o for o in n.outputs]
            n.inputs = [old if i == new else i for i in n.inputs]
        g.types[old] = g.types[new]
        return True
    g.replace_uses(old, new)
    return True


@graph_pass("remove_noops")
def remove_noops(g: Graph, ctx: PassContext) -> Graph:
    """Remove Identity, inference Dropout, Casts to the same dtype, Reshapes/Expands to the same shape,
    identity Transposes, and the IsNaN/Where guard SDPA exports put after its softmax is left to fusion."""
    keep: list[Node] = []
    for n in g.nodes:
        src = n.inputs[0] if n.inputs else ""
        out = n.outputs[0] if n.outputs else ""
        noop = False
        if n.op in ("Identity", "Dropout"):
            noop = True
        elif n.op == "Cast" and g.types[src].dtype == g.types[out].dtype:
            noop = True
        elif n.op in ("Reshape", "Expand", "Squeeze", "Unsqueeze", "Flatten") and g.types[src].shape == g.types[out].shape:
            noop = True
        elif n.op == "Transpose" and list(n.attr("perm") or []) == sorted(n.attr("perm") or [0, 1]):
            noop = True
        if noop and not (n.op == "Dropout" and len(n.outputs) > 1 and n.outputs[1] and _used(g, n.outputs[1])):
            if alias(g, out, src):
                continue
        keep.append(n)
    g.nodes = keep
    return g.remove_unused()


def _used(g: Graph, name: str) -> bool:
    return name in g.outputs or any(name in n.inputs for n in g.nodes)


@graph_pass("canonicalize")
def canonicalize(g: Graph, ctx: PassContext) -> Graph:
    """Reshape(Reshape(x)) -> Reshape(x); Transpose(Transpose(x)) -> one Transpose; Gemm with constant B
    (transA=0, alpha=beta=1) -> MatMul + Add; Reshape that only flattens leading dims around a MatMul with a
    constant 2-D weight is removed (the MatMul runs on the N-D tensor)."""
    prod = g.producers()
    for n in g.nodes:
        if n.op == "Reshape" and (p := prod.get(n.inputs[0])) is not None and p.op == "Reshape":
            n.inputs[0] = p.inputs[0]
        elif n.op == "Transpose" and (p := prod.get(n.inputs[0])) is not None and p.op == "Transpose":
            p1, p2 = p.attr("perm"), n.attr("perm")
            if p1 is not None and p2 is not None:
                n.inputs[0] = p.inputs[0]
                n.attrs["perm"] = [p1[i] for i in p2]
    g.remove_unused()
    _gemm_to_matmul(g)
    _lift_matmul_over_flatten(g)
    return g.remove_unused()


def _gemm_to_matmul(g: Graph) -> None:
    new_nodes: list[Node] = []
    for n in g.nodes:
        if (n.op == "Gemm" and not n.attr("transA", 0) and n.attr("alpha", 1.0) == 1.0
                and n.attr("beta", 1.0) == 1.0 and n.inputs[1] in g.constants):
            w = g.constants[n.inputs[1]]
            if n.attr("transB", 0):
                w = np.ascontiguousarray(w.T)
            wname = g.add_constant(n.inputs[1] + "_kn", w) if n.attr("transB", 0) else n.inputs[1]
            out = n.outputs[0]
            c = n.input(2)
            if c:
                mm = g.fresh(out + "_mm")
                g.types[mm] = TensorType(g.types[out].shape, g.types[out].dtype)
                new_nodes.append(Node("MatMul", [n.inputs[0], wname], [mm], {}, g.fresh(n.name + "_mm")))
                new_nodes.append(Node("Add", [mm, c], [out], {}, g.fresh(n.name + "_bias")))
            else:
                new_nodes.append(Node("MatMul", [n.inputs[0], wname], [out], {}, n.name))
            continue
        new_nodes.append(n)
    g.nodes = new_nodes


def _lift_matmul_over_flatten(g: Graph) -> None:
    """x[B,S,K] -Reshape-> [B*S,K] -MatMul(W)-> [B*S,N] (-Add bias)? -Reshape-> [B,S,N]  ==>  MatMul on x."""
    prod, cons = g.producers(), g.consumers()
    for n in list(g.nodes):
        if n.op not in ("MatMul", "dense") or n.inputs[1] not in g.constants or g.constants[n.inputs[1]].ndim != 2:
            continue
        r_in = prod.get(n.inputs[0])
        if r_in is None or r_in.op != "Reshape":
            continue
        x = r_in.inputs[0]
        xs = g.types[x].shape
        if len(xs) < 3 or g.types[n.inputs[0]].shape != (int(np.prod(xs[:-1])), xs[-1]):
            continue
        # Follow the chain forward: optional bias Add with a constant [N], then a Reshape back.
        chain = [n]
        cur = n.outputs[0]
        nxt = cons.get(cur, [])
        if n.op == "MatMul" and len(nxt) == 1 and nxt[0].op == "Add" and any(i in g.constants and g.constants[i].ndim <= 1
                                                         for i in nxt[0].inputs):
            chain.append(nxt[0])
            cur = nxt[0].outputs[0]
            nxt = cons.get(cur, [])
        if len(nxt) != 1 or nxt[0].op != "Reshape" or cur in g.outputs:
            continue
        r_out = nxt[0]
        n_out = g.types[n.outputs[0]].shape[-1]
        if g.types[r_out.outputs[0]].shape != xs[:-1] + (n_out,):
            continue
        # Rewrite: MatMul reads x directly; the chain's values become N-D; the final Reshape is dropped.
        n.inputs[0] = x
        for c in chain:
            g.types[c.outputs[0]] = TensorType(xs[:-1] + (n_out,), g.types[c.outputs[0]].dtype)
        if alias(g, r_out.outputs[0], cur):
            g.nodes.remove(r_out)


@graph_pass("cse")
def cse(g: Graph, ctx: PassContext) -> Graph:
    """Common-subexpression elimination: identical ops on identical inputs with identical attributes."""
    seen: dict[tuple, Node] = {}
    rename: dict[str, str] = {}
    # Identical small constants (exporters repeat scalars and shape vectors per layer) become one.
    by_value: dict[tuple, str] = {}
    for k, v in g.constants.items():
        if v.size <= 64:
            key = (v.dtype.str, v.shape, v.tobytes(), g.types[k].dtype, g.types[k].quant is None)
            if key in by_value and g.types[k].quant is None:
                rename[k] = by_value[key]
            else:
                by_value.setdefault(key, k)
    keep: list[Node] = []
    for n in g.nodes:
        n.inputs = [rename.get(i, i) for i in n.inputs]
        key = (n.op, tuple(n.inputs), _attr_key(n.attrs), len(n.outputs))
        prev = seen.get(key)
        if prev is not None and not any(o in g.outputs for o in n.outputs):
            for a, b in zip(n.outputs, prev.outputs):
                rename[a] = b
            continue
        seen[key] = n
        keep.append(n)
    g.nodes = keep
    g.outputs = [o if o in g.constants else rename.get(o, o) for o in g.outputs]
    return g.remove_unused()


def _attr_key(attrs: dict) -> tuple:
    def k(v):
        if isinstance(v, np.ndarray):
            return ("nd", v.dtype.str, v.shape, v.tobytes())
        if isinstance(v, (list, tuple)):
            return tuple(k(x) for x in v)
        if isinstance(v, dict):
            return tuple(sorted((a, k(b)) for a, b in v.items()))
        return v
    return tuple(sorted((a, k(b)) for a, b in attrs.items()))
