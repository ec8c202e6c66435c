"""hwcomp's fused ops as TensorIR kernels on CUDA (fp16): `dense`, `attention`, `layer_norm`, `add_layer_norm`.

Each fused node becomes ``call_tir`` of a *kernel*: a PrimFunc holding the op's definition (unscheduled, as
``hwcomp.schedules`` writes it) marked ``hwcomp.kernel=<name>`` and opaque to Relax's operator fusion, plus
hwcomp's schedule of it, prepared at lowering time (a shape a schedule does not cover falls back to the default
Relax lowering of the op, which dlight schedules). The compile step then picks, per kernel:

1. the best record of a MetaSchedule tuning database for that definition (``--tuning-db``);
2. else hwcomp's schedule (:func:`apply_hwcomp_schedules`).

``hwcomp tune`` lowers the same way and tunes the definitions themselves, so the database's workloads are
exactly the kernels ``compile`` looks up.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Callable

import numpy as np

from hwcomp.errors import BackendError

from . import relax_lowering
from .relax_lowering import FUSED_KERNELS, _Ctx

log = logging.getLogger(__name__)

KERNEL_ATTR = "hwcomp.kernel"
SCHEDULE_SOURCE_ATTR = "hwcomp.schedule_source"
_OPAQUE = 8  # relax OpPatternKind.kOpaque: FuseOps leaves the call alone


def _applies(ctx: _Ctx) -> bool:
    return ctx.target == "cuda" and ctx.precision == "fp16"


def _schedules():
    from .startup import import_tensor_intrinsics
    import_tensor_intrinsics()  # minutes -> seconds on a loaded machine (see startup.py)
    import hwcomp.schedules.attention
    import hwcomp.schedules.dense
    import hwcomp.schedules.dense_wgmma
    import hwcomp.schedules.flash_attention
    import hwcomp.schedules.layer_norm  # noqa: F401
    return hwcomp.schedules


def _kernel(ctx: _Ctx, name: str, make: Callable[[], tuple[object, object]]):
    """GlobalVar of kernel ``name`` (definition added to the module once, its schedule remembered), or None
    when hwcomp has no schedule for this shape."""
    name = re.sub(r"[^0-9A-Za-z_]", "_", name)  # a C identifier: it names the CUDA kernel
    if name in ctx.scheduled:
        return ctx.scheduled[name]
    try:
        definition, scheduled = make()
    except Exception as e:  # noqa: BLE001 - a shape the schedule does not cover: default lowering instead
        log.info("kernel %s: hwcomp schedule not applicable (%s); default lowering", name, e)
        ctx.scheduled[name] = None
        return None
    definition = (definition.with_attr("global_symbol", name).with_attr(KERNEL_ATTR, name)
                  .with_attr("op_pattern", _OPAQUE))
    gv = ctx.bb.add_func(definition, name)
    ctx.scheduled[name] = gv
    # opaque to FuseOps like its definition: a scheduled kernel is never merged with its neighbours
    ctx.kernel_schedules[name] = (scheduled.with_attr("global_symbol", name).with_attr(KERNEL_ATTR, name)
                                  .with_attr("op_pattern", _OPAQUE))
    return gv


def _kernel_set(ctx: _Ctx, names: dict[str, str], make_all: Callable[[], tuple[dict, object]]):
    """GlobalVars of kernels defined and scheduled together (attention's scores/softmax/pv): ``names`` maps each
    part to its kernel name, ``make_all()`` returns (part -> definition, object with a scheduled PrimFunc per
    part as attribute) and runs at most once. None when any part is not covered."""
    made = functools.cache(make_all)
    gvs = {part: _kernel(ctx, name, lambda part=part: (made()[0][part], getattr(made()[1], part)))
           for part, name in names.items()}
    return None if any(v is None for v in gvs.values()) else gvs


def _reshape(ctx: _Ctx, x, shape):
    """``reshape(x, shape)`` without reshape chains: a value that is itself a reshape of a tensor already of
    ``shape`` (one kernel's output feeding the next) is unwrapped, and a no-op reshape is dropped."""
    from tvm import relax
    shape = [int(d) for d in shape]

    def dims(e):
        return [int(d) for d in e.ty.shape]

    if dims(x) == shape:
        return x
    bound = ctx.bb.lookup_binding(x) if isinstance(x, relax.Var) else None
    if isinstance(bound, relax.Call) and bound.op.name == "relax.reshape" and dims(bound.args[0]) == shape:
        return bound.args[0]
    return ctx.emit(relax.op.reshape(x, shape))


def _call(ctx: _Ctx, gv, args, shape, dtype="float16"):
    """``call_tir`` of a kernel with one output of ``shape``/``dtype``; ``dtype`` a tuple: one output of ``shape``
    per dtype, the values returned as a list."""
    from tvm import relax
    if isinstance(dtype, tuple):
        t = ctx.emit(relax.call_tir(gv, args, [relax.TensorType(list(shape), d) for d in dtype]))
        return [ctx.emit(relax.TupleGetItem(t, i)) for i in range(len(dtype))]
    return ctx.emit(relax.call_tir(gv, args, relax.TensorType(list(shape), dtype)))


DENSE_N_ALIGN = 128  # output width a dense kernel wants; wider odd widths (vocabularies) are padded to it


def dense_weight_padding(ctx: _Ctx) -> dict[str, int]:
    """Dense weights (and biases) whose output width N is not a multiple of :data:`DENSE_N_ALIGN`, e.g. GPT-2's
    50257-word LM head: zero-padded at compile time so that the tensor-core kernel applies; the padded
    columns are sliced off its output. Only constants used by nothing but dense nodes are padded."""
    if not _applies(ctx):
        return {}
    g = ctx.g
    out = {}
    for n in g.nodes:
        if n.op != "dense" or n.inputs[1] not in g.constants:
            continue
        width = int(g.types[n.inputs[1]].shape[-1])
        if width % DENSE_N_ALIGN == 0 or width < DENSE_N_ALIGN:
            continue
        padded = -(-width // DENSE_N_ALIGN) * DENSE_N_ALIGN
        for i, name in enumerate(n.inputs[1:3], start=1):
            if name and name in g.constants and all((u.op, j) == ("dense", i) for u, j in ctx.uses(name)):
                out[name] = padded
    return out


def _dense_shape(ctx: _Ctx, n) -> tuple[int, int, int]:
    """(M, N as computed (padded), K) of fp16 ``dense`` node ``n``."""
    g = ctx.g
    k, nn = (int(d) for d in g.types[n.inputs[1]].shape)
    return int(np.prod(g.types[n.inputs[0]].shape[:-1])), ctx.padded.get(n.inputs[1], nn), k


def _dense_wgmma_ok(ctx: _Ctx, n) -> bool:
    """Whether fp16 ``dense`` node ``n`` runs as the Hopper wgmma GEMM (schedules/dense_wgmma.py): sm_90, a
    constant weight, and a shape whose tiles fill the GPU (batch 32; batch-1 GEMMs keep mma.sync)."""
    if not _applies(ctx) or not ctx.use_schedules or n.op != "dense" or n.inputs[1] not in ctx.g.constants:
        return False
    dense_wgmma = _schedules().dense_wgmma  # (through _schedules: TVM's tensor intrinsics import fast there)
    if ctx.arch not in dense_wgmma.ARCHS or n.attr("activation", "none") not in dense_wgmma.ACTIVATIONS:
        return False
    return not _bias_unpadded(ctx, n) and dense_wgmma.applicable(*_dense_shape(ctx, n))


def _bias_unpadded(ctx: _Ctx, n) -> bool:
    """Dense node ``n``'s weight was zero-padded wider but its bias was not (the bias is shared elsewhere)."""
    nn = int(ctx.g.types[n.inputs[1]].shape[1])
    return bool(n.input(2)) and ctx.padded.get(n.inputs[2], nn) != ctx.padded.get(n.inputs[1], nn)


def dense_weight_layout(ctx: _Ctx) -> dict[str, int]:
    """fp16 ``dense`` weights the wgmma GEMM reads as ``[N, K]`` (K-major, as wgmma's shared-memory descriptors
    want both operands): weight name -> (padded) N. The lowering transposes these constants once, at compile
    time; only weights used by nothing but wgmma-covered dense nodes are listed."""
    out = {}
    for n in ctx.g.nodes:
        if n.op != "dense" or not _dense_wgmma_ok(ctx, n):
            continue
        name = n.inputs[1]
        if all(u.op == "dense" and i == 1 and _dense_wgmma_ok(ctx, u) for u, i in ctx.uses(name)):
            out[name] = _dense_shape(ctx, n)[1]
    return out


def dense_kernel(ctx: _Ctx, n, args):
    """``dense`` fp16: hwcomp's tensor-core GEMM with fused bias + activation: wgmma on sm_90 where the weight is
    stored ``[N, K]`` (schedules/dense_wgmma.py), else mma.sync (schedules/dense.py), split-K for long K with
    few output tiles."""
    if not _applies(ctx):
        return None
    from tvm import relax
    g = ctx.g
    xs = g.types[n.inputs[0]].shape
    nn = int(g.types[n.inputs[1]].shape[1])
    m, width, k = _dense_shape(ctx, n)
    has_bias = len(args) > 2 and args[2] is not None
    if _bias_unpadded(ctx, n):
        return None  # the default lowering
    act = n.attr("activation", "none")
    bias = [args[2]] if has_bias else []

    if n.inputs[1] in ctx.transposed:  # [N, K]: only the wgmma kernel reads it (dense_weight_layout)
        # a graph output read by nothing else (an LM head's logits) is written as the fp32 output, unpadded
        n_out = nn if n.outputs[0] in g.outputs and not ctx.uses(n.outputs[0]) else None

        def make_wgmma():
            dw = _schedules().dense_wgmma
            lead = tuple(int(d) for d in xs[:-1]) if n_out else None
            return (dw.dense_f16_nk_func(m, width, k, act, has_bias, n_out, lead),
                    dw.dense_f16_wgmma(m, width, k, act, has_bias, n_out=n_out, lead=lead))

        tag = f"{'_b' if has_bias else ''}{f'_f32out{n_out}' if n_out else ''}"
        gv = _kernel(ctx, f"dense_f16_wgmma_{m}x{width}x{k}_{act}{tag}", make_wgmma)
        if gv is None:
            raise BackendError(f"dense {n.name}: its weight was laid out for the wgmma kernel, which then "
                               "failed to schedule; compile with --arch sm_80 to use the mma.sync kernels")
        x2 = _reshape(ctx, args[0], [m, k])
        if n_out:  # in the graph output's shape: a reshape of the function's result is a copy kernel
            return _call(ctx, gv, [x2, args[1]] + bias, list(xs[:-1]) + [nn], "float32")
        y = _call(ctx, gv, [x2, args[1]] + bias, [m, width])
    else:
        from hwcomp.schedules.dense import splitk_factor
        splits = splitk_factor(m, width, k)
        y = _dense_splitk(ctx, args, m, width, k, splits, act, has_bias) if splits > 1 else None
    if y is None:
        def make():
            s = _schedules()
            return (s.dense.dense_f16_func(m, width, k, act, has_bias),
                    s.dense.dense_f16(m, width, k, act, has_bias, ctx.arch))

        gv = _kernel(ctx, f"dense_f16_{m}x{width}x{k}_{act}{'_b' if has_bias else ''}", make)
        if gv is None:
            if width == nn:
                return None
            unpadded = [ctx.emit(relax.op.strided_slice(a, [a.ty.ndim - 1], [0], [nn]))
                        for a in args[1:3] if a is not None]
            return relax_lowering.dense_ops(ctx, n, [args[0]] + unpadded)
        y = _call(ctx, gv, [_reshape(ctx, args[0], [m, k]), args[1]] + bias, [m, width])
    if width != nn:
        y = ctx.emit(relax.op.strided_slice(y, [1], [0], [nn]))
    return _reshape(ctx, y, list(xs[:-1]) + [nn])


def _dense_splitk(ctx: _Ctx, args, m: int, n: int, k: int, splits: int, act: str, has_bias: bool):
    """Split-K ``dense``: the partial GEMMs (fp32 ``[splits, M, N]``), then the sum with bias and activation;
    None when not covered."""
    from types import SimpleNamespace
    name = f"dense_f16_{m}x{n}x{k}_{act}{'_b' if has_bias else ''}_split{splits}"

    def make_all():
        s = _schedules()
        defs = s.dense.dense_f16_splitk_funcs(m, n, k, splits, act, has_bias)
        scheduled = s.dense.dense_f16_splitk(m, n, k, splits, act, has_bias)
        return dict(zip(("partial", "reduce"), defs)), SimpleNamespace(partial=scheduled[0], reduce=scheduled[1])

    gvs = _kernel_set(ctx, {"partial": name + "_partial", "reduce": name + "_reduce"}, make_all)
    if gvs is None:
        return None
    part = _call(ctx, gvs["partial"], [_reshape(ctx, args[0], [m, k]), args[1]], [splits, m, n], "float32")
    return _call(ctx, gvs["reduce"], [part] + ([args[2]] if has_bias else []), [m, n])


def _attention_shape(ctx: _Ctx, n) -> tuple[int, int, int, int, int] | None:
    """(B, Sq, Sk, H, D) of an ``attention`` node whose q/k/v are ``[B, S, H*D]``, else None."""
    g = ctx.g
    h = int(n.attrs["num_heads"])
    shapes = [tuple(int(d) for d in g.types[v].shape) for v in n.inputs[:3]]
    if any(len(sh) != 3 for sh in shapes) or shapes[0][2] != shapes[1][2] or shapes[2][2] != shapes[0][2]:
        return None
    b, s_q, hd = shapes[0]
    if hd % h or shapes[1][0] != b or shapes[1][1] != shapes[2][1]:
        return None
    return b, s_q, shapes[1][1], h, hd // h


def _arch_number(ctx: _Ctx) -> int:
    return int(re.sub(r"\D", "", ctx.arch) or 0)


def _flash_ok(ctx: _Ctx, n) -> bool:
    """Whether ``attention`` node ``n`` runs as the single flash-attention kernel (mma.sync, cp.async: sm_80+)."""
    if not _applies(ctx) or n.op != "attention" or _arch_number(ctx) < 80:
        return False
    shape = _attention_shape(ctx, n)
    if shape is None:
        return False
    b, s_q, s_k, _, d = shape
    if not _schedules().flash_attention.applicable(s_q, s_k, d):  # (TVM's tensor intrinsics import fast there)
        return False
    return len(n.inputs) < 4 or not n.input(3) or _mask_shape(ctx, n.inputs[3], b, s_q, s_k) is not None


def _qkv_split(ctx: _Ctx, n):
    """The ``Split`` whose three outputs, in order, are q, k, v of attention ``n`` (the fused QKV projection of
    fuse_qkv, or GPT-2's own), splitting the last axis of ``[B, S, 3*H*D]`` into equal parts; else None."""
    g = ctx.g
    sp = ctx.producer(n.inputs[0])
    if sp is None or sp.op != "Split" or list(sp.outputs) != list(n.inputs[:3]):
        return None
    src = g.types[sp.inputs[0]].shape
    if sp.attr("axis", 0) % len(src) != len(src) - 1 or len({g.types[o].shape for o in sp.outputs}) != 1:
        return None
    return sp


def split_kernel(ctx: _Ctx, n, args):
    """``Split`` read in place: when every consumer of its outputs is an attention that the flash kernel runs on
    the unsplit QKV projection, the outputs stand for the source tensor and no copies are made."""
    if not _applies(ctx):
        return None
    users = {id(u): u for o in n.outputs for u in ctx.consumers(o)}.values()
    if any(o in ctx.g.outputs for o in n.outputs) or not users or \
            any(u.op != "attention" or not _flash_ok(ctx, u) or _qkv_split(ctx, u) is not n for u in users):
        return None
    ctx.in_place_splits.add(n.name)
    return [args[0]] * len(n.outputs)


def _mask_shape(ctx: _Ctx, name: str, b: int, s_q: int, s_k: int) -> tuple[int, int] | None:
    """(Bm, Sqm) of an ONNX-style additive mask the attention kernels broadcast (``[Bm, 1, Sqm, Sk]`` with Bm in
    {1, B}, one head, Sqm in {1, Sq}), or None."""
    shape = tuple(int(d) for d in ctx.g.types[name].shape)
    shape = (1,) * (4 - len(shape)) + shape if len(shape) <= 4 else shape
    if len(shape) != 4 or shape[1] != 1 or shape[0] not in (1, b) or shape[2] not in (1, s_q) or shape[3] != s_k:
        return None
    return shape[0], shape[2]


def _mask_3d(ctx: _Ctx, name: str, mask, b: int, s_q: int, s_k: int):
    """ONNX-style additive mask -> ``[Bm, Sqm, Sk]`` float32 for the attention kernels, or None if its shape is
    not one they broadcast."""
    from tvm import relax
    ms = _mask_shape(ctx, name, b, s_q, s_k)
    if ms is None:
        return None
    key = ("mask_3d", name)
    if key not in ctx.memo:  # every layer's attention reads the model's one mask: cast it once
        m = _reshape(ctx, mask, [ms[0], ms[1], s_k])
        ctx.memo[key] = m if m.ty.dtype == "float32" else ctx.emit(relax.op.astype(m, "float32"))
    return ctx.memo[key], ms[0], ms[1]


def _two_valued(ctx: _Ctx, name: str):
    """(cond, a, b) when graph value ``name`` is ``Where(cond, a, b)`` of two scalar constants (the padding masks
    exporters build: 0 where attended, the dtype's minimum elsewhere): ``cond`` the graph value's name, ``a`` and
    ``b`` as the graph holds them (what the interpreter reads, not the fp16 lowering's rounding of them); else
    None."""
    w = ctx.producer(name)
    if w is None or w.op != "Where" or len(w.inputs) != 3 or w.inputs[0] not in ctx.env:
        return None
    vals = [ctx.g.constants.get(i) for i in w.inputs[1:]]
    if any(v is None or np.size(v) != 1 for v in vals):
        return None
    dt = ctx.g.types[name].dtype.value
    return w.inputs[0], *(np.asarray(v, dt).reshape(()) for v in vals)


def attention_kernels(ctx: _Ctx, n, args):
    """``attention`` fp16: one flash-attention kernel (schedules/flash_attention.py; q/k/v read in place from a
    fused QKV projection when they are its split), else tensor-core QKᵀ with scale/mask/causal epilogue, row
    softmax, tensor-core PV (schedules/attention.py), heads read and merged in place."""
    if not _applies(ctx):
        return None
    shape = _attention_shape(ctx, n)
    if shape is None:
        return None
    b, s_q, s_k, h, d = shape
    hd = h * d
    mask = args[3] if len(args) > 3 and args[3] is not None else None
    mb, mq = b, 1
    if mask is not None:
        m3 = _mask_3d(ctx, n.inputs[3], mask, b, s_q, s_k)
        if m3 is None:
            return None
        mask, mb, mq = m3
    scale, causal = float(n.attrs["scale"]), bool(n.attr("causal", 0))
    tag = f"{b}x{h}x{s_q}x{s_k}x{d}"
    mtag = f"_m{mb}x{mq}" if mask is not None else ""
    ctag = f"_s{scale:g}{'_causal' if causal else ''}{mtag}"
    if _flash_ok(ctx, n):
        sp = _qkv_split(ctx, n)
        fused = sp is not None and sp.name in ctx.in_place_splits

        def make_flash():
            fa = _schedules().flash_attention
            shape_args = (b, s_q, s_k, h, d, scale, causal, mask is not None, mb, mq, fused)
            return fa.attention_func(*shape_args), fa.attention_flash(*shape_args)

        gv = _kernel(ctx, f"attn_flash_{tag}{ctag}{'_qkv' if fused else ''}", make_flash)
        if gv is not None:
            qkv = [args[0]] if fused else list(args[:3])
            return _call(ctx, gv, qkv + ([mask] if mask is not None else []), [b, s_q, hd])
        if fused:
            raise BackendError(f"attention {n.name}: the flash kernel failed after its QKV split was elided")

    def kernels():
        att = _schedules().attention
        defs = {"scores": att.scores_func(b, s_q, s_k, h, d, scale, causal, mask is not None, mb, mq),
                "softmax": att.softmax_func(b, h, s_q, s_k), "pv": att.pv_func(b, s_q, s_k, h, d)}
        return defs, att.attention(b, s_q, s_k, h, d, scale, causal, mask is not None, mask_batch=mb, mask_rows=mq)

    gvs = _kernel_set(ctx, {"scores": f"attn_scores_{tag}{ctag}",
                            "softmax": f"attn_softmax_{b * h * s_q}x{s_k}", "pv": f"attn_pv_{tag}"}, kernels)
    if gvs is None:
        return None
    gv_s, gv_p, gv_v = gvs["scores"], gvs["softmax"], gvs["pv"]
    scores = _call(ctx, gv_s, [args[0], args[1]] + ([mask] if mask is not None else []), [b, h, s_q, s_k], "float32")
    probs = _call(ctx, gv_p, [_reshape(ctx, scores, [b * h * s_q, s_k])], [b * h * s_q, s_k])
    return _call(ctx, gv_v, [_reshape(ctx, probs, [b, h, s_q, s_k]), args[2]], [b, s_q, hd])


def _norm_operands(ctx: _Ctx, n, x_index: int, args):
    """(M, C, eps) when hwcomp's layer-norm kernel covers this node (last axis, gamma and beta given)."""
    g = ctx.g
    shape = g.types[n.inputs[x_index]].shape
    axis = n.attr("axis", -1)
    if axis not in (-1, len(shape) - 1) or len(args) < x_index + 3 or args[x_index + 2] is None:
        return None
    return int(np.prod(shape[:-1])), int(shape[-1]), float(n.attr("epsilon", 1e-5))


def _norm_threads(c: int) -> int:
    """Threads per row: 256, or the row width rounded down to whole warps when the row is narrower."""
    return max(32, min(256, c // 32 * 32))


def layer_norm_kernel(ctx: _Ctx, n, args):
    """``layer_norm``, or ``add_layer_norm`` (residual add + layer norm in one kernel, outputs (normalized, sum)),
    over the last axis (schedules/layer_norm.py)."""
    residual = n.op == "add_layer_norm"
    if not _applies(ctx) or n.op not in ("layer_norm", "add_layer_norm"):
        return None
    ops = _norm_operands(ctx, n, int(residual), args)
    if ops is None:
        return None
    m, c, eps = ops

    def make():
        ln = _schedules().layer_norm
        return (ln.layer_norm_func(m, c, eps, residual=residual),
                ln.layer_norm(m, c, eps, residual=residual, threads=_norm_threads(c)))

    gv = _kernel(ctx, f"{n.op}_f16_{m}x{c}_e{eps:g}", make)
    if gv is None:
        return None
    shape = list(ctx.g.types[n.inputs[0]].shape)
    rows = [_reshape(ctx, a, [m, c]) for a in args[:1 + residual]]
    ins = rows + list(args[1 + residual:3 + residual])
    if not residual:
        return _reshape(ctx, _call(ctx, gv, ins, [m, c]), shape)
    return [_reshape(ctx, t, shape) for t in _call(ctx, gv, ins, [m, c], ("float16", "float16"))]


# ---- int8 (static PTQ) kernels: any float precision, bit-exact with hwcomp/ops/quantized.py --------------------

def _int_schedules():
    from .startup import import_tensor_intrinsics
    import_tensor_intrinsics()
    import hwcomp.schedules.qattention
    import hwcomp.schedules.qdense
    import hwcomp.schedules.qdense_wgmma
    import hwcomp.schedules.qflash_attention  # noqa: F401
    return hwcomp.schedules


def _qdense_width(ctx: _Ctx, n) -> int | None:
    """Output width the int8 GEMM computes for ``qdense`` node ``n`` (N rounded up to 128 when wider than
    128 and odd, like the fp16 dense), or None when the kernel does not cover the node."""
    g = ctx.g
    x, w = g.types[n.inputs[0]], g.types[n.inputs[1]]
    if ctx.target != "cuda" or x.dtype.value != "int8" or w.dtype.value != "int8" or n.inputs[1] not in g.constants:
        return None
    if n.input(2) and n.inputs[2] not in g.constants:
        return None
    act = n.attr("activation", "none")
    if act not in ("none", "relu") or int(w.shape[0]) % 32 or int(np.prod(x.shape[:-1])) % 16:
        return None
    if n.attr("out_dtype", "int8") != "float32" and int(n.attr("out_bits", 8)) not in (8, 16):
        return None
    nn = int(w.shape[1])
    return nn if nn % DENSE_N_ALIGN == 0 or nn < DENSE_N_ALIGN else -(-nn // DENSE_N_ALIGN) * DENSE_N_ALIGN


def qdense_weight_layout(ctx: _Ctx) -> dict[str, int]:
    """int8 ``qdense`` weights the kernel reads as ``[N, K]`` (``ldmatrix`` cannot transpose bytes): weight
    name -> padded N. The lowering transposes (and zero-pads) these constants once, at compile time. Only
    weights used by nothing but covered qdense nodes are listed."""
    out = {}
    for n in ctx.g.nodes:
        if n.op != "qdense":
            continue
        width = _qdense_width(ctx, n)
        name = n.inputs[1]
        if width is not None and all(u.op == "qdense" and i == 1 and _qdense_width(ctx, u) == width
                                     for u, i in ctx.uses(name)):
            out[name] = width
    return out


def _per_channel(v, n: int, width: int, dtype: str, pad) -> np.ndarray:
    a = np.broadcast_to(np.asarray(v, dtype), (n,)) if np.ndim(v) == 0 else np.asarray(v, dtype).reshape(n)
    return np.concatenate([a, np.full(width - n, pad, dtype)]) if width > n else np.ascontiguousarray(a)


def _epilogue_operands(ctx: _Ctx, n, channels: int, width: int):
    """hwcomp's integer-op epilogue (hwcomp/ops/quantized.py ``_epilogue``) as kernel operands: (dequant, out zero
    point, out bits, out dtype, per-channel constants padded to ``width``, kernel-name tag). Dequant: float32
    ``acc * out_scale[c]``; else requantization by ``multiplier[c]``/``shift[c]``."""
    if n.attr("out_dtype", "int8") == "float32":
        return (True, 0, 8, "float32", [_per_channel(n.attrs["out_scale"], channels, width, "float32", 0.0)],
                f"dequant_f32{'_exact' if ctx.exact_fp else ''}")
    zp, bits = int(n.attr("out_zero_point", 0)), int(n.attr("out_bits", 8))
    return (False, zp, bits, ctx.g.types[n.outputs[0]].dtype.value,
            [_per_channel(n.attrs["multiplier"], channels, width, "int32", 0),
             _per_channel(n.attrs["shift"], channels, width, "int32", 1)], f"requant_i{bits}_z{zp}".replace("-", "m"))


def _residual_quant_chain(ctx: _Ctx, n, width: int, keep_sum: bool = False):
    """(Add node, quantize node, residual value, sum kept) when ``n`` (float32 out) feeds only ``Add(n, r)`` whose
    sum feeds a signed 8/16-bit ``quantize``: the chain post-LN transformers run after every output projection
    (residual add, then quantize for the integer layer norm). With ``keep_sum`` the sum may have other readers
    (pre-LN models: the residual stream goes on), and the kernel then writes it too. None otherwise."""
    g = ctx.g
    y = n.outputs[0]
    cons = ctx.consumers(y)
    if len(cons) != 1 or cons[0].op != "Add" or y in g.outputs or width != int(g.types[y].shape[-1]):
        return None
    add = cons[0]
    other = add.inputs[1] if add.inputs[0] == y else add.inputs[0]
    if other == y or g.types[other].shape != g.types[y].shape or g.types[other].dtype.value != "float32":
        return None
    if other not in ctx.env:
        return None
    readers = ctx.consumers(add.outputs[0])
    qs = [r for r in readers if r.op == "quantize" and r.attr("signed", 1) and int(r.attr("bits", 8)) in (8, 16)]
    keep = len(readers) > 1 or add.outputs[0] in g.outputs
    if not qs or (keep and not keep_sum):
        return None
    q = qs[0]
    if g.types[q.outputs[0]].dtype.value != f"int{int(q.attr('bits', 8))}" or np.ndim(q.attrs["scale"]) > 1:
        return None
    return add, q, other, keep


def _qdense_wgmma_ok(ctx: _Ctx, m: int, n: int, k: int) -> bool:
    """Whether the int8 GEMM runs as wgmma (schedules/qdense_wgmma.py): sm_90 and a shape its tiles cover."""
    return ctx.arch in _int_schedules().qdense_wgmma.ARCHS and _int_schedules().qdense_wgmma.applicable(m, n, k)


def _gelu_chain(ctx: _Ctx, n, dequant: bool, zero_point: int, bits: int, act: str):
    """The ``int_gelu`` that alone reads int8 ``qdense`` ``n`` (requantized at zero point 0, no activation), with
    a requantizing epilogue whose arithmetic fits int32 (relax_lowering.int_gelu_plan): a BERT FFN's up-projection
    and its GELU, which the int8 wgmma GEMM computes in one epilogue (schedules/qdense_wgmma.py ``rqgelu``), saving
    the int8 round trip through memory and a kernel. None otherwise."""
    y = n.outputs[0]
    if dequant or zero_point != 0 or bits != 8 or act != "none" or y in ctx.g.outputs:
        return None
    cons = ctx.consumers(y)
    if len(cons) != 1 or cons[0].op != "int_gelu" or list(cons[0].inputs[:1]) != [y]:
        return None
    if relax_lowering.int_gelu_plan(ctx, cons[0]) is None:
        return None
    return cons[0]


def _qkv_quant_chain(ctx: _Ctx, n, dequant: bool, act: str, width: int, nn: int):
    """``(split, quantizes, attention)`` when float32 ``qdense`` ``n`` is a fused QKV projection whose ``Split``
    (three equal parts of the last axis) feeds, part by part, a signed 8-bit ``quantize`` (scalar scale) read only
    as q, k, v of one ``qattention`` that runs as the one-kernel integer attention (GPT-2's c_attn). The GEMM then
    quantizes each column by its part's scale in its epilogue and writes the int8 values as fp16, which the
    attention reads in place: no float32 [B, S, 3*H*D] round trip, split or per-part quantize kernels."""
    g = ctx.g
    y = n.outputs[0]
    if act != "none" or width != nn or y in g.outputs:
        return None
    if not dequant and (n.attr("out_dtype", "int8") != "int8" or int(n.attr("out_bits", 8)) != 8):
        return None
    cons = ctx.consumers(y)
    if len(cons) != 1 or cons[0].op != "Split" or len(cons[0].outputs) != 3:
        return None
    sp = cons[0]
    shape = g.types[y].shape
    if sp.attr("axis", 0) % len(shape) != len(shape) - 1 or any(g.types[o].shape[-1] * 3 != nn for o in sp.outputs):
        return None
    if not dequant:  # int8 already (fuse_qkv_int8): the parts go straight to the attention
        uses = [ctx.uses(o) for o in sp.outputs]
        if any(len(u) != 1 or u[0][0].op != "qattention" or u[0][1] != i or o in g.outputs
               for i, (u, o) in enumerate(zip(uses, sp.outputs))):
            return None
        attn = uses[0][0][0]
        if any(u[0][0] is not attn for u in uses) or not _qflash_ok(ctx, attn):
            return None
        return sp, [], attn
    qs, attn = [], None
    for i, o in enumerate(sp.outputs):
        qc = ctx.consumers(o)
        if len(qc) != 1 or qc[0].op != "quantize" or o in g.outputs or np.size(qc[0].attrs["scale"]) != 1:
            return None
        q = qc[0]
        if not q.attr("signed", 1) or int(q.attr("bits", 8)) != 8 or g.types[q.outputs[0]].dtype.value != "int8":
            return None
        uses = ctx.uses(q.outputs[0])
        if len(uses) != 1 or uses[0][0].op != "qattention" or uses[0][1] != i or q.outputs[0] in g.outputs:
            return None
        if attn is not None and uses[0][0] is not attn:
            return None
        attn = uses[0][0]
        qs.append(q)
    if len({int(q.attr("zero_point", 0)) for q in qs}) != 1 or not _qflash_ok(ctx, attn):
        return None
    return sp, qs, attn


def _feeds_qattention_f16(ctx: _Ctx, n) -> bool:
    """Whether int8 ``qdense`` ``n`` is read only by one ``qattention`` that lowers to hwcomp's kernels and takes
    that operand on fp16 tensor cores: V always (PV is fp16 mma), Q and K when the one-kernel attention runs.
    ``n`` then writes its int8 values as float16 (exact), which saves a cast kernel. (Operands that come from
    elsewhere, e.g. GPT-2's per-slice quantize after its c_attn split, are cast by the attention's lowering; Relax
    fuses that cast into the elementwise kernel producing them.)"""
    y = n.outputs[0]
    if y in ctx.g.outputs or n.attr("out_dtype", "int8") != "int8" or int(n.attr("out_bits", 8)) != 8:
        return False
    uses = ctx.uses(y)
    if len(uses) != 1 or uses[0][0].op != "qattention" or _qattention_shape(ctx, uses[0][0]) is None:
        return False
    return uses[0][1] == 2 or (uses[0][1] in (0, 1) and _qflash_ok(ctx, uses[0][0]))


def qdense_kernel(ctx: _Ctx, n, args):
    """``qdense`` int8 x int8 -> int32 on int8 tensor cores with the requantization (int8/int16 out) or the
    exact float32 dequant epilogue fused: wgmma on sm_90 (schedules/qdense_wgmma.py), else mma.sync
    (schedules/qdense.py); the input zero point is folded into the bias."""
    width = _qdense_width(ctx, n)
    if width is None:
        return None
    from tvm import relax
    g = ctx.g
    xs = g.types[n.inputs[0]].shape
    k, nn = (int(d) for d in g.types[n.inputs[1]].shape)
    m = int(np.prod(xs[:-1]))
    w_kn = g.constants[n.inputs[1]]
    bias = g.constants[n.inputs[2]] if n.input(2) else None
    folded = _per_channel(_int_schedules().qdense.fold_input_zero_point(w_kn, bias, int(n.attr("x_zero_point", 0))),
                          nn, width, "int32", 0)
    act = n.attr("activation", "none")
    dequant, zp, bits, odt, consts, tag = _epilogue_operands(ctx, n, nn, width)
    epi = "dequant" if dequant else "requant"
    wgmma = _qdense_wgmma_ok(ctx, m, width, k)
    chain = _residual_quant_chain(ctx, n, width, keep_sum=wgmma) if dequant else None
    rq = (int(chain[1].attr("bits", 8)), int(chain[1].attr("zero_point", 0))) if chain else None
    keep_sum = bool(chain and chain[3])
    if rq is not None:
        odt = f"int{rq[0]}"
        tag += f"_resq_i{rq[0]}_z{rq[1]}{'_sum' if keep_sum else ''}".replace("-", "m")
    exact = ctx.exact_fp

    as_f16 = wgmma and width == nn and _feeds_qattention_f16(ctx, n)
    if as_f16:
        odt, tag = "float16", tag + "_f16"
    gelu_node = _gelu_chain(ctx, n, dequant, zp, bits, act) if wgmma else None
    gelu = None
    if gelu_node is not None:  # the GEMM writes int_gelu's output: its constants, bits and zero point
        gelu = (int(gelu_node.attrs["b_int"]), int(gelu_node.attrs["one_int"]))
        gconsts = [_per_channel(gelu_node.attrs["multiplier"], nn, width, "int32", 0),
                   _per_channel(gelu_node.attrs["shift"], nn, width, "int32", 1)]
        zp, bits = int(gelu_node.attr("out_zero_point", 0)), int(gelu_node.attr("out_bits", 8))
        odt = g.types[gelu_node.outputs[0]].dtype.value
        tag += f"_igelu_b{gelu[0]}_o{gelu[1]}_i{bits}_z{zp}".replace("-", "m")
    qkv = _qkv_quant_chain(ctx, n, dequant, act, width, nn) if wgmma and chain is None else None
    qkv_zp = None
    if qkv is not None and not dequant:  # a fused int8 QKV projection: requantized, the int8 values as fp16
        as_f16, odt, tag = True, "float16", tag + "_qkv_f16"
    elif qkv is not None:  # quantized per column by its part's scale, the int8 values as fp16
        qkv_zp = int(qkv[1][0].attr("zero_point", 0))
        as_f16, odt = True, "float16"
        qscale = np.repeat(np.asarray([float(np.asarray(q.attrs["scale"]).reshape(())) for q in qkv[1]], np.float32),
                           nn // 3)
        tag += f"_qkv_q8_z{qkv_zp}".replace("-", "m")
    # a graph output read by nothing else (an LM head's logits): written unpadded, in the output's own shape
    y_name = n.outputs[0]
    n_out = nn if wgmma and dequant and chain is None and not as_f16 and odt == "float32" and width != nn \
        and y_name in g.outputs and not ctx.uses(y_name) else None
    lead = tuple(int(d) for d in xs[:-1]) if n_out else None
    if n_out:
        tag += f"_out{n_out}"

    def make():
        s = _int_schedules()
        definition = s.qdense.qdense_func(m, width, k, epi, zp, act, bits, "float32", exact, rq, as_f16, gelu,
                                          n_out, lead, qkv_zp, keep_sum)
        if wgmma:  # int8 wgmma (sm_90a); its float epilogues are always the IEEE-rounded (exact) ones
            return definition, s.qdense_wgmma.qdense_wgmma(m, width, k, epi, zp, act, bits, "float32", rq,
                                                           requant_as_f16=as_f16, gelu=gelu, n_out=n_out, lead=lead,
                                                           quantize=qkv_zp, residual_sum=keep_sum)
        return definition, s.qdense.qdense(m, width, k, epi, zp, act, ctx.arch, out_bits=bits, out_dtype="float32",
                                           exact=exact, residual_quant=rq)

    gv = _kernel(ctx, f"qdense_{'wgmma_' if wgmma else ''}{m}x{width}x{k}_{tag}_{act}", make)
    if gv is None:
        return None
    if n.inputs[1] in ctx.transposed:
        w = args[1]
    else:  # a small constant (or one shared with other ops): transposed here, inlined
        w_nk = np.zeros((width, k), np.int8)
        w_nk[:nn] = w_kn.T
        w = relax.const(w_nk, "int8")
    ins = [_reshape(ctx, args[0], [m, k]), w, relax.const(folded, "int32")] + [relax.const(c, str(c.dtype))
                                                                                  for c in consts]
    if n_out:  # in the graph output's shape: a slice or reshape of the function's result is a copy kernel
        return _call(ctx, gv, ins, list(xs[:-1]) + [nn], "float32")
    if qkv is not None:
        sp, qs, attn = qkv
        if qs:
            ins.append(relax.const(qscale, "float32"))
        y = _reshape(ctx, _call(ctx, gv, ins, [m, nn], "float16"), list(xs[:-1]) + [nn])
        ctx.memo[("qkv_f16", attn.name)] = y  # read in place by the attention
        third = nn // 3
        parts = [q.outputs[0] for q in qs] if qs else list(sp.outputs)
        for i, part in enumerate(parts):  # (what a fallback attention would read; unused bindings are dropped)
            ctx.env[part] = ctx.emit(relax.op.strided_slice(y, [len(xs) - 1], [i * third], [(i + 1) * third]))
        ctx.fused_away |= {sp.name} | {q.name for q in qs}
        return y  # (n's own float32 output has no other reader)
    if chain is not None:
        add, q, other, _ = chain
        ins += [_reshape(ctx, ctx.env[other], [m, nn]), relax.const(_per_channel(q.attrs["scale"], nn, nn, "float32", 1.0))]
        if keep_sum:  # the quantized sum and the float32 sum, which the residual stream reads on
            res, total = _call(ctx, gv, ins, [m, nn], (odt, "float32"))
            ctx.env[add.outputs[0]] = _reshape(ctx, total, list(xs[:-1]) + [nn])
        else:
            res = _call(ctx, gv, ins, [m, width], odt)
        out = _reshape(ctx, res, list(xs[:-1]) + [nn])
        ctx.env[q.outputs[0]] = out  # the quantized residual sum; the Add and the quantize are done
        ctx.fused_away |= {add.name, q.name}
        return out  # (n's own float output has no other consumer)
    if gelu is not None:  # the GEMM writes int_gelu's output (n's own int8 output has no other consumer)
        ins += [relax.const(c, "int32") for c in gconsts]
    y = _call(ctx, gv, ins, [m, width], odt)
    if width != nn:
        y = ctx.emit(relax.op.strided_slice(y, [1], [0], [nn]))
    y = _reshape(ctx, y, list(xs[:-1]) + [nn])
    if gelu is not None:
        ctx.env[gelu_node.outputs[0]] = y
        ctx.fused_away.add(gelu_node.name)
    return y


def _qattention_shape(ctx: _Ctx, n) -> tuple[int, int, int, int, int] | None:
    """(B, Sq, Sk, H, D) of a ``qattention`` hwcomp's integer attention kernels cover, else None."""
    g = ctx.g
    if ctx.target != "cuda" or n.op != "qattention" or n.attr("softmax", "int") != "int":
        return None
    if any(g.types[i].dtype.value != "int8" for i in n.inputs[:3]):
        return None
    h = int(n.attrs["num_heads"])
    b, s_q, hd = (int(d) for d in g.types[n.inputs[0]].shape)
    s_k = int(g.types[n.inputs[1]].shape[1])
    d = hd // h
    if int(g.types[n.inputs[2]].shape[-1]) != hd or d % 16 or s_q % 16 or s_k % 16:
        return None
    if n.input(3) and _mask_shape(ctx, n.inputs[3], b, s_q, s_k) is None:
        return None
    if s_k * ((1 << int(n.attr("prob_bits", 8))) - 1) * 128 >= 1 << 24 or int(n.attrs["exp_ln2"]) >= 0:
        return None  # PV not exact in fp32 (schedules/qattention.py check_exact), or constants it refuses
    return b, s_q, s_k, h, d


def _qflash_ok(ctx: _Ctx, n) -> bool:
    """Whether ``qattention`` node ``n`` runs as the one-kernel integer attention (schedules/qflash_attention.py):
    sm_80+ and a shape it covers (whole score rows on chip)."""
    shape = _qattention_shape(ctx, n)
    if shape is None or not ctx.use_schedules or _arch_number(ctx) < 80:
        return False
    b, s_q, s_k, h, d = shape
    qf = _int_schedules().qflash_attention
    return qf.applicable(s_q, s_k, d, qf.pick_config(b, h, s_q))


def qattention_kernels(ctx: _Ctx, n, args):
    """``qattention`` (integer softmax): one kernel holding whole score rows on chip where it covers the shape
    (schedules/qflash_attention.py), else int8-mma scores, integer softmax and exact fp16-mma PV with the
    requantization fused (schedules/qattention.py)."""
    shape = _qattention_shape(ctx, n)
    if shape is None:
        return None
    from tvm import relax
    R = relax.op
    b, s_q, s_k, h, d = shape
    hd = h * d
    pb = int(n.attr("prob_bits", 8))
    ss = float(n.attrs["score_scale"])
    qa = _int_schedules().qattention
    dequant, zp, bits, _, consts, etag = _epilogue_operands(ctx, n, hd, hd)
    epi = qa.Epilogue(dequant=dequant, out_zero_point=zp, out_bits=bits, exact=dequant and ctx.exact_fp)
    mask = args[3] if len(args) > 3 and args[3] is not None else None
    mb, mq = b, 1
    if mask is not None:  # to score units in float64 as the interpreter does
        mb, mq = _mask_shape(ctx, n.inputs[3], b, s_q, s_k)  # covered: _qattention_shape checked it

        def score_units(v):
            return np.clip(np.rint(np.asarray(v, np.float64) / ss), -(2.0 ** 30), 2.0 ** 30).astype(np.int32)

        two = _two_valued(ctx, n.inputs[3])
        if two is not None:  # where(cond, a, b): its two values converted here, and one int mask for all layers
            cond, a_, b_ = two  # whose scales give the same two
            qa_, qb_ = score_units(a_), score_units(b_)
            key = ("qmask", n.inputs[3], int(qa_), int(qb_))
            if key not in ctx.memo:
                cv = ctx.env[cond]
                mshape = [int(d) for d in ctx.g.types[n.inputs[3]].shape]
                if [int(d) for d in cv.ty.shape] != mshape:
                    cv = ctx.emit(R.broadcast_to(cv, mshape))
                mi = ctx.emit(R.where(cv, relax.const(qa_, "int32"), relax.const(qb_, "int32")))
                ctx.memo[key] = _reshape(ctx, mi, [mb, mq, s_k])
            mask = ctx.memo[key]
        else:
            mf = _mask_3d(ctx, n.inputs[3], mask, b, s_q, s_k)[0]  # float32 [Bm, Sqm, Sk]
            mi = R.round(R.divide(R.astype(mf, "float64"), relax.const(ss, "float64")))
            mi = R.minimum(R.maximum(mi, relax.const(-(2.0 ** 30), "float64")), relax.const(2.0 ** 30, "float64"))
            mask = ctx.emit(R.astype(mi, "int32"))
    causal = bool(n.attr("causal", 0))
    sm = dict(exp_ln2=int(n.attrs["exp_ln2"]), exp_b=int(n.attrs["exp_b"]), exp_c=int(n.attrs["exp_c"]))
    tag = f"{b}x{h}x{s_q}x{s_k}x{d}"
    mtag = f"_m{mb}x{mq}" if mask is not None else ""

    def kernels():
        defs = {"scores": qa.qscores_func(b, s_q, s_k, h, d, causal, mask is not None, mb, mq),
                "softmax": qa.int_softmax_func(b * h * s_q, s_k, prob_bits=pb, **sm),
                "pv": qa.qpv_func(b, s_q, s_k, h, d, epi)}
        return defs, qa.qattention(b, s_q, s_k, h, d, prob_bits=pb, epilogue=epi, causal=causal,
                                   has_mask=mask is not None, mask_batch=mb, mask_rows=mq, **sm)

    ctag = "_".join(str(v) for v in sm.values()).replace("-", "m")

    def as_dtype(x, dtype):  # int8 values travel as fp16 into fp16 tensor-core operands (exact both ways)
        return x if x.ty.dtype == dtype else ctx.emit(R.astype(x, dtype))

    mconst = [mask] if mask is not None else []
    cconst = [relax.const(c, str(c.dtype)) for c in consts]
    if _qflash_ok(ctx, n):
        def make_flash():
            qf = _int_schedules().qflash_attention
            kw = dict(prob_bits=pb, epilogue=epi, causal=causal, has_mask=mask is not None, mask_batch=mb,
                      mask_rows=mq, fused=fused_qkv is not None, **sm)
            return qf.qattention_func(b, s_q, s_k, h, d, **kw), qf.qattention_flash(b, s_q, s_k, h, d, **kw)

        fused_qkv = ctx.memo.get(("qkv_f16", n.name))  # a fused QKV projection written for it (_qkv_quant_chain)
        ftag = "_qkv" if fused_qkv is not None else ""
        gv = _kernel(ctx, f"qattn_flash_{tag}{'_causal' if causal else ''}{mtag}_p{pb}_{ctag}_{etag}{ftag}", make_flash)
        if gv is not None:
            qkv = [fused_qkv] if fused_qkv is not None else [as_dtype(a, "float16") for a in args[:3]]
            return _call(ctx, gv, qkv + mconst + cconst, [b, s_q, hd], epi.dtype)
    gvs = _kernel_set(ctx, {"scores": f"qattn_scores_{tag}{'_causal' if causal else ''}{mtag}",
                            "softmax": f"qattn_softmax_{b * h * s_q}x{s_k}_p{pb}_{ctag}",
                            "pv": f"qattn_pv_{tag}_{etag}"}, kernels)
    if gvs is None:
        if any(a.ty.dtype == "float16" for a in args[:3]):
            raise BackendError(f"qattention {n.name}: its inputs were written as fp16 for hwcomp's integer attention "
                               "kernels, which then failed to schedule; compile with --no-schedules")
        return None
    gv_s, gv_p, gv_v = gvs["scores"], gvs["softmax"], gvs["pv"]
    scores = _call(ctx, gv_s, [as_dtype(args[0], "int8"), as_dtype(args[1], "int8")] + mconst, [b, h, s_q, s_k], "int32")
    probs = _call(ctx, gv_p, [_reshape(ctx, scores, [b * h * s_q, s_k])], [b * h * s_q, s_k])
    return _call(ctx, gv_v, [_reshape(ctx, probs, [b, h, s_q, s_k]), as_dtype(args[2], "float16")] + cconst,
                 [b, s_q, hd], epi.dtype)


def _fused_quantize(ctx: _Ctx, y: str, c: int):
    """The signed 8/16-bit ``quantize`` (scale a scalar or per channel) that reads float32 value ``y``, if any:
    a layer norm's output feeding the next int8 GEMM (post-LN transformers quantize every LN output)."""
    g = ctx.g
    for q in ctx.consumers(y):
        if q.op != "quantize" or not q.attr("signed", 1) or int(q.attr("bits", 8)) not in (8, 16):
            continue
        if g.types[q.outputs[0]].dtype.value != f"int{int(q.attr('bits', 8))}" or np.size(q.attrs["scale"]) not in (1, c):
            continue
        if np.ndim(q.attrs["scale"]) > 1 or np.ndim(q.attr("zero_point", 0)) > 0:
            continue
        return q
    return None


def int_layer_norm_kernel(ctx: _Ctx, n, args):
    """``int_layer_norm`` over the last axis: integer statistics, isqrt, normalize and the requantization (or exact
    float32 dequant) epilogue in one kernel: a warp per row where schedules/layer_norm.py's generated kernel
    covers the shape (its float32 output then also quantized for the next int8 GEMM when a ``quantize`` reads it:
    a second output, the quantize node fused away), else a thread block per row."""
    g = ctx.g
    xt = g.types[n.inputs[0]]
    if ctx.target != "cuda" or xt.dtype.value not in ("int8", "int16", "int32"):
        return None
    from tvm import relax
    c = int(xt.shape[-1])
    m = int(np.prod(xt.shape[:-1]))
    eps, fb = int(n.attrs["eps_int"]), int(n.attr("frac_bits", 14))
    dequant, zp, bits, odt, epi_consts, tag = _epilogue_operands(ctx, n, c, c)
    consts = [_per_channel(n.attrs["gamma_int"], c, c, "int32", 0),
              _per_channel(n.attrs["beta_int"], c, c, "int32", 0)] + epi_consts
    exact, threads = ctx.exact_fp, _norm_threads(c)
    ln_mod = _schedules().layer_norm
    warp = ln_mod.int_warp_vec(m, c, xt.dtype.value) is not None
    q = _fused_quantize(ctx, n.outputs[0], c) if warp and dequant else None
    qo = (int(q.attr("bits", 8)), int(q.attr("zero_point", 0))) if q is not None else None
    narrow = warp and ln_mod.int_narrow_ok(consts[0], consts[1], fb)  # int32 normalize where gamma/beta allow

    def make():
        ln = _schedules().layer_norm
        args_ = (m, c, xt.dtype.value, eps, fb, dequant, zp, bits)
        definition = ln.int_layer_norm_func(*args_, exact, quant_out=qo)
        if warp:
            return definition, ln.int_layer_norm_warp(*args_, quant_out=qo, narrow=narrow)
        return definition, ln.int_layer_norm(*args_, exact, threads=threads)

    qtag = f"_q{qo[0]}_z{qo[1]}".replace("-", "m") if qo else ""
    gv = _kernel(ctx, f"int_layer_norm_{'warp_' if warp else ''}{m}x{c}_{xt.dtype.value}_e{eps}_f{fb}_{tag}{qtag}"
                 f"{'_n32' if narrow else ''}", make)
    if gv is None:
        return None
    ins = [_reshape(ctx, args[0], [m, c])] + [relax.const(a, str(a.dtype)) for a in consts]
    if q is None:
        y = _call(ctx, gv, ins, [m, c], odt)
        return _reshape(ctx, y, list(xt.shape))
    qscale = _per_channel(q.attrs["scale"], c, c, "float32", 1.0)
    ins += [relax.const(qscale), relax.const(_schedules().cuda_device_functions.quantize_reciprocal(qscale))]
    y, yq = _call(ctx, gv, ins, [m, c], ("float32", f"int{qo[0]}"))
    ctx.env[q.outputs[0]] = _reshape(ctx, yq, list(xt.shape))
    ctx.fused_away.add(q.name)
    return _reshape(ctx, y, list(xt.shape))


FUSED_KERNELS.update({"int_layer_norm": int_layer_norm_kernel})


# ---- weight-only int4 (decode: few rows) --------------------------------------------------------------------

GEMV_MAX_ROWS = 8  # wdense with at most this many rows (decode) runs as hwcomp's int4 GEMV kernel


def _wdense_gemv_ok(ctx: _Ctx, n) -> bool:
    g = ctx.g
    if n.op != "wdense" or not _applies(ctx) or int(n.attr("bits", 4)) != 4 or n.attr("in_scale") is not None:
        return False
    if any(i not in g.constants for i in n.inputs[1:4]):
        return False
    k, nn = (int(d) for d in g.types[n.inputs[1]].shape)
    grp = int(n.attrs["group_size"])
    m = int(np.prod(g.types[n.inputs[0]].shape[:-1]))
    from hwcomp.schedules.gemv_int4 import kernel_supports
    return (m <= GEMV_MAX_ROWS and kernel_supports(k, grp)
            and n.attr("activation", "none") in ("none", "gelu", "gelu_tanh", "relu", "tanh"))


def _pack_codes(codes: np.ndarray) -> np.ndarray:
    """wdense's codes ``[K, N]`` -> the GEMV kernel's packed ``[N, K // 2]`` (schedules/gemv_int4.py)."""
    from hwcomp.schedules.gemv_int4 import pack_codes
    return pack_codes(np.ascontiguousarray(codes.T))


def _to_f16_t(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.T).astype(np.float16)


def wdense_param_layouts(ctx: _Ctx) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """int4 ``wdense`` constants the GEMV kernel reads in its own layout, each used only by covered wdense nodes:
    codes ``[K, N]`` -> packed ``[N, K/2]`` uint8 (code pairs in half2 lanes: gemv_int4.pack_codes); scale and
    zero ``[K/g, N]`` -> ``[N, K/g]`` float16 (zero points are small integers, exact in fp16)."""
    out = {}
    for n in ctx.g.nodes:
        if not _wdense_gemv_ok(ctx, n):
            continue
        for i, fn in ((1, _pack_codes), (2, _to_f16_t), (3, _to_f16_t)):
            name = n.inputs[i]
            if all(u.op == "wdense" and j == i and _wdense_gemv_ok(ctx, u) for u, j in ctx.uses(name)):
                out[name] = fn
    return out


def wdense_gemv_kernel(ctx: _Ctx, n, args):
    """``wdense`` int4 with few rows (decode): hwcomp's GEMV with the dequant, bias and activation fused
    (schedules/gemv_int4.py)."""
    if not _wdense_gemv_ok(ctx, n):
        return None
    from tvm import relax
    g = ctx.g
    xs = g.types[n.inputs[0]].shape
    k, nn = (int(d) for d in g.types[n.inputs[1]].shape)
    m = int(np.prod(xs[:-1]))
    grp = int(n.attrs["group_size"])
    act = n.attr("activation", "none")

    def make():
        from .startup import import_tensor_intrinsics
        import_tensor_intrinsics()
        import hwcomp.schedules.gemv_int4 as gi
        return gi.gemv_int4_func(m, nn, k, grp, act=act), gi.gemv_int4(m, nn, k, grp, ctx.arch, act=act)

    gv = _kernel(ctx, f"gemv_int4_{m}x{nn}x{k}_g{grp}_{act}", make)
    if gv is None:
        return None
    ops = []
    for i in (1, 2, 3):
        name = n.inputs[i]
        if name in ctx.repacked:
            ops.append(args[i])
        else:  # a small constant, or one shared with other ops: repacked here, inlined
            ops.append(relax.const((_pack_codes if i == 1 else _to_f16_t)(g.constants[name])))
    if len(args) > 4 and args[4] is not None:
        bias = args[4]
        if g.types[n.inputs[4]].dtype.value != "float16":
            bias = ctx.emit(relax.op.astype(bias, "float16"))
    else:
        bias = relax.const(np.zeros(nn, np.float16))
    y = _call(ctx, gv, [_reshape(ctx, args[0], [m, k])] + ops + [bias], [m, nn])
    return _reshape(ctx, y, list(xs[:-1]) + [nn])


# ---- integer GELU (+ requantization) ------------------------------------------------------------------------

def int_gelu_kernel(ctx: _Ctx, n, args):
    """``int_gelu`` with its requantization (relax_lowering.int_gelu_plan) as a vectorized elementwise kernel:
    4 elements per thread (8-byte int16 / 4-byte int8 accesses, int4/longlong4 arithmetic), where dlight's
    fallback gave one element per thread."""
    if ctx.target != "cuda":
        return None
    plan = relax_lowering.int_gelu_plan(ctx, n)
    if plan is None:
        return None
    from tvm import relax, te

    compute, mult, shift, s_dtype = plan
    g = ctx.g
    shape = [int(d) for d in g.types[n.inputs[0]].shape]
    ch, rows = shape[-1], int(np.prod(shape[:-1]))
    in_dt, out_dt = g.types[n.inputs[0]].dtype.value, g.types[n.outputs[0]].dtype.value
    consts = (n.attrs["b_int"], n.attrs["one_int"], n.attr("out_zero_point", 0), n.attr("out_bits", 8), s_dtype)
    tag = hashlib.sha1(repr(consts).encode()).hexdigest()[:8]  # the kernel's baked-in constants

    def make():
        from hwcomp.schedules.gelu import ElementwiseRule
        x = te.placeholder((rows, ch), in_dt, name="x")
        m = te.placeholder((ch,), "int32", name="multiplier")
        sh = te.placeholder((ch,), s_dtype, name="shift")
        definition = te.create_prim_func([x, m, sh, compute(x, m, sh)])
        return definition, ElementwiseRule(threads=256, vector=4).apply(definition, "int_gelu")

    gv = _kernel(ctx, f"int_gelu_{rows}x{ch}_{in_dt}_{out_dt}_{tag}", make)
    if gv is None:
        return None
    y = _call(ctx, gv, [_reshape(ctx, args[0], [rows, ch]), relax.const(mult, "int32"),
                        relax.const(shift, s_dtype)], [rows, ch], out_dt)
    return _reshape(ctx, y, shape)


FUSED_KERNELS.update({"wdense": wdense_gemv_kernel, "int_gelu": int_gelu_kernel})
FUSED_KERNELS.update({"Split": split_kernel, "dense": dense_kernel, "attention": attention_kernels, "layer_norm": layer_norm_kernel,
                      "add_layer_norm": layer_norm_kernel, "qdense": qdense_kernel, "qattention": qattention_kernels})


def apply_hwcomp_schedules(mod, kernel_schedules: dict[str, object], only: set[str] | None = None):
    """Replace every kernel definition still unscheduled (no tuning record took it) by hwcomp's schedule
    (``only``: just these kernels)."""
    from tvm import tirx
    for gv, f in list(mod.functions.items()):
        if not isinstance(f, tirx.PrimFunc) or not f.attrs or KERNEL_ATTR not in f.attrs:
            continue
        if f.attrs.get("tirx.is_scheduled", False):
            continue
        name = str(f.attrs[KERNEL_ATTR])
        if only is not None and name not in only:
            continue
        mod.update_func(gv, kernel_schedules[name].with_attr("tirx.is_scheduled", True)
                        .with_attr(SCHEDULE_SOURCE_ATTR, "hwcomp"))
    return mod
