"""Fusion passes: attention, layer norm, GELU, dense (MatMul + bias + activation), residual add + layer
norm, Conv + BatchNorm folding. Each matcher recognises what the torch exporters (legacy and dynamo,
eager and SDPA attention) really emit, rewrites to one fused op, and leaves dead nodes to DCE."""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node
from ..ir.types import TensorType
from .base import PassContext, graph_pass
from .cleanup import alias
from .layout import head_layout_base, merge_heads_chain


class _Index:
    """Producer/consumer lookups, rebuilt after each rewrite."""

    def __init__(self, g: Graph):
        self.g = g
        self.prod = g.producers()
        self.cons = g.consumers()

    def only_consumer(self, v: str) -> Node | None:
        c = self.cons.get(v, [])
        return c[0] if len(c) == 1 and v not in self.g.outputs else None

    def scalar(self, v: str) -> float | None:
        c = self.g.constants.get(v)
        if c is not None and c.size == 1 and np.issubdtype(c.dtype, np.floating):
            return float(c.reshape(()))
        return None

    def other(self, n: Node, v: str) -> str:
        return n.inputs[1] if n.inputs[0] == v else n.inputs[0]


def _near(a: float | None, b: float, tol: float = 1e-3) -> bool:
    return a is not None and abs(a - b) <= tol * max(1.0, abs(b))


# ---------------------------------------------------------------------------------------------------------
# GELU: 0.5 * x * (1 + erf(x / sqrt 2))  and  0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
# ---------------------------------------------------------------------------------------------------------
def _half_x_times(ix: _Index, t: str, x: str) -> str | None:
    """Find the value 0.5 * x * t built from t by the Mul orders exporters use; returns its name."""
    m1 = ix.only_consumer(t)
    if m1 is None or m1.op != "Mul":
        return None
    o = ix.other(m1, t)
    if o == x:  # (x * t) * 0.5
        m2 = ix.only_consumer(m1.outputs[0])
        if m2 is not None and m2.op == "Mul" and _near(ix.scalar(ix.other(m2, m1.outputs[0])), 0.5):
            return m2.outputs[0]
        return None
    if _near(ix.scalar(o), 0.5):  # (t * 0.5) * x
        m2 = ix.only_consumer(m1.outputs[0])
        if m2 is not None and m2.op == "Mul" and ix.other(m2, m1.outputs[0]) == x:
            return m2.outputs[0]
        return None
    p = ix.prod.get(o)  # (x * 0.5) * t
    if p is not None and p.op == "Mul" and x in p.inputs and _near(ix.scalar(ix.other(p, x)), 0.5):
        return m1.outputs[0]
    return None


def _one_plus(ix: _Index, v: str) -> str | None:
    a = ix.only_consumer(v)
    if a is not None and a.op == "Add" and _near(ix.scalar(ix.other(a, v)), 1.0):
        return a.outputs[0]
    return None


def _match_erf_gelu(ix: _Index, n: Node) -> tuple[str, str] | None:
    p = ix.prod.get(n.inputs[0])
    if p is None:
        return None
    if p.op == "Div" and _near(ix.scalar(p.inputs[1]), np.sqrt(2.0)):
        x = p.inputs[0]
    elif p.op == "Mul" and (s := [i for i in p.inputs if _near(ix.scalar(i), 1 / np.sqrt(2.0))]):
        x = ix.other(p, s[0])
    else:
        return None
    t = _one_plus(ix, n.outputs[0])
    out = _half_x_times(ix, t, x) if t else None
    return (x, out) if out else None


def _is_cube(ix: _Index, v: str, x: str) -> bool:
    p = ix.prod.get(v)
    if p is None:
        return False
    if p.op == "Pow" and p.inputs[0] == x and _near(ix.scalar(p.inputs[1]) if ix.scalar(p.inputs[1]) is not None
                                                     else float(ix.g.constants.get(p.inputs[1], np.nan).reshape(-1)[0])
                                                     if p.inputs[1] in ix.g.constants else None, 3.0):
        return True
    if p.op == "Mul" and x in p.inputs:
        q = ix.prod.get(ix.other(p, x))
        return q is not None and q.op == "Mul" and q.inputs == [x, x]
    return False


def _match_tanh_gelu(ix: _Index, n: Node) -> tuple[str, str] | None:
    p = ix.prod.get(n.inputs[0])  # sqrt(2/pi) * inner
    if p is None or p.op != "Mul":
        return None
    s = [i for i in p.inputs if _near(ix.scalar(i), np.sqrt(2 / np.pi))]
    if not s:
        return None
    inner = ix.prod.get(ix.other(p, s[0]))  # x + 0.044715 * x^3
    if inner is None or inner.op != "Add":
        return None
    for x in inner.inputs:
        c = ix.prod.get(ix.other(inner, x))
        if c is not None and c.op == "Mul":
            k = [i for i in c.inputs if _near(ix.scalar(i), 0.044715)]
            if k and _is_cube(ix, ix.other(c, k[0]), x):
                t = _one_plus(ix, n.outputs[0])
                out = _half_x_times(ix, t, x) if t else None
                if out:
                    return x, out
    return None


@graph_pass("fuse_gelu")
def fuse_gelu(g: Graph, ctx: PassContext) -> Graph:
    """Erf and tanh GELU spelled out in elementwise ops, and ONNX Gelu, become `gelu`."""
    count = 0
    for i, n in enumerate(list(g.nodes)):
        if n.op == "Gelu":
            n.op, n.attrs = "gelu", {"approximate": n.attr("approximate", "none")}
            count += 1
            continue
        if n.op not in ("Erf", "Tanh"):
            continue
        ix = _Index(g)
        m = _match_erf_gelu(ix, n) if n.op == "Erf" else _match_tanh_gelu(ix, n)
        if m is None:
            continue
        x, out = m
        node = Node("gelu", [x], [out], {"approximate": "none" if n.op == "Erf" else "tanh"}, g.fresh(n.name + "_gelu"))
        ix.prod[out].outputs = [g.fresh(out + "_dead")]
        g.types[ix.prod[out].outputs[0]] = g.types[out]
        g.nodes.insert(g.nodes.index(ix.prod[out]) + 1, node)
        count += 1
    ctx.stats["fuse_gelu"] = {"fused": count}
    return g.toposort().remove_unused()


# ---------------------------------------------------------------------------------------------------------
# Layer norm: LayerNormalization, or ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add spelled out
# ---------------------------------------------------------------------------------------------------------
def _reduce_last(ix: _Index, n: Node) -> bool:
    if n.op != "ReduceMean":
        return False
    axes = n.attr("axes")
    if axes is None and len(n.inputs) > 1:
        axes = ix.g.constants.get(n.inputs[1])
    r = ix.g.types[n.inputs[0]].rank
    return axes is not None and [int(a) % r for a in np.atleast_1d(axes)] == [r - 1] and n.attr("keepdims", 1)


def _match_spelled_ln(ix: _Index, mean1: Node) -> tuple[str, float, Node, str] | None:
    """mean1 = ReduceMean(x); d = x - mean1; var = ReduceMean(d^2); y = d / sqrt(var + eps). Returns
    (x, eps, final div node, d) or None."""
    x = mean1.inputs[0]
    subs = [c for c in ix.cons.get(mean1.outputs[0], []) if c.op == "Sub" and c.inputs == [x, mean1.outputs[0]]]
    if len(subs) != 1:
        return None
    d = subs[0].outputs[0]
    users = ix.cons.get(d, [])
    sq = [u for u in users if (u.op == "Pow" and u.inputs[0] == d) or (u.op == "Mul" and u.inputs == [d, d])]
    div = [u for u in users if u.op == "Div" and u.inputs[0] == d]
    if len(sq) != 1 or len(div) != 1 or len(users) != 2:
        return None
    m2 = ix.only_consumer(sq[0].outputs[0])
    if m2 is None or not _reduce_last(ix, m2):
        return None
    a = ix.only_consumer(m2.outputs[0])
    eps = ix.scalar(ix.other(a, m2.outputs[0])) if a is not None and a.op == "Add" else None
    s = ix.only_consumer(a.outputs[0]) if eps is not None else None
    if s is None or s.op != "Sqrt" or div[0].inputs[1] != s.outputs[0]:
        return None
    return x, eps, div[0], d


@graph_pass("fuse_layer_norm")
def fuse_layer_norm(g: Graph, ctx: PassContext) -> Graph:
    """LayerNormalization over the last axis, and its spelled-out form with affine Mul/Add, become `layer_norm`."""
    count = 0
    for n in list(g.nodes):
        if n.op == "LayerNormalization" and n.attr("axis", -1) in (-1, g.types[n.inputs[0]].rank - 1):
            n.op = "layer_norm"
            n.attrs = {"epsilon": float(n.attr("epsilon", 1e-5)), "axis": -1}
            n.outputs = n.outputs[:1]
            count += 1
            continue
        if n.op != "ReduceMean":
            continue
        ix = _Index(g)
        if not _reduce_last(ix, n):
            continue
        m = _match_spelled_ln(ix, n)
        if m is None:
            continue
        x, eps, div, _ = m
        c = g.types[x].shape[-1]
        out, gamma, beta = div.outputs[0], None, None
        mul = ix.only_consumer(out)
        if mul is not None and mul.op == "Mul" and g.types[ix.other(mul, out)].shape[-1:] == (c,) and \
                ix.other(mul, out) in g.constants:
            gamma, out = ix.other(mul, out), mul.outputs[0]
            add = ix.only_consumer(out)
            if add is not None and add.op == "Add" and ix.other(add, out) in g.constants and \
                    g.types[ix.other(add, out)].shape[-1:] == (c,):
                beta, out = ix.other(add, out), add.outputs[0]
        if gamma is None:
            gamma = g.add_constant(n.name + "_gamma", np.ones(c, g.types[x].dtype.numpy))
        ins = [x, gamma] + ([beta] if beta else [])
        last = ix.prod[out]
        new_out = g.fresh(out + "_dead")
        last.outputs = [new_out if o == out else o for o in last.outputs]
        g.types[new_out] = g.types[out]
        g.nodes.insert(g.nodes.index(last) + 1, Node("layer_norm", ins, [out], {"epsilon": eps, "axis": -1},
                                                     g.fresh(n.name + "_ln")))
        count += 1
    ctx.stats["fuse_layer_norm"] = {"fused": count}
    return g.toposort().remove_unused()


# ---------------------------------------------------------------------------------------------------------
# Dense: MatMul(x, W const) [+ bias const] [-> gelu/relu/tanh]
# ---------------------------------------------------------------------------------------------------------
_ACT = {"Relu": "relu", "Tanh": "tanh"}


@graph_pass("fuse_dense", requires=("fuse_gelu",))
def fuse_dense(g: Graph, ctx: PassContext) -> Graph:
    """MatMul with a constant 2-D weight, its bias Add and a following activation become `dense`."""
    count = 0
    ix = _Index(g)
    for n in list(g.nodes):
        if n.op != "MatMul" or n.inputs[1] not in g.constants or g.constants[n.inputs[1]].ndim != 2:
            continue
        if g.types[n.inputs[0]].rank < 2:
            continue
        ins, out, absorbed = [n.inputs[0], n.inputs[1]], n.outputs[0], [n]
        nn_ = g.types[out].shape[-1]
        a = ix.only_consumer(out)
        if a is not None and a.op == "Add":
            b = ix.other(a, out)
            if b in g.constants and g.constants[b].size == nn_ and g.types[a.outputs[0]].shape == g.types[out].shape:
                ins.append(b if g.constants[b].ndim == 1 else g.add_constant(b + "_1d", g.constants[b].reshape(-1)))
                out = a.outputs[0]
                absorbed.append(a)
        act = "none"
        f = ix.only_consumer(out)
        if f is not None and (f.op in _ACT or f.op == "gelu"):
            act = _ACT.get(f.op) or ("gelu" if f.attr("approximate", "none") == "none" else "gelu_tanh")
            out = f.outputs[0]
            absorbed.append(f)
        last = absorbed[-1]
        idx = g.nodes.index(last)
        for m in absorbed:
            g.nodes.remove(m)
        g.nodes.insert(idx - len(absorbed) + 1, Node("dense", ins, [out], {"activation": act}, g.fresh(n.name + "_dense")))
        count += 1
        ix = _Index(g)
    ctx.stats["fuse_dense"] = {"fused": count}
    return g.toposort().remove_unused()


# ---------------------------------------------------------------------------------------------------------
# Residual add + layer norm
# ---------------------------------------------------------------------------------------------------------
@graph_pass("fuse_add_layer_norm", requires=("fuse_layer_norm",))
def fuse_add_layer_norm(g: Graph, ctx: PassContext) -> Graph:
    """Add(x, residual) feeding a layer_norm becomes `add_layer_norm` (the sum stays available as output 1)."""
    count = 0
    ix = _Index(g)
    for n in list(g.nodes):
        if n.op != "layer_norm":
            continue
        a = ix.prod.get(n.inputs[0])
        if a is None or a.op != "Add" or any(i in g.constants for i in a.inputs):
            continue
        ta, tb, ts = (g.types[i] for i in (a.inputs[0], a.inputs[1], a.outputs[0]))
        if not (ta.shape == tb.shape == ts.shape):
            continue
        s = a.outputs[0]
        node = Node("add_layer_norm", [a.inputs[0], a.inputs[1]] + n.inputs[1:], [n.outputs[0], s],
                    {"epsilon": n.attr("epsilon", 1e-5)}, g.fresh(n.name + "_add"))
        idx = g.nodes.index(n)
        g.nodes[idx] = node
        g.nodes.remove(a)
        count += 1
        ix = _Index(g)
    ctx.stats["fuse_add_layer_norm"] = {"fused": count}
    return g.toposort().remove_unused()


# ---------------------------------------------------------------------------------------------------------
# Attention
# ---------------------------------------------------------------------------------------------------------
def _strip_scale(ix: _Index, v: str) -> tuple[str, float]:
    """Peel Mul/Div by scalar constants off v; returns (inner value, accumulated factor)."""
    scale = 1.0
    while (p := ix.prod.get(v)) is not None and p.op in ("Mul", "Div"):
        consts = [i for i in p.inputs if ix.scalar(i) is not None]
        if not consts or (p.op == "Div" and p.inputs[1] != consts[0]):
            break
        c = ix.scalar(consts[0])
        scale = scale * c if p.op == "Mul" else scale / c
        v = ix.other(p, consts[0])
    return v, scale


def _match_attention(ix: _Index, sm: Node):
    g = ix.g
    s_t = g.types[sm.inputs[0]]
    if s_t.rank != 4 or sm.attr("axis", -1) not in (-1, 3):
        return None
    p = sm.outputs[0]
    users = ix.cons.get(p, [])
    # SDPA guard: Where(IsNaN(p), 0, p) -- fully masked rows give zeros; `attention` defines them so.
    if len(users) == 2 and {u.op for u in users} == {"IsNaN", "Where"}:
        isnan = next(u for u in users if u.op == "IsNaN")
        wh = next(u for u in users if u.op == "Where")
        if wh.inputs[0] == isnan.outputs[0] and wh.inputs[2] == p and _near(ix.scalar(wh.inputs[1]), 0.0):
            p = wh.outputs[0]
            users = ix.cons.get(p, [])
    if len(users) != 1 or users[0].op != "MatMul" or users[0].inputs[0] != p or p in g.outputs:
        return None
    pv = users[0]
    scores, scale = _strip_scale(ix, sm.inputs[0])
    mask = None
    a = ix.prod.get(scores)
    if a is not None and a.op == "Add":
        for cand in a.inputs:
            inner, sc2 = _strip_scale(ix, ix.other(a, cand))
            q = ix.prod.get(inner)
            if q is not None and q.op == "MatMul" and g.types[inner].rank == 4:
                mask, scores, scale = cand, inner, scale * sc2
                break
    qk = ix.prod.get(scores)
    if qk is None or qk.op != "MatMul":
        return None
    qh, sq = _strip_scale(ix, qk.inputs[0])
    kt, sk = _strip_scale(ix, qk.inputs[1])
    b, h, lq, d = g.types[qh].shape
    q3 = head_layout_base(g, ix.prod, qh, "bhsd")
    k3 = head_layout_base(g, ix.prod, kt, "bhds")
    v3 = head_layout_base(g, ix.prod, pv.inputs[1], "bhsd")
    if q3 is None or k3 is None or v3 is None:
        return None
    merged = merge_heads_chain(g, ix.cons, pv.outputs[0])
    if merged is None:
        return None
    return dict(q=q3, k=k3, v=v3, mask=mask, scale=scale * sq * sk, heads=h, out=merged, softmax=sm)


@graph_pass("fuse_attention")
def fuse_attention(g: Graph, ctx: PassContext) -> Graph:
    """QKᵀ·scale (+mask) -> Softmax -> ·V with the head split/merge reshapes and transposes becomes one
    `attention` op on [B, S, H*D] tensors."""
    count = 0
    for sm in [n for n in g.nodes if n.op == "Softmax"]:
        ix = _Index(g)
        if sm not in g.nodes:
            continue
        m = _match_attention(ix, sm)
        if m is None:
            continue
        ins = []
        pre: list[Node] = []
        for key in ("q", "k", "v"):
            base, reshape_to = m[key]
            if reshape_to is not None:  # a 2-D [B*S, H*D] root: view it as [B, S, H*D]
                shp = g.add_constant(base + "_bsd_shape", np.array(reshape_to, np.int64))
                name = g.fresh(base + "_bsd")
                g.types[name] = TensorType(reshape_to, g.types[base].dtype)
                pre.append(Node("Reshape", [base, shp], [name], {}, g.fresh(name)))
                base = name
            ins.append(base)
        mask = m["mask"]
        if mask is not None:
            ins.append(mask)
        final, final_shape = m["out"]
        q_t = g.types[ins[0]]
        att_shape = q_t.shape[:2] + (g.types[ins[2]].shape[-1],)
        att_out = g.fresh(m["softmax"].name + "_attention")
        g.types[att_out] = TensorType(att_shape, q_t.dtype)
        node = Node("attention", ins, [att_out], {"num_heads": int(m["heads"]), "scale": float(m["scale"]),
                                                  "causal": 0}, g.fresh(m["softmax"].name.replace("Softmax", "") + "attention"))
        new = pre + [node]
        if final_shape != att_shape:
            shp = g.add_constant(att_out + "_shape", np.array(final_shape, np.int64))
            r_out = g.fresh(att_out + "_2d")
            g.types[r_out] = TensorType(final_shape, q_t.dtype)
            new.append(Node("Reshape", [att_out, shp], [r_out], {}, g.fresh(r_out)))
            att_out = r_out
        idx = g.nodes.index(m["softmax"])
        g.nodes[idx:idx] = new
        if not alias(g, final, att_out):
            g.nodes.append(Node("Identity", [att_out], [final], {}, g.fresh("attention_out")))
        count += 1
        g.toposort().remove_unused()
    ctx.stats["fuse_attention"] = {"fused": count}
    return g.toposort().remove_unused()


def _qkv_projections(g: Graph, ix: _Index, att: Node) -> list[Node] | None:
    """The q, k, v ``dense`` nodes of an attention when they are three projections of one input that only this
    attention reads: constant 2-D weights of one dtype and K, no activation, biases all given (constant) or none."""
    ds = [ix.prod.get(v) for v in att.inputs[:3]]
    if any(d is None or d.op != "dense" for d in ds) or len({id(d) for d in ds}) != 3:
        return None
    x = ds[0].inputs[0]
    for d in ds:
        if d.inputs[0] != x or d.attr("activation", "none") != "none" or ix.only_consumer(d.outputs[0]) is not att:
            return None
        if att.inputs[:3].count(d.outputs[0]) != 1:
            return None
        w = g.constants.get(d.inputs[1])
        if w is None or w.ndim != 2 or g.types[d.inputs[1]].quant is not None:
            return None
    ws = [g.constants[d.inputs[1]] for d in ds]
    if len({(w.shape[0], w.dtype) for w in ws}) != 1:
        return None
    has_bias = [bool(d.input(2)) for d in ds]
    if any(has_bias) and not (all(has_bias) and all(d.inputs[2] in g.constants for d in ds)):
        return None
    return ds


def _fuse_projections(g: Graph, ds: list[Node], op: str, attrs: dict) -> None:
    """Replace projections ``ds`` (one input, constant ``[K, N_i]`` weights, constant biases all given or none) by
    one ``op`` node with ``attrs``, the weights and biases side by side, and a ``Split`` of its output back into
    their outputs, at the place of the first."""
    ws = [g.constants[d.inputs[1]] for d in ds]
    ins = [ds[0].inputs[0], g.add_constant(ds[0].inputs[1] + "_qkv", np.concatenate(ws, axis=1))]
    if ds[0].input(2):
        ins.append(g.add_constant(ds[0].inputs[2] + "_qkv",
                                  np.concatenate([g.constants[d.inputs[2]].reshape(-1) for d in ds])))
    outs = [d.outputs[0] for d in ds]
    xt = g.types[ds[0].inputs[0]]
    fused = g.fresh(ds[0].name + "_qkv")
    g.types[fused] = TensorType(xt.shape[:-1] + (sum(int(w.shape[1]) for w in ws),), g.types[outs[0]].dtype)
    first = min(g.nodes.index(d) for d in ds)
    for d in ds:
        g.nodes.remove(d)
    g.nodes[first:first] = [
        Node(op, ins, [fused], attrs, g.fresh(ds[0].name + f"_qkv_{op}")),
        Node("Split", [fused], outs, {"axis": xt.rank - 1, "split": [int(w.shape[1]) for w in ws]},
             g.fresh(ds[0].name + "_qkv_split"))]


@graph_pass("fuse_qkv", requires=("fuse_attention", "fuse_dense"))
def fuse_qkv(g: Graph, ctx: PassContext) -> Graph:
    """The Q, K and V projections of an attention (three `dense` of one input) become one `dense` with the
    weights side by side and a `Split` of its output: one wide GEMM instead of three narrow ones, and the GPU
    attention kernel reads the heads from the fused output in place (GPT-2's exports already have this form)."""
    return _fuse_each_attention(g, ctx, "fuse_qkv", "attention", _qkv_projections, "dense",
                                lambda ds: {"activation": "none"})


def _fuse_each_attention(g: Graph, ctx: PassContext, stat: str, att_op: str, find, op: str, attrs_of) -> Graph:
    """For each ``att_op`` node whose projections ``find(g, index, node)`` returns, :func:`_fuse_projections`
    them into one ``op`` with ``attrs_of(projections)``; the count goes to ``ctx.stats[stat]``."""
    count = 0
    for att in [n for n in g.nodes if n.op == att_op]:
        ds = find(g, _Index(g), att)
        if ds is None:
            continue
        _fuse_projections(g, ds, op, attrs_of(ds))
        count += 1
    ctx.stats[stat] = {"fused": count}
    return g.toposort().remove_unused()


# ---------------------------------------------------------------------------------------------------------
# Conv + BatchNorm folding
# ---------------------------------------------------------------------------------------------------------
@graph_pass("fold_conv_bn")
def fold_conv_bn(g: Graph, ctx: PassContext) -> Graph:
    """Conv with constant weights followed by BatchNormalization (inference) folds into one Conv."""
    count = 0
    ix = _Index(g)
    for bn in [n for n in g.nodes if n.op == "BatchNormalization"]:
        conv = ix.prod.get(bn.inputs[0])
        if conv is None or conv.op != "Conv" or ix.only_consumer(conv.outputs[0]) is not bn:
            continue
        if not all(i in g.constants for i in conv.inputs[1:] + bn.inputs[1:5] if i):
            continue
        w = g.constants[conv.inputs[1]].astype(np.float64)
        b = g.constants[conv.input(2)].astype(np.float64) if conv.input(2) else np.zeros(w.shape[0])
        scale, beta, mean, var = (g.constants[i].astype(np.float64) for i in bn.inputs[1:5])
        k = scale / np.sqrt(var + bn.attr("epsilon", 1e-5))
        dt = g.constants[conv.inputs[1]].dtype
        wn = g.add_constant(conv.inputs[1] + "_bn", (w * k.reshape((-1,) + (1,) * (w.ndim - 1))).astype(dt))
        bnn = g.add_constant(conv.name + "_bn_bias", ((b - mean) * k + beta).astype(dt))
        conv.inputs = [conv.inputs[0], wn, bnn]
        out = bn.outputs[0]
        dead = g.fresh(conv.outputs[0] + "_dead")
        g.nodes.remove(bn)
        g.types[dead] = g.types[conv.outputs[0]]
        conv.outputs = [out]
        count += 1
        ix = _Index(g)
    ctx.stats["fold_conv_bn"] = {"fused": count}
    return g.remove_unused()


def _qkv_qprojections(g: Graph, ix: _Index, att: Node) -> list[Node] | None:
    """The q, k, v ``qdense`` nodes of a ``qattention`` when they are three int8 projections of one input (same
    input zero point, constant [K, N] int8 weights of one K, int32 biases all given or none) that only this
    attention reads, each requantized to int8 at one zero point without activation."""
    ds = [ix.prod.get(v) for v in att.inputs[:3]]
    if any(d is None or d.op != "qdense" for d in ds) or len({id(d) for d in ds}) != 3:
        return None
    x = ds[0].inputs[0]
    keys = set()
    for d in ds:
        if d.inputs[0] != x or ix.only_consumer(d.outputs[0]) is not att or att.inputs[:3].count(d.outputs[0]) != 1:
            return None
        if d.attr("out_dtype", "int8") != "int8" or int(d.attr("out_bits", 8)) != 8 or d.attr("activation", "none") != "none":
            return None
        w = g.constants.get(d.inputs[1])
        if w is None or w.ndim != 2 or w.dtype != np.int8 or (d.input(2) and d.inputs[2] not in g.constants):
            return None
        keys.add((int(d.attr("x_zero_point", 0)), int(d.attr("out_zero_point", 0)), w.shape[0], bool(d.input(2))))
    return ds if len(keys) == 1 else None


@graph_pass("fuse_qkv_int8")
def fuse_qkv_int8(g: Graph, ctx: PassContext) -> Graph:
    """:func:`fuse_qkv` for integer attention: the q, k, v int8 projections of a ``qattention`` become one
    ``qdense`` (weights, biases and per-channel requantization side by side) and a ``Split`` of its int8 output.
    Same integers: each output channel keeps its own multiplier and shift."""
    def attrs_of(ds: list[Node]) -> dict:
        widths = [int(g.constants[d.inputs[1]].shape[1]) for d in ds]

        def side_by_side(attr: str) -> np.ndarray:
            return np.concatenate([np.broadcast_to(np.asarray(d.attrs[attr], np.int64).reshape(-1), (wd,))
                                   for d, wd in zip(ds, widths)]).astype(np.int32)

        attrs = {k: v for k, v in ds[0].attrs.items() if k not in ("multiplier", "shift", "out_scale_q")}
        return attrs | {"multiplier": side_by_side("multiplier"), "shift": side_by_side("shift")}

    return _fuse_each_attention(g, ctx, "fuse_qkv_int8", "qattention", _qkv_qprojections, "qdense", attrs_of)
