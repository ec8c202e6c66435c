"""``qdense`` int8 x int8 -> int32 on tensor cores (``mma.sync m16n8k32``) with a fused epilogue.

Layouts: x ``[M, K]`` int8 row-major; **w ``[N, K]`` int8** (the transpose of hwcomp's ``[K, N]``: the
lowering transposes the constant once, since ``ldmatrix`` cannot transpose bytes); ``bias`` ``[N]``
int32 *with the input zero point folded in* (:func:`fold_input_zero_point`), so that the kernel's
accumulator is exactly hwcomp's ``sum_k (x - x_zp) * w + bias`` with int32 wrap-around.

Epilogues (``hwcomp/ops/intmath.py`` is the specification):

* ``requant``: ``clamp(((acc * m[n] + 2^(s[n]-1)) >> s[n]) + out_zp, lo, hi)`` with the product in int64,
  ``[lo, hi]`` the signed ``out_bits`` range (8 or 16), ``lo = out_zp`` for ``relu`` -> int8/int16 ``[M, N]``;
* ``dequant``: ``float32(acc) * scale[n]`` [relu] -> ``out_dtype`` (fp16 or fp32) ``[M, N]``
  (``scale = x_scale * w_scale[n]``). With ``exact=True`` the product is CUDA's ``__fmul_rn`` (IEEE
  round-to-nearest, never contracted into an FMA nor approximated under ``--use_fast_math``), so a float32
  result equals the interpreter's numpy product bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tvm import s_tir, te, tirx

from ._mma import MmaConfig, pick_config, schedule_mma
from .errors import ScheduleError


def fold_input_zero_point(w_kn: np.ndarray, bias: np.ndarray | None, x_zero_point: int) -> np.ndarray:
    """int32 ``bias - x_zp * sum_k w[k, n]`` (wrapping), so the kernel may multiply raw int8 x."""
    n = w_kn.shape[1]
    b = np.zeros(n, np.int64) if bias is None else np.asarray(bias, np.int64)
    folded = b - np.int64(x_zero_point) * w_kn.astype(np.int64).sum(axis=0)
    return folded.astype(np.int64).astype(np.int32)


def exact_mul(a: tirx.PrimExpr, b: tirx.PrimExpr, exact: bool) -> tirx.PrimExpr:
    """float32 ``a * b``; ``exact``: CUDA's ``__fmul_rn`` (bit-identical to IEEE/numpy whatever the flags)."""
    return tirx.call_pure_extern("float32", "__fmul_rn", a, b) if exact else a * b


def requantize_expr(acc: tirx.PrimExpr, mult: tirx.PrimExpr, shift: tirx.PrimExpr, zero_point: int, lo: int,
                    hi: int, out_dtype: str) -> tirx.PrimExpr:
    """``intmath.requantize`` of one integer accumulator: ((acc * m + 2^(s-1)) >> s) + zero_point,
    saturated to [lo, hi], in int64 (arithmetic shift, floor)."""
    i64 = "int64"
    s = shift.astype(i64)
    y = tirx.shift_right(acc.astype(i64) * mult.astype(i64) + tirx.shift_left(tirx.const(1, i64), s - 1), s)
    y = y + zero_point
    return tirx.max(tirx.min(y, tirx.const(hi, i64)), tirx.const(lo, i64)).astype(out_dtype)


def quantize_expr(v: tirx.PrimExpr, scale: tirx.PrimExpr, zero_point: int, bits: int, exact: bool) -> tirx.PrimExpr:
    """hwcomp's ``quantize`` of float32 v: clip(rint(v / scale) + zero_point) to signed ``bits`` (round half to
    even; the division through CUDA's ``__fdiv_rn`` when ``exact``)."""
    q = tirx.call_pure_extern("float32", "__fdiv_rn", v, scale) if exact else v / scale
    q = tirx.nearbyint(q) + tirx.const(float(zero_point), "float32")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return tirx.max(tirx.min(q, tirx.const(float(hi), "float32")), tirx.const(float(lo), "float32")).astype(f"int{bits}")


def qdense_func(m: int, n: int, k: int, epilogue: str = "requant", out_zero_point: int = 0,
                activation: str = "none", out_bits: int = 8, out_dtype: str = "float16",
                exact: bool = False, residual_quant: tuple[int, int] | None = None,
                requant_as_f16: bool = False, gelu: tuple[int, int] | None = None, n_out: int | None = None,
                lead: tuple[int, ...] | None = None, quantize: int | None = None,
                residual_sum: bool = False) -> tirx.PrimFunc:
    """Unscheduled PrimFunc. requant: ``(x, w_nk, bias, multiplier, shift, out)`` (``requant_as_f16``: the
    requantized integers written as float16, which holds them exactly: an attention's V for its fp16 PV);
    dequant: ``(x, w_nk, bias, scale, out)``; dequant with ``residual_quant=(bits, zero_point)``: the float32
    result plus ``residual`` ``[M, N]`` float32, quantized by ``qscale[n]`` -> ``int<bits>``:
    ``(x, w_nk, bias, scale, residual, qscale, out)`` (hwcomp's qdense -> Add -> quantize chain, one kernel);
    requant with ``gelu=(b_int, one_int)``: the GEMM requantized to int8 at zero point 0, then hwcomp's
    ``int_gelu`` (``intmath.int_gelu``) requantized by ``gelu_multiplier``/``gelu_shift`` to ``int<out_bits>``
    at ``out_zero_point``: ``(x, w_nk, bias, multiplier, shift, gelu_multiplier, gelu_shift, out)``. float32
    dequant with ``n_out``: ``out`` holds the first ``n_out`` of the ``n`` columns, shaped ``[*lead, n_out]``
    (``lead``: row-major leading dims whose product is ``m``): an LM head's logits as the graph output. dequant
    with ``quantize=zero_point``: the float32 result quantized by ``qscale[n]`` to int8 (float16 values with
    ``requant_as_f16``): ``(x, w_nk, bias, scale, qscale, out)``. ``residual_quant`` with ``residual_sum``:
    the float32 sum is an output too, ``(x, w_nk, bias, scale, residual, qscale, out, sum)`` (pre-LN models, whose
    residual stream reads it again)."""
    if out_bits not in (8, 16):
        raise ScheduleError(f"qdense out_bits {out_bits} is not 8 or 16")
    if out_dtype not in ("float16", "float32"):
        raise ScheduleError(f"qdense out_dtype {out_dtype!r} is not float16 or float32")
    if activation not in ("none", "relu"):
        raise ScheduleError(f"qdense activation {activation!r} is not 'none' or 'relu'")
    x = te.placeholder((m, k), "int8", name="x")
    w = te.placeholder((n, k), "int8", name="w")
    b = te.placeholder((n,), "int32", name="bias")
    r = te.reduce_axis((0, k), name="k")
    acc = te.compute((m, n), lambda i, j: te.sum(x[i, r].astype("int32") * w[j, r].astype("int32"), axis=r),
                     name="matmul")
    if gelu is not None:
        mult = te.placeholder((n,), "int32", name="multiplier")
        shift = te.placeholder((n,), "int32", name="shift")
        gmult = te.placeholder((n,), "int32", name="gelu_multiplier")
        gshift = te.placeholder((n,), "int32", name="gelu_shift")
        b_int, one_int = (int(v) for v in gelu)
        lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
        i64 = "int64"

        def requant_gelu(i, j):
            q = requantize_expr((acc[i, j] + b[j]).astype(i64), mult[j], shift[j], 0, -128, 127, i64)
            t = tirx.min(tirx.abs(q), tirx.const(b_int, i64)) - b_int
            sign = tirx.Select(q > 0, tirx.const(1, i64), tirx.Select(q < 0, tirx.const(-1, i64), tirx.const(0, i64)))
            g = q * (sign * (one_int - t * t) + one_int)
            return requantize_expr(g, gmult[j], gshift[j], out_zero_point, lo, hi, f"int{out_bits}")

        out = te.compute((m, n), requant_gelu, name="epilogue")
        args = [x, w, b, mult, shift, gmult, gshift, out]
    elif epilogue == "requant":
        mult = te.placeholder((n,), "int32", name="multiplier")
        shift = te.placeholder((n,), "int32", name="shift")
        lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
        lo = max(out_zero_point, lo) if activation == "relu" else lo
        odt = f"int{out_bits}"

        def requant(i, j):
            a = (acc[i, j] + b[j]).astype("int64")
            q = requantize_expr(a, mult[j], shift[j], out_zero_point, lo, hi, odt)
            return q.astype("float16") if requant_as_f16 else q

        out = te.compute((m, n), requant, name="epilogue")
        args = [x, w, b, mult, shift, out]
    elif epilogue == "dequant":
        scale = te.placeholder((n,), "float32", name="scale")
        res = te.placeholder((m, n), "float32", name="residual")
        qscale = te.placeholder((n,), "float32", name="qscale")

        def dequant(i, j):
            y = exact_mul((acc[i, j] + b[j]).astype("float32"), scale[j], exact)
            if activation == "relu":
                y = tirx.max(y, tirx.const(0.0, "float32"))
            if residual_quant is not None and residual_sum:
                return y + res[i, j]
            if residual_quant is not None:
                return quantize_expr(y + res[i, j], qscale[j], residual_quant[1], residual_quant[0], exact)
            if quantize is not None:
                q = quantize_expr(y, qscale[j], int(quantize), 8, exact)
                return q.astype("float16") if requant_as_f16 else q
            return y.astype(out_dtype) if out_dtype != "float32" else y

        if n_out is not None:
            lead = tuple(lead or (m,))
            if residual_quant is not None or out_dtype != "float32" or int(np.prod(lead)) != m or not 0 < n_out <= n:
                raise ScheduleError(f"qdense: unpadded float32 output of {n_out} of {n} columns in rows {lead}")

            def unpadded(*idx):
                i = idx[0]
                for d, v in zip(lead[1:], idx[1:-1]):
                    i = i * d + v
                return dequant(i, idx[-1])

            out = te.compute((*lead, n_out), unpadded, name="epilogue")
        else:
            out = te.compute((m, n), dequant, name="epilogue")
        args = [x, w, b, scale] + ([res, qscale] if residual_quant is not None else
                                   [qscale] if quantize is not None else []) + [out]
        if residual_sum:
            if residual_quant is None or n_out is not None:
                raise ScheduleError("qdense: the float32 residual sum is an output of the residual-quantize epilogue")
            total = out
            out = te.compute((m, n), lambda i, j: quantize_expr(total[i, j], qscale[j], residual_quant[1],
                                                                residual_quant[0], exact), name="quantize")
            args = args[:-1] + [out, total]
    else:
        raise ScheduleError(f"qdense epilogue {epilogue!r} is not 'requant' or 'dequant'")
    return te.create_prim_func(args).with_attr("global_symbol", f"qdense_{epilogue}")


@dataclass(frozen=True)
class QDenseRule:
    """Schedule rule for int8 ``qdense``; ``configs`` maps a target arch to a fixed tile (else picked)."""

    configs: dict[str, MmaConfig] = field(default_factory=dict)

    def apply(self, func: tirx.PrimFunc, arch: str = "sm_90") -> tirx.PrimFunc:
        m, k = (int(d) for d in func.params[0].shape)
        n = int(func.params[1].shape[0])
        cfg = self.configs.get(arch) or pick_config(m, n, k, 32)
        sch = s_tir.Schedule(func)
        schedule_mma(sch, cfg, "int8", "int32", trans_b=True)
        return sch.mod["main"].with_attr("tirx.is_scheduled", True)


def qdense(m: int, n: int, k: int, epilogue: str = "requant", out_zero_point: int = 0,
           activation: str = "none", arch: str = "sm_90", config: MmaConfig | None = None, out_bits: int = 8,
           out_dtype: str = "float16", exact: bool = False, residual_quant: tuple[int, int] | None = None
           ) -> tirx.PrimFunc:
    """Scheduled tensor-core PrimFunc for int8 ``qdense`` (layouts in the module docstring)."""
    rule = QDenseRule({arch: config} if config else {})
    return rule.apply(qdense_func(m, n, k, epilogue, out_zero_point, activation, out_bits, out_dtype, exact,
                                  residual_quant), arch)
