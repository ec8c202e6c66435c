"""Quantization passes: static int8 PTQ, weight-only int8/int4, I-BERT integer nonlinears.

``quantize_int8`` (static post-training quantization) on a fused float graph:
  1. ``dense`` activations other than relu are split off into their own node (``gelu`` / ``Tanh``) so that
     the pre-activation value can be calibrated and, later, requantized; a ``MatMul`` by a constant 2-D
     weight counts as a ``dense`` without bias.
  2. Calibration (``hwcomp.quant.calibrate``) observes the inputs and outputs of ``dense``, ``attention``
     (q, k, v and output, never the mask), ``gelu``, ``layer_norm`` and ``add_layer_norm``; the ranges are
     kept in ``graph.metadata["quant"]`` for ``integer_nonlinear``.
  3. Each ``dense`` becomes ``quantize`` (per-tensor asymmetric int8, shared by all users of the value) +
     ``qdense`` (per-output-channel symmetric int8 weights, int32 bias, int32 accumulation) whose result
     leaves through the float dequant epilogue; everything else stays float.
``integer_nonlinear`` then swaps ``attention``/``gelu``/``layer_norm``/``add_layer_norm`` inside that
region for ``qattention``/``int_gelu``/``int_layer_norm`` and the peephole rules below turn float
epilogues into TFLite requantization wherever an integer op consumes the result.

Options (``PassContext.options``): ``calib_inputs`` (list of feed dicts), ``calibrator``
(minmax/percentile/entropy/mse, default minmax: the best on MiniLM with smoothing), ``calib_stats`` (precomputed, reused), ``keep_float``
(node / weight / value names or fnmatch patterns), ``only`` (quantize just these dense nodes; sensitivity
analysis), ``bits`` (activation and weight width, default 8), ``group_size`` (w8/w4, default 128),
``integer_ops`` (subset of softmax/gelu/layer_norm, default all), ``ln_input_bits`` (default 16),
``prob_bits`` (softmax output bits, default 8), ``gelu_input_bits`` (default 8).

``quantize_w8`` / ``quantize_w4`` (weight-only, group-wise asymmetric along K, float activations): each
weight ``dense`` / ``MatMul`` becomes ``wdense``. ``weight_method`` (default gptq with calibration
inputs, rtn without):
  - ``rtn``: round to nearest, each group's full range;
  - ``awq``: activation-aware scaling (``hwcomp.quant.awq``; alpha grid ``awq_grid``, default 0, 0.05, .., 1)
    then the output-error clip search per (group, column);
  - ``gptq``: GPTQ (``hwcomp.quant.gptq``; ``gptq_damp`` default 0.1, ``gptq_act_order`` default on) on
    clip-searched static groups;
  - ``awq+gptq``: AWQ scaling, then GPTQ on the scaled weights.
  The calibration statistics are the second moments E[x x^T] of each dense input over every non-padding
  token. An AWQ scale s is shared by the denses reading one value and is explicit in the IR: one ``Mul`` by
  the constant 1 / s (attr ``awq`` = 1) before them, their codes quantizing W * s. (Folding 1 / s into the
  producer instead is not done: in post-LN encoders such as BERT/MiniLM the layer-norm outputs also feed the
  residual adds, and the QDQ export patches the ONNX model MatMul by MatMul.)
"""

from __future__ import annotations

import fnmatch
import logging

import numpy as np

from ..errors import PassError, QuantizationError
from ..ir.graph import Graph, Node
from ..ir.types import DType
from ..ops import OPS
from ..ops.intmath import INT32_MAX, INT32_MIN, quantize_multiplier
from ..ops.quantized import exp_constants, gelu_constants
from ..quant import calibrate as cal
from ..quant.params import act_qparams, check_bits, weight_grouped, weight_grouped_clip, weight_per_channel
from .base import PassContext, graph_pass

log = logging.getLogger(__name__)

INTEGER_OPS = ("softmax", "gelu", "layer_norm")
_INT_PRODUCERS = ("qdense", "qattention", "int_gelu", "int_layer_norm")


# ---- graph editing helpers ---------------------------------------------------------------------------------

class _Builder:
    """Re-emits a graph's nodes in order, letting a rewrite replace a node by several."""

    def __init__(self, g: Graph):
        self.g = g
        self.old = g.nodes
        g.nodes = []
        g.__dict__["_taken"] = set(g.types) | {n.name for n in self.old}

    def add(self, op: str, inputs: list[str], attrs: dict, name: str, out: str | None = None) -> str:
        g = self.g
        node = Node(op, list(inputs), [], dict(attrs), g.fresh(name))
        types = [g.types[i] if i else None for i in inputs]
        consts = [g.constants.get(i) if i else None for i in inputs]
        (t,) = OPS[op].infer(node, types, consts)
        oname = out if out is not None else g.fresh(node.name + "_out")
        g.types[oname] = t
        node.outputs = [oname]
        g.nodes.append(node)
        return oname

    def keep(self, n: Node) -> None:
        self.g.nodes.append(n)


def _matches(n: Node, patterns) -> bool:
    keys = [n.name, *n.outputs, *(n.inputs[1:2])]
    return any(fnmatch.fnmatchcase(k, p) for p in patterns for k in keys if k)


def _is_weight_dense(g: Graph, n: Node) -> bool:
    if n.op not in ("dense", "MatMul") or len(n.inputs) < 2:
        return False
    w = g.constants.get(n.inputs[1])
    return w is not None and w.ndim == 2 and np.issubdtype(w.dtype, np.floating) and g.types[n.inputs[0]].dtype.is_float


def prepare(g: Graph) -> Graph:
    """Split non-relu dense activations into their own node; MatMul by a constant 2-D weight -> dense."""
    b = _Builder(g)
    for n in b.old:
        if n.op == "MatMul" and _is_weight_dense(g, n):
            n = Node("dense", n.inputs[:2], n.outputs, {"activation": "none"}, n.name)
        act = n.attr("activation", "none") if n.op == "dense" else "none"
        if act in ("none", "relu"):
            b.keep(n)
            continue
        y = n.outputs[0]
        pre = g.fresh(y + "_preact")
        g.types[pre] = g.types[y]
        b.keep(Node("dense", n.inputs, [pre], {**n.attrs, "activation": "none"}, n.name))
        if act in ("gelu", "gelu_tanh"):
            b.keep(Node("gelu", [pre], [y], {"approximate": "none" if act == "gelu" else "tanh"}, g.fresh(n.name + "_act")))
        else:
            b.keep(Node("Tanh", [pre], [y], {}, g.fresh(n.name + "_act")))
    return g


def observed_values(g: Graph) -> set[str]:
    names: set[str] = set()
    for n in g.nodes:
        if n.op == "dense" or (n.op == "MatMul" and _is_weight_dense(g, n)):
            names.update([n.inputs[0], *n.outputs])
        elif n.op == "attention":
            names.update([*n.inputs[:3], *n.outputs])
        elif n.op in ("gelu", "layer_norm", "add_layer_norm"):
            names.update([n.inputs[0], *n.outputs])
    return {x for x in names if x}


def _ranges(g: Graph, ctx: PassContext) -> tuple[dict[str, tuple[float, float]], str]:
    method = ctx.get("calibrator", "minmax")
    if method not in cal.CALIBRATORS:
        raise QuantizationError(f"unknown calibrator {method!r}; choose one of {', '.join(cal.CALIBRATORS)}")
    stats = ctx.get("calib_stats")
    if stats is None:
        stats = cal.collect(g, ctx.get("calib_inputs"), observed_values(g))
        ctx.options["calib_stats"] = stats  # reused by later passes / other calibrators
    return cal.ranges(stats, method), method


# ---- quantize_int8 ---------------------------------------------------------------------------------------

@graph_pass("quantize_int8")
def quantize_int8(g: Graph, ctx: PassContext) -> Graph:
    """Static int8 PTQ: dense -> quantize + qdense (per-channel int8 weights, int32 accumulation)."""
    bits = check_bits(ctx.get("bits", 8))
    abits = check_bits(ctx.get("act_bits", bits), "act_bits")
    g = prepare(g)
    rng0, method = _ranges(g, ctx)
    rng = dict(rng0)
    keep = list(ctx.get("keep_float") or [])
    only = ctx.get("only")
    alpha = ctx.get("smooth_alpha", 0.75)
    stats = ctx.get("calib_stats") or {}
    targets = [n for n in g.nodes if n.op == "dense" and _is_weight_dense(g, n) and not _matches(n, keep)
               and not (only and not _matches(n, only))]
    smooth: dict[str, np.ndarray] = {}
    if alpha is not None:  # SmoothQuant: x / c, w * c with c_k = amax(x_k)^a / amax(w_k)^(1-a), shared per input
        users: dict[str, list[Node]] = {}
        spat = list(ctx.get("smooth_layers") or ["*"])
        for n in targets:
            users.setdefault(n.inputs[0], []).append(n)
        users = {x: ns for x, ns in users.items() if all(_matches(n, spat) for n in ns)}
        for x, ns in users.items():
            st = stats.get(x)
            if st is None or st.chan_lo is None:
                continue
            ax = np.maximum(np.abs(st.chan_lo), np.abs(st.chan_hi)).astype(np.float64)
            aw = np.max([np.abs(g.constants[n.inputs[1]]).max(axis=1) for n in ns], axis=0).astype(np.float64)
            c = np.where((ax > 0) & (aw > 0), ax ** alpha / np.maximum(aw, 1e-12) ** (1 - alpha), 1.0)
            # Normalise so that typical channels keep c = 1 and only outlier channels shrink (c > 1): an
            # asymmetric range would otherwise grow on the side that channels with c < 1 stretch.
            c = np.clip(c / np.median(c), 1.0, 1e4)
            smooth[x] = c
            rng[x] = (float((st.chan_lo / c).min()), float((st.chan_hi / c).max()))  # minmax of x / c
        if smooth and method != "minmax":  # the calibrator on the statistics of x / c: a second pass
            key = ("smooth", alpha, tuple(sorted(smooth)), tuple(ctx.get("smooth_layers") or ["*"]))
            st2 = ctx.options.setdefault("calib_stats_smooth", {}).get(key)
            if st2 is None:
                st2 = cal.collect(g, ctx.get("calib_inputs"), smooth.keys(), divide=smooth)
                ctx.options["calib_stats_smooth"][key] = st2
            rng.update(cal.ranges(st2, method))
    b = _Builder(g)
    qcache: dict[str, tuple[str, float, int]] = {}
    n_q = 0
    tset = {id(n) for n in targets}
    for n in b.old:
        if id(n) not in tset:
            b.keep(n)
            continue
        x = n.inputs[0]
        if x not in rng:
            raise QuantizationError(f"node {n.name!r} (dense): its input {x!r} was not observed in calibration")
        c = smooth.get(x)
        if x not in qcache:
            s, zp = act_qparams(*rng[x], abits)
            scale = s if c is None else (s * c).astype(np.float32)
            qcache[x] = (b.add("quantize", [x], {"scale": scale, "zero_point": zp, "bits": abits, "signed": 1},
                               x.rsplit("/", 1)[-1] + "_q"), s, zp)
        xq, sx, zx = qcache[x]
        w = g.constants[n.inputs[1]].astype(np.float32)
        if c is not None:
            w = (w * c[:, None]).astype(np.float32)
        wq, sw = weight_per_channel(w, bits)
        acc_scale = (np.float64(sx) * sw.astype(np.float64)).astype(np.float32)
        ins = [xq, g.add_constant(n.inputs[1] + "_q", wq)]
        if n.input(2):
            bias = g.constants.get(n.inputs[2])
            if bias is None:
                raise QuantizationError(f"node {n.name!r} (dense): bias {n.inputs[2]!r} is not a constant")
            bq = np.clip(np.rint(bias.astype(np.float64) / acc_scale), INT32_MIN, INT32_MAX).astype(np.int32)
            ins.append(g.add_constant(n.inputs[2] + "_q", bq))
        attrs = {"x_zero_point": zx, "x_scale": sx, "w_scale": sw, "acc_scale": acc_scale, "out_scale": acc_scale,
                 "out_dtype": "float32", "activation": n.attr("activation", "none"), "weight_name": n.inputs[1]}
        if c is not None:
            attrs["smooth"] = c.astype(np.float32)
        b.add("qdense", ins, attrs, n.name, out=n.outputs[0])
        n_q += 1
    g.metadata["quant"] = {"mode": "int8", "calibrator": method, "bits": bits,
                           "ranges": {k: [float(v[0]), float(v[1])] for k, v in rng0.items()},
                           "smooth_alpha": alpha}
    ctx.stats["quantize_int8"] = {"qdense": n_q, "calibrator": method}
    fold_requant(g)
    return g.remove_unused()


# ---- weight-only ---------------------------------------------------------------------------------------

WEIGHT_METHODS = ("rtn", "awq", "gptq", "awq+gptq")


def weight_method(ctx: PassContext) -> str:
    """The weight-only method: the ``weight_method`` option, by default gptq when calibration inputs are
    given (the most accurate on MiniLM-L6, bench/quant/minilm_accuracy.json), else rtn."""
    method = ctx.get("weight_method") or ("gptq" if ctx.get("calib_inputs") is not None else "rtn")
    if method not in WEIGHT_METHODS:
        raise QuantizationError(f"unknown weight method {method!r}; choose one of {', '.join(WEIGHT_METHODS)}")
    if method != "rtn" and ctx.get("calib_inputs") is None:
        raise QuantizationError(f"weight method {method!r} needs calibration data (--calib FILE.npz keyed by the "
                                "graph inputs); without it use rtn")
    return method


def _weight_only(g: Graph, ctx: PassContext, bits: int, name: str) -> Graph:
    from ..quant import awq
    from ..quant.gptq import gptq_grouped

    bits = check_bits(ctx.get("bits", bits))
    group = int(ctx.get("group_size", 128))
    if group <= 0:
        raise QuantizationError(f"group size {group} must be positive (32, 64, 128, ...)")
    method = weight_method(ctx)
    grid = awq.check_alpha_grid(ctx.get("awq_grid", awq.ALPHA_GRID))
    keep = list(ctx.get("keep_float") or [])
    targets = [n for n in g.nodes if _is_weight_dense(g, n) and not _matches(n, keep)]
    readers: dict[str, list[Node]] = {}  # dense input -> the targets reading it (they share one AWQ scale)
    for n in targets:
        readers.setdefault(n.inputs[0], []).append(n)
    moments = cal.collect_moments(g, ctx.get("calib_inputs"), readers) if method != "rtn" else {}
    unseen = [x for x in readers if method != "rtn" and x not in moments]
    if unseen:
        raise QuantizationError(f"node {readers[unseen[0]][0].name!r}: its input {unseen[0]!r} was not observed in "
                                "calibration")
    scales: dict[str, np.ndarray] = {}
    alphas: dict[str, float] = {}
    if method.startswith("awq"):
        for x, ns in readers.items():
            m = moments[x]
            weights = [g.constants[n.inputs[1]] for n in ns]
            s, alphas[x] = awq.search_scale(m.h, m.mean_abs, weights, bits, group, grid)
            if alphas[x] > 0:
                scales[x] = s
    b = _Builder(g)
    scaled_inputs: dict[str, str] = {}  # x -> x * (1 / s), one explicit Mul per scaled value
    n_q = 0
    tset = {id(n) for n in targets}
    for n in b.old:
        if id(n) not in tset:
            b.keep(n)
            continue
        x = n.inputs[0]
        w = g.constants[n.inputs[1]].astype(np.float32)
        s = scales.get(x)
        if s is not None:
            w = (w * s[:, None]).astype(np.float32)
            if x not in scaled_inputs:
                short = x.rsplit("/", 1)[-1]
                inv = g.add_constant(short + "_awq_inv_scale", (np.float32(1.0) / s).astype(np.float32))
                scaled_inputs[x] = b.add("Mul", [x, inv], {"awq": 1}, short + "_awq_scale")
        h = moments[x].h if x in moments else None
        if s is not None:
            h = awq.scaled_h(h, s)
        if method == "rtn":
            codes, scale, zero = weight_grouped(w, bits, group)
        elif method.endswith("gptq"):
            codes, scale, zero = gptq_grouped(w, h, bits, group, damp=float(ctx.get("gptq_damp", 0.1)),
                                              act_order=bool(ctx.get("gptq_act_order", True)))
        else:
            codes, scale, zero = weight_grouped_clip(w, bits, group, h)
        wname = g.add_constant(n.inputs[1] + f"_w{bits}", codes, DType.uint4 if bits <= 4 else None)
        ins = [scaled_inputs.get(x, x), wname, g.add_constant(n.inputs[1] + "_scale", scale),
               g.add_constant(n.inputs[1] + "_zero", zero)]
        if n.op == "dense" and n.input(2):
            ins.append(n.inputs[2])
        attrs = {"group_size": group, "bits": bits, "activation": n.attr("activation", "none"), "weight_name": n.inputs[1]}
        b.add("wdense", ins, attrs, n.name, out=n.outputs[0])
        n_q += 1
    g.metadata["quant"] = {"mode": f"w{bits}", "bits": bits, "group_size": group, "weight_method": method}
    ctx.stats[name] = {"wdense": n_q, "group_size": group, "weight_method": method, "awq_alpha": alphas}
    return g.remove_unused()


@graph_pass("quantize_w8")
def quantize_w8(g: Graph, ctx: PassContext) -> Graph:
    """Weight-only int8 (group-wise asymmetric, float activations): dense -> wdense."""
    return _weight_only(g, ctx, 8, "quantize_w8")


@graph_pass("quantize_w4")
def quantize_w4(g: Graph, ctx: PassContext) -> Graph:
    """Weight-only int4 (group-wise asymmetric, float activations): dense -> wdense."""
    return _weight_only(g, ctx, 4, "quantize_w4")


# ---- integer nonlinears -------------------------------------------------------------------------------

def _requant_attrs(acc_scale, out_scale, out_zp: int, bits: int) -> dict:
    """Requantization attrs; out_scale may be a vector along the last axis (a smoothed consumer's scale)."""
    out_scale = np.asarray(out_scale, np.float32)
    m, s = quantize_multiplier(np.asarray(acc_scale, np.float64) / out_scale.astype(np.float64))
    return {"multiplier": m, "shift": s, "out_zero_point": int(out_zp), "out_bits": bits, "out_dtype": f"int{bits}",
            "out_scale_q": float(out_scale) if out_scale.ndim == 0 else out_scale}


@graph_pass("integer_nonlinear", requires=("quantize_int8",))
def integer_nonlinear(g: Graph, ctx: PassContext) -> Graph:
    """Swap attention softmax / gelu / layer norm for I-BERT integer ops (qattention, int_gelu, int_layer_norm)."""
    meta = g.metadata.get("quant")
    if not meta or "ranges" not in meta:
        raise PassError("integer_nonlinear needs calibration ranges: run quantize_int8 first")
    rng = {k: tuple(v) for k, v in meta["ranges"].items()}
    which = set(ctx.get("integer_ops") or INTEGER_OPS)
    bad = which - set(INTEGER_OPS)
    if bad:
        raise QuantizationError(f"unknown integer_ops {sorted(bad)}; choose from {', '.join(INTEGER_OPS)}")
    keep = list(ctx.get("keep_float") or [])
    ln_bits = check_bits(ctx.get("ln_input_bits", 16), "ln_input_bits")
    prob_bits = check_bits(ctx.get("prob_bits", 8), "prob_bits")
    gelu_bits = check_bits(ctx.get("gelu_input_bits", 8), "gelu_input_bits")  # 16 overflows requantize (acc > int32)
    b = _Builder(g)

    def q(x: str, symmetric: bool, bits: int = 8) -> tuple[str, float, int]:
        s, zp = act_qparams(*rng[x], bits, symmetric)
        return b.add("quantize", [x], {"scale": s, "zero_point": zp, "bits": bits, "signed": 1},
                     x.rsplit("/", 1)[-1] + "_q"), s, zp

    def out(op: str, ins: list[str], attrs: dict, acc_scale, y: str, name: str) -> None:
        s, zp = act_qparams(*rng[y], 8)
        yq = b.add(op, ins, {**attrs, "acc_scale": acc_scale, **_requant_attrs(acc_scale, s, zp, 8)}, name)
        b.add("dequantize", [yq], {"scale": s, "zero_point": zp}, name + "_dq", out=y)

    counts = dict.fromkeys(("qattention", "int_gelu", "int_layer_norm"), 0)
    for n in b.old:
        known = all(i in rng for i in ([*n.inputs[:3]] if n.op == "attention" else n.inputs[:1])) and \
            all(o in rng for o in n.outputs if o)
        if not known or _matches(n, keep):
            b.keep(n)
        elif n.op == "attention" and "softmax" in which:
            (qq, sq, _), (kq, sk, _), (vq, sv, _) = (q(x, True) for x in n.inputs[:3])
            ss = float(sq) * float(sk) * float(n.attrs["scale"])
            e_ln2, e_b, e_c = exp_constants(ss)
            attrs = {"num_heads": n.attrs["num_heads"], "causal": n.attr("causal", 0), "score_scale": ss,
                     "softmax": "int", "exp_ln2": e_ln2, "exp_b": e_b, "exp_c": e_c, "prob_bits": prob_bits}
            ins = [qq, kq, vq] + ([n.inputs[3]] if n.input(3) else [])
            out("qattention", ins, attrs, np.float32(sv / (1 << prob_bits)), n.outputs[0], n.name)
            counts["qattention"] += 1
        elif n.op == "gelu" and "gelu" in which:
            xq, sx, _ = q(n.inputs[0], True, gelu_bits)
            b_int, one_int, acc_scale = gelu_constants(sx)
            out("int_gelu", [xq], {"b_int": b_int, "one_int": one_int}, np.float32(acc_scale), n.outputs[0], n.name)
            counts["int_gelu"] += 1
        elif n.op in ("layer_norm", "add_layer_norm") and "layer_norm" in which and n.attr("axis", -1) in (-1, len(g.types[n.inputs[0]].shape) - 1):
            x = n.inputs[0]
            gi = 2 if n.op == "add_layer_norm" else 1
            if n.op == "add_layer_norm":
                if not n.outputs[1] or n.outputs[1] not in rng:
                    b.keep(n)
                    continue
                x = b.add("Add", [n.inputs[0], n.inputs[1]], {}, n.name + "_residual", out=n.outputs[1])
            gamma = g.constants.get(n.inputs[gi])
            beta = g.constants.get(n.input(gi + 1)) if n.input(gi + 1) else np.zeros_like(gamma)
            if gamma is None or beta is None:
                raise QuantizationError(f"node {n.name!r} ({n.op}): gamma/beta must be constants for int_layer_norm")
            xq, sx, _ = q(x, True, ln_bits)
            c = gamma.shape[-1]
            frac = 14
            sg = max(float(np.abs(gamma).max()), 1e-12) / 32767
            gam = np.clip(np.rint(gamma / sg), -32767, 32767).astype(np.int32)
            unit = np.sqrt(c) * sg / (1 << frac)
            bet = np.clip(np.rint(beta / unit), INT32_MIN, INT32_MAX).astype(np.int32)
            eps = int(np.rint(c * float(n.attr("epsilon", 1e-5)) / (sx * sx)))
            out("int_layer_norm", [xq], {"gamma_int": gam, "beta_int": bet, "eps_int": eps, "frac_bits": frac},
                np.float32(unit), n.outputs[0], n.name)
            counts["int_layer_norm"] += 1
        else:
            b.keep(n)
    ctx.stats["integer_nonlinear"] = counts
    fold_requant(g)
    return g.remove_unused()


@graph_pass("fold_qdq")
def fold_qdq_pass(g: Graph, ctx: PassContext) -> Graph:
    """QDQ-wrapped MatMuls (QuantizeLinear -> DequantizeLinear -> dense by int8-grid weights) -> qdense."""
    from ..quant.fold import fold_qdq

    g, n = fold_qdq(g)
    ctx.stats["fold_qdq"] = {"qdense": n}
    return g


# ---- peephole rules ------------------------------------------------------------------------------------

def _same_q(a: Node, q: Node) -> bool:
    return (np.array_equal(np.asarray(a.attrs["scale"], np.float32), np.asarray(q.attrs["scale"], np.float32))
            and int(a.attr("zero_point", 0)) == int(q.attr("zero_point", 0)))


def fold_requant(g: Graph) -> Graph:
    """Peephole rules to a fixpoint:
    1. dequantize(v) -> quantize with the same scale/zero point (and v's bit width) => v.
    2. integer producer with out_dtype float32 whose only consumer is a signed quantize (8/16 bits), and
       no float activation => the producer requantizes (multiplier/shift from acc_scale / scale; a
       per-channel smoothing scale gives per-channel multipliers along the last axis).
    3. integer producer whose every consumer is a dequantize of its own parameters => float epilogue
       (out_scale = acc_scale), the dequantizes removed.
    """
    changed = True
    while changed:
        changed = False
        prod = g.producers()
        cons = g.consumers()
        for n in list(g.nodes):
            if n.op == "quantize":
                src = prod.get(n.inputs[0])
                if src is not None and src.op == "dequantize" and _same_q(src, n):
                    v = src.inputs[0]
                    if g.types[v].dtype == g.types[n.outputs[0]].dtype and n.outputs[0] not in g.outputs:
                        g.replace_uses(n.outputs[0], v)
                        changed = True
                        continue
                if (src is not None and src.op in _INT_PRODUCERS and src.attr("out_dtype") == "float32"
                        and src.attr("activation", "none") == "none" and len(cons.get(src.outputs[0], [])) == 1
                        and src.outputs[0] not in g.outputs and n.outputs[0] not in g.outputs
                        and n.attr("signed", 1) and int(n.attr("bits", 8)) in (8, 16)):
                    bits = int(n.attr("bits", 8))
                    src.attrs.update(_requant_attrs(src.attrs["acc_scale"], n.attrs["scale"],
                                                    int(n.attr("zero_point", 0)), bits))
                    src.attrs.pop("out_scale", None)
                    g.types[src.outputs[0]] = g.types[n.outputs[0]]
                    g.replace_uses(n.outputs[0], src.outputs[0])
                    g.nodes.remove(n)
                    changed = True
                    break
        if changed:
            g.remove_unused()
            continue
        cons = g.consumers()
        for n in g.nodes:
            if n.op not in _INT_PRODUCERS or n.attr("out_dtype") == "float32" or n.outputs[0] in g.outputs:
                continue
            users = cons.get(n.outputs[0], [])
            sq = n.attr("out_scale_q")
            if users and all(u.op == "dequantize" and np.array_equal(np.asarray(u.attrs["scale"], np.float32), np.float32(sq))
                             and int(u.attr("zero_point", 0)) == int(n.attr("out_zero_point", 0)) for u in users):
                for k in ("multiplier", "shift", "out_zero_point", "out_bits", "out_scale_q"):
                    n.attrs.pop(k, None)
                n.attrs.update({"out_dtype": "float32", "out_scale": n.attrs["acc_scale"]})
                y, old = users[0].outputs[0], n.outputs[0]  # the float value keeps its name (graph outputs too)
                for u in users:
                    g.nodes.remove(u)
                for u in users[1:]:
                    g.replace_uses(u.outputs[0], y)
                n.outputs[0] = y
                g.types.pop(old, None)
                changed = True
                break
        if changed:
            g.remove_unused()
    return g
