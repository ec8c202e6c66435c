"""``qattention`` (integer attention with the I-BERT softmax) on CUDA, bit-exact with ``hwcomp/ops/quantized.py``.

Layouts: q, k, v ``[B, S, H*D]`` int8 (symmetric, zero point 0; heads read in place); mask ``[Bm, Sqm, Sk]``
int32, the additive float mask already converted to score units (``clip(rint(mask / score_scale), ±2^30)``,
done by the lowering in float64 as the interpreter does); out ``[B, Sq, H*D]`` int8 (requantized) or float32.

Four kernels:

* ``qattn_scores(q, k, mask, scores)``: ``scores[b, h, i, j] = sum_d q·k + mask`` in int32 on int8 tensor cores
  (``mma.sync m16n8k32``; K is ``[Sk, D]`` row-major, exactly the ``[N, K]`` operand the int8 mma wants),
  ``-2^30`` above the diagonal when ``causal``;
* ``qattn_softmax(scores, probs)``: ``intmath.int_softmax`` per row in int64 (row max, ``i_exp``, row sum,
  one ``2^62 // sum`` factor), probabilities ``0 .. 2^prob_bits - 1`` written as float16 — integers that
  float16 holds exactly;
* ``v`` cast to float16 (exact for int8) by an elementwise kernel of the lowering;
* ``qattn_pv(probs, v, out)``: ``sum_j p·v`` on fp16 tensor cores with fp32 accumulation, heads merged on store,
  then the requantization (int64) or the float32 dequant epilogue. The products are integers below 2^15 and
  every partial sum stays below ``Sk * (2^prob_bits - 1) * 128 < 2^24``, so fp32 holds every intermediate
  exactly and the accumulator equals the interpreter's int32 ``p @ v`` bit for bit (the kernel refuses shapes
  where that bound does not hold). int8 mma cannot be used for PV: it needs V as ``[D, Sk]`` and ``ldmatrix``
  cannot transpose bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import s_tir, te, tirx

from ._mma import pick_config, schedule_mma
from .attention import _schedule_softmax, pv_heads_func, schedule_pv, scores_heads_func
from .errors import ScheduleError
from .qdense import exact_mul, requantize_expr

CAUSAL_FILL = -(1 << 30)
FP32_EXACT = 1 << 24  # every integer of magnitude below this is a float32


def check_exact(s_k: int, prob_bits: int) -> None:
    """PV in fp32 is exact when every partial sum of p (< 2^prob_bits) times v (|v| <= 128) is below 2^24."""
    if s_k * ((1 << prob_bits) - 1) * 128 >= FP32_EXACT:
        raise ScheduleError(f"qattention PV with Sk={s_k}, prob_bits={prob_bits} could exceed 2^24 in fp32; "
                            "use Sk * (2^prob_bits - 1) * 128 < 2^24")


def qscores_func(b: int, s_q: int, s_k: int, h: int, d: int, causal: bool = False, has_mask: bool = True,
                 mask_batch: int | None = None, mask_rows: int = 1) -> tirx.PrimFunc:
    return scores_heads_func(b, s_q, s_k, h, d, "int8", "int32", None, CAUSAL_FILL, causal, has_mask,
                             mask_batch, mask_rows, "qattn_scores")


def int_softmax_compute(x: te.Tensor, exp_ln2: int, exp_b: int, exp_c: int, prob_bits: int = 8,
                        max_shift: int = 30, out_dtype: str = "float16",
                        names: tuple[str, ...] = ("row_max", "row_sum", "row_factor", "normalize")) -> te.Tensor:
    """``intmath.int_softmax`` over the last axis of int32 scores ``x`` (any leading axes) -> probabilities
    ``0 .. 2^prob_bits - 1`` as ``out_dtype`` (float16 holds them exactly)."""
    if exp_ln2 >= 0:
        raise ScheduleError(f"exp_ln2 {exp_ln2} must be negative (floor(-ln2 / S))")
    i64, i32 = "int64", "int32"
    lead, s_k = tuple(int(d) for d in x.shape[:-1]), int(x.shape[-1])
    k1 = te.reduce_axis((0, s_k), name="k1")
    mx = te.compute(lead, lambda *i: te.max(x[(*i, k1)].astype(i64), axis=k1), name=names[0])
    # After the clamp, x - max lies in [max_shift * exp_ln2, 0]: where that fits int32, the division by ln2 and
    # the remainder run in 32 bits (a 64-bit division is a long emulated sequence on a GPU) and the
    # polynomial in one widening multiply. Same integers as intmath.i_exp.
    narrow = max_shift * -exp_ln2 < 2**31
    t = i32 if narrow else i64

    def i_exp(i, j):
        v = tirx.max(x[(*i, j)].astype(i64) - mx[i], tirx.const(max_shift * exp_ln2, i64)).astype(t)
        ln2 = tirx.const(exp_ln2, t)
        z = tirx.floordiv(v, ln2)
        r = (v - z * ln2).astype(i64)
        poly = r * (r + tirx.const(exp_b, i64)) + tirx.const(exp_c, i64)
        return tirx.shift_right(tirx.max(poly, tirx.const(0, i64)), z.astype(i64))

    k2 = te.reduce_axis((0, s_k), name="k2")
    sm = te.compute(lead, lambda *i: te.sum(i_exp(i, k2), axis=k2), name=names[1])
    # one 64-bit division per row, not per element
    factor = te.compute(lead, lambda *i: tirx.floordiv(tirx.const(1 << 62, i64), tirx.max(sm[i], tirx.const(1, i64))),
                        name=names[2])

    def normalize(*idx):
        i, j = idx[:-1], idx[-1]
        p = tirx.shift_right(i_exp(i, j) * factor[i], tirx.const(62 - prob_bits, i64))
        return tirx.min(p, tirx.const((1 << prob_bits) - 1, i64)).astype(out_dtype)

    return te.compute((*lead, s_k), normalize, name=names[3])


def int_softmax_func(rows: int, s_k: int, exp_ln2: int, exp_b: int, exp_c: int, prob_bits: int = 8,
                     max_shift: int = 30) -> tirx.PrimFunc:
    """``intmath.int_softmax`` over the rows of int32 scores -> float16 probabilities (integer-valued)."""
    x = te.placeholder((rows, s_k), "int32", name="scores")
    p = int_softmax_compute(x, exp_ln2, exp_b, exp_c, prob_bits, max_shift)
    return te.create_prim_func([x, p]).with_attr("global_symbol", "qattn_softmax")


@dataclass(frozen=True)
class Epilogue:
    """The output stage of ``qattention``, per output channel c of ``H*D``: requantization with
    ``multiplier[c]``/``shift[c]`` (int32 buffers), ``out_zero_point`` and signed ``out_bits``; or, ``dequant``,
    float32 ``acc * scale[c]`` (a float32 buffer), through ``__fmul_rn`` when ``exact``."""

    dequant: bool = False
    out_zero_point: int = 0
    out_bits: int = 8
    exact: bool = False

    @property
    def dtype(self) -> str:
        return "float32" if self.dequant else f"int{self.out_bits}"

    def requant(self, acc: tirx.PrimExpr, mult: tirx.PrimExpr, shift: tirx.PrimExpr) -> tirx.PrimExpr:
        """acc: the fp32 accumulator (an exact integer)."""
        lo, hi = -(1 << (self.out_bits - 1)), (1 << (self.out_bits - 1)) - 1
        return requantize_expr(acc.astype("int64"), mult, shift, self.out_zero_point, lo, hi, self.dtype)

    def scale(self, acc: tirx.PrimExpr, scale: tirx.PrimExpr) -> tirx.PrimExpr:
        return exact_mul(acc.astype("int32").astype("float32"), scale, self.exact)


def qpv_func(b: int, s_q: int, s_k: int, h: int, d: int, epilogue: Epilogue) -> tirx.PrimFunc:
    """``(probs, v, multiplier, shift, out)`` or, dequant, ``(probs, v, scale, out)``; per-channel ``[H*D]``."""
    if epilogue.dequant:
        scale = te.placeholder((h * d,), "float32", name="scale")
        return pv_heads_func(b, s_q, s_k, h, d, lambda acc, c: epilogue.scale(acc, scale[c]), [scale],
                             epilogue.dtype, "qattn_pv")
    mult = te.placeholder((h * d,), "int32", name="multiplier")
    shift = te.placeholder((h * d,), "int32", name="shift")
    return pv_heads_func(b, s_q, s_k, h, d, lambda acc, c: epilogue.requant(acc, mult[c], shift[c]), [mult, shift],
                         epilogue.dtype, "qattn_pv")


@dataclass(frozen=True)
class QAttentionKernels:
    scores: tirx.PrimFunc
    softmax: tirx.PrimFunc
    pv: tirx.PrimFunc


def qattention(b: int, s_q: int, s_k: int, h: int, d: int, *, exp_ln2: int, exp_b: int, exp_c: int,
               prob_bits: int = 8, epilogue: Epilogue = Epilogue(), causal: bool = False, has_mask: bool = True,
               mask_batch: int | None = None, mask_rows: int = 1, softmax_threads: int = 32) -> QAttentionKernels:
    """Scheduled kernels (module docstring): int8 mma scores, integer softmax, exact fp16-mma PV."""
    check_exact(s_k, prob_bits)
    sch = s_tir.Schedule(qscores_func(b, s_q, s_k, h, d, causal, has_mask, mask_batch, mask_rows))
    schedule_mma(sch, pick_config(b * h * s_q, s_k, d, 32), "int8", "int32", trans_b=True)
    scores = sch.mod["main"].with_attr("tirx.is_scheduled", True)
    pv = schedule_pv(qpv_func(b, s_q, s_k, h, d, epilogue))
    softmax = _schedule_softmax(int_softmax_func(b * h * s_q, s_k, exp_ln2, exp_b, exp_c, prob_bits),
                                min(softmax_threads, s_k))
    return QAttentionKernels(scores, softmax, pv)
