"""hwcomp IR -> TVM Relax (BlockBuilder).

hwcomp lowers its own fused graph; it never hands the ONNX file to TVM's importer. Every IR value becomes
a Relax variable; weights (constants with more than 64 elements) become function parameters (saved next
to the compiled library), small constants are inlined. Fused ops (`dense`, `attention`, `layer_norm`,
`add_layer_norm`, `gelu`) are emitted through :data:`FUSED_KERNELS` hooks, so a schedule in
``hwcomp.schedules`` can replace the default composition of Relax ops by its own PrimFunc.

``precision="fp16"`` computes floats in float16 (weights converted at compile time) with float32 for
softmax and layer-norm statistics and float32 graph outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from hwcomp.errors import BackendError
from hwcomp.ir import DType, Graph, Node

PARAM_MIN_ELEMENTS = 65

_BINARY = {"Add": "add", "Sub": "subtract", "Mul": "multiply", "Div": "divide", "Pow": "power",
           "Equal": "equal", "Less": "less", "Greater": "greater", "LessOrEqual": "less_equal",
           "GreaterOrEqual": "greater_equal", "And": "logical_and", "Or": "logical_or", "Max": "maximum",
           "Min": "minimum"}
_UNARY = {"Relu": ("nn", "relu"), "Tanh": ("", "tanh"), "Sigmoid": ("", "sigmoid"), "Erf": ("", "erf"),
          "Sqrt": ("", "sqrt"), "Exp": ("", "exp"), "Log": ("", "log"), "Neg": ("", "negative"),
          "Abs": ("", "abs"), "Not": ("", "logical_not"), "IsNaN": ("", "isnan"), "Floor": ("", "floor"),
          "Ceil": ("", "ceil"), "Reciprocal": None, "Identity": None}


@dataclass
class LoweredModel:
    mod: object  # tvm.IRModule
    param_names: list[str]
    params: dict[str, np.ndarray]
    input_names: list[str]
    output_names: list[str]
    kernel_sources: dict[str, str] = field(default_factory=dict)  # fused node name -> "hwcomp schedule"
    tuned_kernels: list[str] = field(default_factory=list)  # PrimFuncs scheduled from a tuning database
    # kernel name -> hwcomp's scheduled PrimFunc for the definition emitted under that name (scheduled_ops.py)
    kernel_schedules: dict[str, object] = field(default_factory=dict)
    graph: Graph | None = None  # the graph lowered: the input, after the GPU's own rewrites (fuse_qkv)


# Hooks: op name -> fn(ctx, node, args) -> relax expr(s). Schedules register here (see hwcomp.schedules).
FUSED_KERNELS: dict[str, Callable] = {}


class _Ctx:
    def __init__(self, bb, g: Graph, precision: str, target: str = "llvm", arch: str = "sm_90",
                 use_schedules: bool = True, exact_fp: bool = False):
        self.bb, self.g, self.precision = bb, g, precision
        self.target, self.arch, self.use_schedules = target, arch, use_schedules
        self.exact_fp = exact_fp  # quantize/dequantize float math through CUDA's IEEE __fdiv_rn/__fmul_rn
        self.env: dict[str, object] = {}
        self.kernel_sources: dict[str, str] = {}
        self.scheduled: dict[str, object] = {}  # kernel name -> GlobalVar of its definition (None: no schedule)
        self.kernel_schedules: dict[str, object] = {}  # kernel name -> hwcomp's scheduled PrimFunc
        self.padded: dict[str, int] = {}  # weight/bias param -> last-axis width it was zero-padded to
        self.transposed: dict[str, int] = {}  # fp16 (wgmma) dense / int8 qdense weight param -> N of its [N, K] (padded) layout
        self.repacked: set[str] = set()  # int4 wdense constants stored in the GEMV kernel's layout
        self.fused_away: set[str] = set()  # nodes a kernel of an earlier node computed (epilogue fusion)
        self.memo: dict[tuple, object] = {}  # values a lowering derives once per graph (e.g. the fp32 attention mask)
        self.in_place_splits: set[str] = set()  # Split nodes whose consumers read the unsplit tensor in place
        self._uses: dict[str, list[tuple[Node, int]]] | None = None
        self._producers: dict[str, Node] | None = None

    def uses(self, value: str) -> list[tuple[Node, int]]:
        """(node, input index) of every use of ``value`` in the graph."""
        if self._uses is None:
            self._uses = {}
            for n in self.g.nodes:
                for i, name in enumerate(n.inputs):
                    self._uses.setdefault(name, []).append((n, i))
        return list(self._uses.get(value, []))

    def producer(self, value: str) -> Node | None:
        if self._producers is None:
            self._producers = self.g.producers()
        return self._producers.get(value)

    def consumers(self, value: str) -> list[Node]:
        return [n for n, _ in self.uses(value)]

    def fdt(self, dt: DType) -> str:
        """The compute dtype for an IR dtype under this precision."""
        if dt.is_float:
            return "float16" if self.precision == "fp16" else "float32"
        return dt.value if dt is not DType.bool else "bool"

    def emit(self, expr):
        return self.bb.emit(expr)


def _np_const(ctx: _Ctx, arr: np.ndarray, dt: DType):
    from tvm import relax
    a = np.asarray(arr)
    if dt.is_float:
        a = _to_float(a, ctx.fdt(dt))
    elif dt is DType.bool:
        a = a.astype(bool)
    return relax.const(a, str(a.dtype))


def _wgmma_archs() -> tuple[str, ...]:
    from .startup import import_tensor_intrinsics
    import_tensor_intrinsics()  # before any schedules/ import: the plain import takes minutes (startup.py)
    from hwcomp.schedules.dense_wgmma import ARCHS
    return tuple(ARCHS)


def lower_to_relax(g: Graph, precision: str = "fp32", *, target: str = "llvm", arch: str = "sm_90",
                   use_schedules: bool = True, exact_fp: bool | None = None) -> LoweredModel:
    """``exact_fp`` (default: on for cuda): the float math of quantize/dequantize and of float epilogues of
    integer ops uses CUDA's IEEE-rounded ``__fdiv_rn``/``__fmul_rn``, which TVM's ``--use_fast_math`` build
    cannot approximate or contract into FMAs, so that int8 graphs give the interpreter's bits on the GPU."""
    import tvm
    from tvm import relax

    if precision not in ("fp32", "fp16"):
        raise BackendError(f"precision {precision!r} is not one of fp32, fp16")
    if target == "cuda" and precision == "fp16" and use_schedules:
        from hwcomp.passes import get_pass
        g = get_pass("fuse_qkv")(g)  # one QKV GEMM, whose output the flash attention kernel reads in place
    if target == "cuda" and use_schedules and any(n.op == "qattention" for n in g.nodes) and arch in _wgmma_archs():
        from hwcomp.passes import get_pass
        g = get_pass("fuse_qkv_int8")(g)  # likewise for the int8 wgmma GEMM and the one-kernel integer attention
    bb = relax.BlockBuilder()
    ctx = _Ctx(bb, g, precision, target, arch, use_schedules, target == "cuda" if exact_fp is None else exact_fp)
    inputs = [relax.Var(i, relax.TensorType(list(g.types[i].shape), g.types[i].dtype.value
                                            if not g.types[i].dtype.is_float else ctx.fdt(g.types[i].dtype)))
              for i in g.inputs]
    param_names = [k for k, v in g.constants.items() if v.size >= PARAM_MIN_ELEMENTS]
    params = {k: (_to_float(g.constants[k], ctx.fdt(g.types[k].dtype)) if g.types[k].dtype.is_float
                  else g.constants[k]) for k in param_names}
    for k, width in scheduled_ops.dense_weight_padding(ctx).items():  # e.g. a vocabulary-wide dense
        if k in params:
            ctx.padded[k] = width
            pad = [(0, 0)] * (params[k].ndim - 1) + [(0, width - params[k].shape[-1])]
            params[k] = np.pad(params[k], pad)
    if use_schedules:
        for k, fn in scheduled_ops.wdense_param_layouts(ctx).items():  # int4 GEMV: packed [N, K/2], [N, K/g]
            if k in params:
                ctx.repacked.add(k)
                params[k] = fn(g.constants[k])
        for k, width in {**scheduled_ops.dense_weight_layout(ctx),  # fp16 wgmma GEMM reads W as [N, K]
                         **scheduled_ops.qdense_weight_layout(ctx)}.items():  # int8 GEMM reads W as [N, K]
            if k in params:
                ctx.transposed[k] = width
                params[k] = np.ascontiguousarray(np.pad(params[k].T, [(0, width - params[k].shape[1]), (0, 0)]))
    pvars = [relax.Var(_safe(k), relax.TensorType(list(params[k].shape), str(params[k].dtype))) for k in param_names]
    with bb.function("main", inputs + pvars, attrs={"num_input": len(inputs)}):
        with bb.dataflow():
            for i, v in zip(g.inputs, inputs):
                ctx.env[i] = v
            for k, v in zip(param_names, pvars):
                ctx.env[k] = v
            for n in g.nodes:
                if n.name in ctx.fused_away:
                    continue
                outs = _lower_node(ctx, n)
                if not isinstance(outs, (list, tuple)):
                    outs = [outs]
                for o, e in zip(n.outputs, outs):
                    if o:
                        ctx.env[o] = e
            results = []
            for o in g.outputs:
                e = _value(ctx, o)
                t = g.types[o]
                if t.dtype.is_float and ctx.fdt(t.dtype) != "float32" and e.ty.dtype != "float32":
                    e = bb.emit(relax.op.astype(e, "float32"))
                results.append(e)
            out = bb.emit_output(relax.Tuple(results) if len(results) > 1 else results[0])
        bb.emit_func_output(out)
    mod = bb.get()
    return LoweredModel(mod, param_names, params, list(g.inputs), list(g.outputs), ctx.kernel_sources,
                        kernel_schedules=ctx.kernel_schedules, graph=g)


def _to_float(a: np.ndarray, dtype: str) -> np.ndarray:
    """Cast to the compute float type, saturating to its finite range (mask constants such as
    float32's lowest value must stay finite and very negative in float16, not become -inf)."""
    if dtype == "float16":
        fi = np.finfo(np.float16)
        return np.clip(a, fi.min, fi.max).astype(np.float16)
    return a.astype(dtype)


def _safe(name: str) -> str:
    return "p_" + "".join(c if c.isalnum() else "_" for c in name)


def _value(ctx: _Ctx, name: str):
    if name in ctx.env:
        return ctx.env[name]
    if name in ctx.g.constants:
        c = _np_const(ctx, ctx.g.constants[name], ctx.g.types[name].dtype)
        ctx.env[name] = c
        return c
    raise BackendError(f"value {name!r} used before definition in lowering")


def _ints(ctx: _Ctx, name: str) -> list[int]:
    c = ctx.g.constants.get(name)
    if c is None:
        raise BackendError(f"value {name!r} must be a compile-time constant for the GPU backend")
    return [int(x) for x in np.atleast_1d(c)]


def _lower_node(ctx: _Ctx, n: Node):
    from tvm import relax
    R = relax.op
    g, bb = ctx.g, ctx.bb
    args = [(_value(ctx, i) if i else None) for i in n.inputs]
    out_t = g.types[n.outputs[0]]
    if n.op in FUSED_KERNELS and ctx.use_schedules:
        r = FUSED_KERNELS[n.op](ctx, n, args)
        if r is not None:
            ctx.kernel_sources[n.name] = "hwcomp schedule"
            return r
    if n.op in _BINARY:
        a, b = args
        if n.op == "Pow" and n.inputs[1] in g.constants and float(g.constants[n.inputs[1]].reshape(-1)[0]) == 2.0:
            return bb.emit(R.multiply(a, a))
        return bb.emit(getattr(R, _BINARY[n.op])(a, b))
    if n.op in _UNARY:
        spec = _UNARY[n.op]
        if n.op == "Identity":
            return args[0]
        if n.op == "Reciprocal":
            return bb.emit(R.divide(_np_const(ctx, np.array(1.0, np.float32), out_t.dtype), args[0]))
        mod = getattr(R, spec[0]) if spec[0] else R
        return bb.emit(getattr(mod, spec[1])(args[0]))
    if n.op == "Cast":
        return bb.emit(R.astype(args[0], ctx.fdt(out_t.dtype)))
    if n.op in ("Reshape", "Flatten", "Unsqueeze", "Squeeze"):
        return bb.emit(R.reshape(args[0], list(out_t.shape)))
    if n.op == "Expand":
        return bb.emit(R.broadcast_to(args[0], list(out_t.shape)))
    if n.op == "Transpose":
        return bb.emit(R.permute_dims(args[0], n.attr("perm")))
    if n.op == "Where":
        return bb.emit(R.where(args[0], args[1], args[2]))
    if n.op == "Gather":
        idx = args[1]
        return bb.emit(R.take(args[0], idx, axis=n.attr("axis", 0)))
    if n.op == "GatherND":
        return bb.emit(R.gather_nd(args[0], args[1], batch_dims=n.attr("batch_dims", 0)))
    if n.op == "Concat":
        return bb.emit(R.concat([a for a in args], axis=n.attrs["axis"]))
    if n.op == "Split":
        axis = n.attr("axis", 0)
        sizes = [g.types[o].shape[axis] for o in n.outputs]
        idx = list(np.cumsum(sizes)[:-1])
        t = bb.emit(R.split(args[0], [int(i) for i in idx], axis=axis))
        return [bb.emit(relax.TupleGetItem(t, i)) for i in range(len(n.outputs))]
    if n.op == "Slice":
        starts, ends = _ints(ctx, n.inputs[1]), _ints(ctx, n.inputs[2])
        rank = g.types[n.inputs[0]].rank
        axes = _ints(ctx, n.inputs[3]) if n.input(3) else list(range(len(starts)))
        steps = _ints(ctx, n.inputs[4]) if n.input(4) else [1] * len(starts)
        axes = [a % rank for a in axes]
        return bb.emit(R.strided_slice(args[0], axes, starts, ends, steps))
    if n.op in ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"):
        axes = n.attr("axes")
        if axes is None and n.input(1):
            axes = _ints(ctx, n.inputs[1])
        f = {"ReduceMean": R.mean, "ReduceSum": R.sum, "ReduceMax": R.max, "ReduceMin": R.min}[n.op]
        return bb.emit(f(args[0], axis=list(axes) if axes is not None else None, keepdims=bool(n.attr("keepdims", 1))))
    if n.op == "ReduceL2":
        axes = n.attr("axes") or (_ints(ctx, n.inputs[1]) if n.input(1) else None)
        return bb.emit(R.sqrt(R.sum(R.multiply(args[0], args[0]), axis=axes, keepdims=bool(n.attr("keepdims", 1)))))
    if n.op == "Clip":
        lo = float(g.constants[n.inputs[1]]) if n.input(1) else -np.inf
        hi = float(g.constants[n.inputs[2]]) if n.input(2) else np.inf
        return bb.emit(R.clip(args[0], lo, hi))
    if n.op == "Softmax":
        return _softmax(ctx, args[0], n.attr("axis", -1))
    if n.op == "MatMul":
        return bb.emit(R.matmul(args[0], args[1]))
    if n.op == "dense":
        return dense_ops(ctx, n, args)
    if n.op == "gelu":
        return bb.emit(R.nn.gelu_tanh(args[0]) if n.attr("approximate", "none") == "tanh" else R.nn.gelu(args[0]))
    if n.op in ("layer_norm", "LayerNormalization"):
        return _layer_norm(ctx, args[0], args[1], args[2] if len(args) > 2 else None, n.attr("epsilon", 1e-5))
    if n.op == "add_layer_norm":
        s = bb.emit(R.add(args[0], args[1]))
        return [_layer_norm(ctx, s, args[2], args[3] if len(args) > 3 else None, n.attr("epsilon", 1e-5)), s]
    if n.op == "attention":
        return _attention(ctx, n, args)
    if n.op in _QUANT_LOWERINGS:
        return _QUANT_LOWERINGS[n.op](ctx, n, args)
    raise BackendError(f"the cuda backend cannot lower op {n.op!r} (node {n.name!r}); it lowers "
                       f"{', '.join(sorted(supported_ops()))}")


def supported_ops() -> set[str]:
    return set(_BINARY) | set(_UNARY) | {
        "Cast", "Reshape", "Flatten", "Unsqueeze", "Squeeze", "Expand", "Transpose", "Where", "Gather", "GatherND",
        "Concat", "Split", "Slice", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "Clip",
        "Softmax", "MatMul", "dense", "gelu", "layer_norm", "LayerNormalization", "add_layer_norm", "attention"
    } | set(_QUANT_LOWERINGS)


def _softmax(ctx: _Ctx, x, axis: int):
    from tvm import relax
    R = relax.op
    if ctx.precision == "fp16":
        return ctx.emit(R.astype(R.nn.softmax(R.astype(x, "float32"), axis=axis), "float16"))
    return ctx.emit(R.nn.softmax(x, axis=axis))


def _layer_norm(ctx: _Ctx, x, gamma, beta, eps: float):
    from tvm import relax
    R = relax.op
    if beta is None:  # beta defaults to zeros
        beta = R.zeros_like(gamma)
    if ctx.precision == "fp16":
        y = R.nn.layer_norm(R.astype(x, "float32"), R.astype(gamma, "float32"), R.astype(beta, "float32"),
                            axes=[-1], epsilon=float(eps))
        return ctx.emit(R.astype(y, "float16"))
    return ctx.emit(R.nn.layer_norm(x, gamma, beta, axes=[-1], epsilon=float(eps)))


def _activation(ctx: _Ctx, y, act: str):
    from tvm import relax
    R = relax.op
    if act == "none":
        return y
    f = {"gelu": R.nn.gelu, "gelu_tanh": R.nn.gelu_tanh, "relu": R.nn.relu, "tanh": R.tanh}[act]
    return ctx.emit(f(y))


def dense_ops(ctx: _Ctx, n: Node, args):
    """`dense` as Relax matmul [+ add] [+ activation] (dlight schedules it)."""
    from tvm import relax
    R = relax.op
    y = ctx.emit(R.matmul(args[0], args[1]))
    if len(args) > 2 and args[2] is not None:
        y = ctx.emit(R.add(y, args[2]))
    return _activation(ctx, y, n.attr("activation", "none"))


def _attention(ctx: _Ctx, n: Node, args):
    from tvm import relax
    R = relax.op
    g = ctx.g
    q, k, v = args[:3]
    mask = args[3] if len(args) > 3 else None
    h = int(n.attrs["num_heads"])
    b, sq, hd = g.types[n.inputs[0]].shape
    sk = g.types[n.inputs[1]].shape[1]
    dv = g.types[n.inputs[2]].shape[-1] // h
    d = hd // h
    qh = ctx.emit(R.permute_dims(R.reshape(q, [b, sq, h, d]), [0, 2, 1, 3]))
    kt = ctx.emit(R.permute_dims(R.reshape(k, [b, sk, h, d]), [0, 2, 3, 1]))
    vh = ctx.emit(R.permute_dims(R.reshape(v, [b, sk, h, dv]), [0, 2, 1, 3]))
    s = ctx.emit(R.matmul(qh, kt, out_dtype="float32"))
    s = ctx.emit(R.multiply(s, relax.const(np.float32(n.attrs["scale"]), "float32")))
    if mask is not None:
        s = ctx.emit(R.add(s, R.astype(mask, "float32")))
    if n.attr("causal", 0):
        tri = np.tril(np.ones((sq, sk), bool), sk - sq)
        s = ctx.emit(R.where(relax.const(tri, "bool"), s, relax.const(np.float32(-np.inf), "float32")))
    p = ctx.emit(R.nn.softmax(s, axis=-1))
    p = ctx.emit(R.astype(p, ctx.fdt(g.types[n.inputs[0]].dtype)))
    o = ctx.emit(R.matmul(p, vh))
    return ctx.emit(R.reshape(R.permute_dims(o, [0, 2, 1, 3]), [b, sq, h * dv]))


# ---- quantized ops (integer semantics exactly as hwcomp/ops/quantized.py and intmath.py) -------------------
def _c(arr, dtype: str):
    from tvm import relax
    return relax.const(np.asarray(arr).astype(dtype), dtype)


def _requantize(ctx: _Ctx, acc, multiplier, shift, zp: int, lo: int, hi: int, out_dtype: str):
    """((acc * m + 2^(s-1)) >> s) + zp, saturated: int64 arithmetic, arithmetic shift (floor)."""
    from tvm import relax
    R = relax.op
    m = np.asarray(multiplier, np.int64)
    s = np.asarray(shift, np.int64)
    a = R.astype(acc, "int64")
    y = R.right_shift(R.add(R.multiply(a, _c(m, "int64")), _c(np.left_shift(np.int64(1), s - 1), "int64")),
                      _c(s, "int64"))
    y = R.add(y, _c(zp, "int64"))
    y = R.minimum(R.maximum(y, _c(lo, "int64")), _c(hi, "int64"))
    return ctx.emit(R.astype(y, out_dtype))


def _qepilogue(ctx: _Ctx, n: Node, acc):
    from tvm import relax
    R = relax.op
    if n.attr("out_dtype", "int8") == "float32":
        y = _exact(ctx, "__fmul_rn", ctx.emit(R.astype(acc, "float32")), n.attrs["out_scale"])
        y = _activation(ctx, y, n.attr("activation", "none"))
        return ctx.emit(R.astype(y, ctx.fdt(DType.float32))) if ctx.precision == "fp16" else y
    bits = int(n.attr("out_bits", 8))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    zp = int(n.attr("out_zero_point", 0))
    out_dtype = ctx.g.types[n.outputs[0]].dtype.value
    y = _requantize(ctx, acc, n.attrs["multiplier"], n.attrs["shift"], zp, lo, hi, out_dtype)
    if n.attr("activation", "none") == "relu":
        y = ctx.emit(R.maximum(y, _c(zp, out_dtype)))
    return y


def _exact(ctx: _Ctx, intrin: str, x, c):
    """float32 ``x <op> c`` (c a scalar or a vector along the last axis) through the CUDA intrinsic ``intrin``
    (``__fdiv_rn`` / ``__fmul_rn``) when ``ctx.exact_fp``, else the Relax op."""
    from tvm import relax, te, tirx
    R = relax.op
    c = np.asarray(c, np.float32)
    if not ctx.exact_fp:
        return ctx.emit((R.divide if intrin == "__fdiv_rn" else R.multiply)(x, _c(c, "float32")))
    op = intrin.strip("_")  # fdiv_rn / fmul_rn: also the PrimFunc's (and the CUDA kernel's) name

    def by_scalar(x_te):
        return te.compute(x_te.shape, lambda *i: tirx.call_pure_extern(
            "float32", intrin, x_te(*i), tirx.const(float(c), "float32")), name=op)

    def by_channel(x_te, c_te):
        return te.compute(x_te.shape, lambda *i: tirx.call_pure_extern(
            "float32", intrin, x_te(*i), c_te[i[-1]]), name=op)

    by_scalar.__name__ = by_channel.__name__ = op
    if c.ndim == 0:
        return ctx.bb.emit_te(by_scalar, x, primfunc_name_hint=op)
    return ctx.bb.emit_te(by_channel, x, _c(c.reshape(-1), "float32"), primfunc_name_hint=op)


def _lower_quantize(ctx: _Ctx, n: Node, args):
    from tvm import relax
    R = relax.op
    bits, signed = int(n.attr("bits", 8)), bool(n.attr("signed", 1))
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    x = ctx.emit(R.astype(args[0], "float32"))
    q = R.add(R.round(_exact(ctx, "__fdiv_rn", x, n.attrs["scale"])), _c(float(n.attr("zero_point", 0)), "float32"))
    q = R.minimum(R.maximum(q, _c(float(lo), "float32")), _c(float(hi), "float32"))
    return ctx.emit(R.astype(q, ctx.g.types[n.outputs[0]].dtype.value))


def _lower_dequantize(ctx: _Ctx, n: Node, args):
    from tvm import relax
    R = relax.op
    d = ctx.emit(R.astype(R.subtract(R.astype(args[0], "int64"), _c(int(n.attr("zero_point", 0)), "int64")),
                          "float32"))
    y = _exact(ctx, "__fmul_rn", d, n.attrs["scale"])
    return ctx.emit(R.astype(y, ctx.fdt(DType.float32))) if ctx.precision == "fp16" else y


def _lower_qdense(ctx: _Ctx, n: Node, args):
    from tvm import relax
    R = relax.op
    x, w = args[0], args[1]
    xz = int(n.attr("x_zero_point", 0))
    if xz:
        x = ctx.emit(R.subtract(R.astype(x, "int32"), _c(xz, "int32")))
        w = ctx.emit(R.astype(w, "int32"))
    acc = ctx.emit(R.matmul(x, w, out_dtype="int32"))
    if len(args) > 2 and args[2] is not None:
        acc = ctx.emit(R.add(acc, args[2]))  # int32 wrap-around, like the accumulator
    return _qepilogue(ctx, n, acc)


def _lower_wdense(ctx: _Ctx, n: Node, args):
    from tvm import relax
    R = relax.op
    x, wq, scale, zero = args[:4]
    k = ctx.g.types[n.inputs[1]].shape[0]
    idx = _c(np.arange(k) // int(n.attrs["group_size"]), "int32")
    fdt = "float16" if ctx.precision == "fp16" else "float32"
    w = R.multiply(R.astype(R.subtract(R.astype(wq, "int32"), R.astype(R.take(zero, idx, axis=0), "int32")), fdt),
                   R.astype(R.take(scale, idx, axis=0), fdt))
    y = ctx.emit(R.matmul(R.astype(x, fdt), w))
    if len(args) > 4 and args[4] is not None:
        y = ctx.emit(R.add(y, R.astype(args[4], fdt)))
    return _activation(ctx, y, n.attr("activation", "none"))


def _i64(x):
    from tvm import relax
    return relax.op.astype(x, "int64")


def _i_exp(ctx: _Ctx, x, ln2: int, b: int, c: int, max_shift: int = 30):
    """intmath.i_exp: x <= 0 int64 -> max(r*(r+b)+c, 0) >> z, z = floor(x/ln2), r = x - z*ln2."""
    from tvm import relax
    R = relax.op
    x = R.maximum(x, _c(max_shift * ln2, "int64"))
    z = ctx.emit(R.floor_divide(x, _c(ln2, "int64")))
    r = ctx.emit(R.subtract(x, R.multiply(z, _c(ln2, "int64"))))
    poly = R.add(R.multiply(r, R.add(r, _c(b, "int64"))), _c(c, "int64"))
    return ctx.emit(R.right_shift(R.maximum(poly, _c(0, "int64")), z))


def _int_softmax(ctx: _Ctx, x, ln2: int, b: int, c: int, pb: int):
    """intmath.int_softmax over the last axis (int64 in, int64 probabilities in units 2^-pb out)."""
    from tvm import relax
    R = relax.op
    x = ctx.emit(R.subtract(x, R.max(x, axis=[-1], keepdims=True)))
    e = _i_exp(ctx, x, ln2, b, c)
    s = ctx.emit(R.maximum(R.sum(e, axis=[-1], keepdims=True), _c(1, "int64")))
    factor = ctx.emit(R.floor_divide(_c(np.int64(1) << np.int64(62), "int64"), s))
    p = R.right_shift(R.multiply(e, factor), _c(62 - pb, "int64"))
    return ctx.emit(R.minimum(p, _c((1 << pb) - 1, "int64")))


def _lower_int_softmax(ctx: _Ctx, n: Node, args):
    from tvm import relax
    pb = int(n.attr("prob_bits", 8))
    p = _int_softmax(ctx, _i64(args[0]), int(n.attrs["exp_ln2"]), int(n.attrs["exp_b"]), int(n.attrs["exp_c"]), pb)
    return ctx.emit(relax.op.astype(p, "uint16" if pb > 8 else "uint8"))


def _lower_int_gelu(ctx: _Ctx, n: Node, args):
    """intmath.int_gelu: x*(sign(x)*(one - (min(|x|,b)-b)^2) + one), then the epilogue."""
    from tvm import relax
    R = relax.op
    fused = _int_gelu_requant(ctx, n, args)
    if fused is not None:
        return fused
    x = ctx.emit(_i64(args[0]))
    b, one = int(n.attrs["b_int"]), int(n.attrs["one_int"])
    t = ctx.emit(R.subtract(R.minimum(R.abs(x), _c(b, "int64")), _c(b, "int64")))
    erf = R.multiply(R.sign(x), R.subtract(_c(one, "int64"), R.multiply(t, t)))
    acc = ctx.emit(R.multiply(x, R.add(erf, _c(one, "int64"))))
    return _qepilogue(ctx, n, acc)


def int_gelu_plan(ctx: _Ctx, n: Node):
    """i-GELU and its requantization as one elementwise computation in the narrowest exact integer types: where
    |x| <= 2^(bits-1) bounds the accumulator below 2^31 it is computed in int32, and the requantization
    multiplies it by the int32 multiplier into int64 (one widening multiply). The generic lowering's int64
    arithmetic took 55 us per BERT-base batch-32 layer on an H100. Same integers as intmath.int_gelu and
    intmath.requantize. Returns ``(compute, multiplier, shift, shift_dtype)`` -- ``compute(x, m, s)`` builds
    the TE tensor from the input and the per-channel int32 multiplier and shift tensors -- or ``None``
    (generic lowering) for a float32 epilogue or bounds that need int64."""
    from tvm import te, tirx

    from hwcomp.schedules.qdense import requantize_expr

    in_dt = ctx.g.types[n.inputs[0]].dtype
    if n.attr("out_dtype", "int8") == "float32" or in_dt not in (DType.int8, DType.int16) \
            or n.attr("activation", "none") != "none":
        return None
    b, one = int(n.attrs["b_int"]), int(n.attrs["one_int"])
    x_max = 1 << (in_dt.bits - 1)
    mult = np.asarray(n.attrs["multiplier"], np.int64)
    shift = np.asarray(n.attrs["shift"], np.int64)
    if x_max * (2 * one + b * b) >= 2**31 or mult.max(initial=0) >= 2**31 or mult.min(initial=0) < -2**31 \
            or shift.min(initial=1) < 1:
        return None
    channels = int(ctx.g.types[n.inputs[0]].shape[-1])
    mult = np.broadcast_to(mult, (channels,)).astype(np.int32)
    shift = np.broadcast_to(shift, (channels,))
    bits = int(n.attr("out_bits", 8))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    zp = int(n.attr("out_zero_point", 0))
    out_dtype = ctx.g.types[n.outputs[0]].dtype.value
    i32, i64 = "int32", "int64"

    # Shifts of 33..62 (the usual case: the i-GELU accumulator's unit is tiny): only the high word of acc*m
    # matters. With P = acc*m = hi*2^32 + lo (0 <= lo < 2^32) and s' = s - 32 >= 1,
    # (P + 2^(s-1)) >> s = (hi + 2^(s'-1)) >> s' exactly (lo/2^32 < 1 cannot carry past an integer), so the
    # rounding, shift and clamp run in int32 (|hi| < 2^30).
    high_word = shift.min() >= 33 and shift.max() <= 62
    s_arg = shift - 32 if high_word else shift
    s_dtype = i32 if high_word else i64

    def int_gelu(x_te, m_te, s_te):
        def f(*i):
            x = x_te(*i).astype(i32)
            t = tirx.min(tirx.abs(x), b) - b
            sign = tirx.Select(x > 0, tirx.const(1, i32), tirx.Select(x < 0, tirx.const(-1, i32), tirx.const(0, i32)))
            acc = x * (sign * (one - t * t) + one)
            c = i[-1]
            if not high_word:
                return requantize_expr(acc, m_te[c], s_te[c], zp, lo, hi, out_dtype)
            top = tirx.shift_right(acc.astype(i64) * m_te[c].astype(i64), tirx.const(32, i64)).astype(i32)
            y = tirx.shift_right(top + tirx.shift_left(tirx.const(1, i32), s_te[c] - 1), s_te[c]) + zp
            return tirx.min(tirx.max(y, tirx.const(lo, i32)), tirx.const(hi, i32)).astype(out_dtype)
        return te.compute(x_te.shape, f, name="int_gelu")

    return int_gelu, mult, s_arg.astype(s_dtype), s_dtype


def _int_gelu_requant(ctx: _Ctx, n: Node, args):
    """:func:`int_gelu_plan` as one elementwise Relax function (``None``: not applicable)."""
    plan = int_gelu_plan(ctx, n)
    if plan is None:
        return None
    compute, mult, shift, s_dtype = plan
    return ctx.bb.emit_te(compute, args[0], _c(mult, "int32"), _c(shift, s_dtype), primfunc_name_hint="int_gelu")


def _isqrt(ctx: _Ctx, v):
    """intmath.isqrt (floor(sqrt(v)), int64 v in [0, 2^62)): the integer layer-norm kernel's expression
    (float64 sqrt, one correction step each way), as an elementwise PrimFunc."""
    from tvm import te

    from hwcomp.schedules.layer_norm import _isqrt64

    def isqrt(v_te):
        return te.compute(v_te.shape, lambda *i: _isqrt64(v_te(*i)), name="isqrt")

    return ctx.bb.emit_te(isqrt, v, primfunc_name_hint="isqrt")


def _lower_int_layer_norm(ctx: _Ctx, n: Node, args):
    from tvm import relax
    R = relax.op
    x = ctx.emit(_i64(args[0]))
    c = ctx.g.types[n.inputs[0]].shape[-1]
    fb = int(n.attr("frac_bits", 14))
    mean = R.floor_divide(R.sum(x, axis=[-1], keepdims=True), _c(c, "int64"))
    y = ctx.emit(R.subtract(x, mean))
    var = ctx.emit(R.add(R.sum(R.multiply(y, y), axis=[-1], keepdims=True), _c(int(n.attrs["eps_int"]), "int64")))
    std = ctx.emit(R.maximum(_isqrt(ctx, var), _c(1, "int64")))
    factor = R.floor_divide(_c(np.int64(1) << np.int64(31), "int64"), std)
    z = R.right_shift(R.multiply(y, factor), _c(31 - fb, "int64"))
    acc = ctx.emit(R.add(R.multiply(z, _c(n.attrs["gamma_int"], "int64")), _c(n.attrs["beta_int"], "int64")))
    return _qepilogue(ctx, n, acc)


def _lower_qattention(ctx: _Ctx, n: Node, args):
    from tvm import relax
    R = relax.op
    g = ctx.g
    q, k, v = args[:3]
    mask = args[3] if len(args) > 3 else None
    h = int(n.attrs["num_heads"])
    ss = float(n.attrs["score_scale"])
    pb = int(n.attr("prob_bits", 8))
    b, sq, hd = g.types[n.inputs[0]].shape
    sk = g.types[n.inputs[1]].shape[1]
    d, dv = hd // h, g.types[n.inputs[2]].shape[-1] // h
    qh = R.permute_dims(R.reshape(q, [b, sq, h, d]), [0, 2, 1, 3])
    kt = R.permute_dims(R.reshape(k, [b, sk, h, d]), [0, 2, 3, 1])
    acc = ctx.emit(_i64(R.matmul(qh, kt, out_dtype="int32")))
    if mask is not None:
        m = R.round(R.divide(R.astype(mask, "float64"), _c(ss, "float64")))
        m = R.minimum(R.maximum(m, _c(-(2.0 ** 30), "float64")), _c(2.0 ** 30, "float64"))
        acc = ctx.emit(R.add(acc, R.astype(m, "int64")))
    if n.attr("causal", 0):
        tri = np.tril(np.ones((sq, sk), bool), sk - sq)
        acc = ctx.emit(R.where(relax.const(tri, "bool"), acc, _c(-(1 << 30), "int64")))
    if n.attr("softmax", "int") == "int":
        p = _int_softmax(ctx, acc, int(n.attrs["exp_ln2"]), int(n.attrs["exp_b"]), int(n.attrs["exp_c"]), pb)
    else:
        pf = R.nn.softmax(R.astype(R.multiply(R.astype(acc, "float64"), _c(ss, "float64")), "float32"), axis=-1)
        p = R.minimum(R.maximum(R.round(R.multiply(pf, _c(float(1 << pb), "float32"))), _c(0.0, "float32")),
                      _c(float((1 << pb) - 1), "float32"))
        p = ctx.emit(R.astype(p, "int64"))
    vh = R.astype(R.permute_dims(R.reshape(v, [b, sk, h, dv]), [0, 2, 1, 3]), "int32")
    acc2 = ctx.emit(R.matmul(R.astype(p, "int32"), vh, out_dtype="int32"))
    acc2 = ctx.emit(R.reshape(R.permute_dims(acc2, [0, 2, 1, 3]), [b, sq, h * dv]))
    return _qepilogue(ctx, n, acc2)


_QUANT_LOWERINGS: dict[str, Callable] = {"quantize": _lower_quantize, "dequantize": _lower_dequantize,
                                          "qdense": _lower_qdense, "wdense": _lower_wdense,
                                          "int_softmax": _lower_int_softmax, "int_gelu": _lower_int_gelu,
                                          "int_layer_norm": _lower_int_layer_norm, "qattention": _lower_qattention}


from . import scheduled_ops  # noqa: E402,F401  (registers the FUSED_KERNELS hooks)
