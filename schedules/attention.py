"""``attention`` fp16 as three kernels: tensor-core QKᵀ (+scale, mask, causal), row softmax, tensor-core PV.

Layouts: q, k, v ``[B, S, H*D]`` fp16 (hwcomp's layout, heads read in place: no transposes);
mask ``[Bm, Sqm, Sk]`` float32 additive mask shared by all heads, broadcast over batch (``Bm`` = 1 or B)
and query rows (``Sqm`` = 1 or Sq): BERT's key padding mask is ``[B, 1, Sk]``, GPT-2's causal+padding
mask ``[B or 1, Sq, Sk]`` (the lowering reshapes ONNX's ``[Bm, 1, Sqm, Sk]``); out ``[B, Sq, H*D]`` fp16.

* ``attn_scores(q, k, mask, scores)``: ``scores[b, h, i, j] = sum_d q·k * scale + mask[b, i, j]`` (fp32 out,
  ``-3.4e38`` above the diagonal when ``causal``), batched mma over (b, h);
* ``attn_softmax(scores, probs)``: fp16 probabilities, one thread block per row, fp32 max/sum;
* ``attn_pv(probs, v, out)``: ``out[b, i, h*D + d] = sum_j p·v``, batched mma, heads merged on store.

A single FlashAttention-style kernel (scores kept on chip) is future work: TensorIR's mma tensorization
wants the whole reduction in one block, and the online softmax rescale does not fit that mould yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import s_tir, te, tirx

from ._mma import MmaConfig, pick_config, schedule_mma
from ._rows import place_row_values
from .errors import ScheduleError

NEG_INF = -3.4e38


def mask_batch_of(b: int, s_q: int, s_k: int, mask_batch: int | None, mask_rows: int) -> int:
    """The mask's batch extent (``mask_batch``, default B), checked to broadcast: Bm in {1, B}, Sqm in {1, Sq}."""
    mb = b if mask_batch is None else mask_batch
    if mb not in (1, b) or mask_rows not in (1, s_q):
        raise ScheduleError(f"attention mask [{mb}, {mask_rows}, {s_k}] does not broadcast to [{b}, {s_q}, {s_k}]")
    return mb


def _head_col(off: int, hh, d: int, x):
    """Column of head ``hh``'s element ``x`` in a ``[B, S, ...]`` tensor whose heads start at column ``off``."""
    return hh * d + x if off == 0 else off + hh * d + x


def scores_compute(q: te.Tensor, k: te.Tensor, mask: te.Tensor, h: int, d: int, acc_dtype: str, scale: float | None,
                   causal_fill: float, causal: bool, has_mask: bool, offsets: tuple[int, int] = (0, 0),
                   names: tuple[str, str] = ("matmul", "epilogue")) -> te.Tensor:
    """``scores[b, h, i, j] = (sum_d q·k) [* scale] [+ mask]`` accumulated in ``acc_dtype``, ``causal_fill`` above
    the diagonal (offset by Sk - Sq) when ``causal``. Heads are read in place from q ``[B, Sq, ...]`` and
    k ``[B, Sk, ...]`` at column ``offsets`` (a fused QKV projection); mask ``[Bm, Sqm, Sk]`` broadcasts."""
    b, s_q, s_k = int(q.shape[0]), int(q.shape[1]), int(k.shape[1])
    mb, mask_rows = int(mask.shape[0]), int(mask.shape[1])
    r = te.reduce_axis((0, d), name="d")
    acc = te.compute((b, h, s_q, s_k), lambda bb, hh, i, j: te.sum(
        q[bb, i, _head_col(offsets[0], hh, d, r)].astype(acc_dtype)
        * k[bb, j, _head_col(offsets[1], hh, d, r)].astype(acc_dtype), axis=r), name=names[0])

    def epi(bb, hh, i, j):
        v = acc[bb, hh, i, j] if scale is None else acc[bb, hh, i, j] * scale
        if has_mask:
            v = v + mask[bb if mb > 1 else 0, i if mask_rows > 1 else 0, j]
        if causal:
            v = tirx.Select(j > i + (s_k - s_q), tirx.const(causal_fill, acc_dtype), v)
        return v

    return te.compute((b, h, s_q, s_k), epi, name=names[1])


def pv_compute(p: te.Tensor, v: te.Tensor, h: int, d: int, epilogue, v_offset: int = 0,
               names: tuple[str, str, str] = ("pv_acc", "epilogue", "merge_heads")) -> te.Tensor:
    """``acc[b, h, i, j] = sum_r p·v`` (fp32 accumulation) with v's heads read in place at column ``v_offset``,
    ``epilogue(acc, channel)`` per element (channel = ``h*D + j``), stored with the heads merged:
    ``[B, Sq, H*D]``."""
    b, _, s_q, s_k = (int(x) for x in p.shape)
    r = te.reduce_axis((0, s_k), name="r")
    acc = te.compute((b, h, s_q, d), lambda bb, hh, i, j: te.sum(
        p[bb, hh, i, r].astype("float32") * v[bb, r, _head_col(v_offset, hh, d, j)].astype("float32"), axis=r),
        name=names[0])
    epi = te.compute((b, h, s_q, d), lambda bb, hh, i, j: epilogue(acc[bb, hh, i, j], hh * d + j), name=names[1])
    return te.compute((b, s_q, h * d), lambda bb, i, c: epi[bb, c // d, i, c % d], name=names[2])


def scores_heads_func(b: int, s_q: int, s_k: int, h: int, d: int, in_dtype: str, acc_dtype: str,
                      scale: float | None, causal_fill: float, causal: bool = False, has_mask: bool = True,
                      mask_batch: int | None = None, mask_rows: int = 1, name: str = "attn_scores") -> tirx.PrimFunc:
    """``(q, k, [mask,] scores)`` of :func:`scores_compute`; q, k ``[B, S, H*D]`` of ``in_dtype``, mask
    ``[Bm, Sqm, Sk]`` of ``acc_dtype``."""
    mb = mask_batch_of(b, s_q, s_k, mask_batch, mask_rows)
    q = te.placeholder((b, s_q, h * d), in_dtype, name="q")
    k = te.placeholder((b, s_k, h * d), in_dtype, name="k")
    mask = te.placeholder((mb, mask_rows, s_k), acc_dtype, name="mask")
    out = scores_compute(q, k, mask, h, d, acc_dtype, scale, causal_fill, causal, has_mask)
    args = [q, k, mask, out] if has_mask else [q, k, out]
    return te.create_prim_func(args).with_attr("global_symbol", name)


def scores_func(b: int, s_q: int, s_k: int, h: int, d: int, scale: float, causal: bool = False,
                has_mask: bool = True, mask_batch: int | None = None, mask_rows: int = 1) -> tirx.PrimFunc:
    return scores_heads_func(b, s_q, s_k, h, d, "float16", "float32", scale, NEG_INF, causal, has_mask,
                             mask_batch, mask_rows)


def softmax_func(b: int, h: int, s_q: int, s_k: int) -> tirx.PrimFunc:
    x = te.placeholder((b * h * s_q, s_k), "float32", name="scores")
    k1 = te.reduce_axis((0, s_k), name="k1")
    mx = te.compute((b * h * s_q,), lambda i: te.max(x[i, k1], axis=k1), name="row_max")
    k2 = te.reduce_axis((0, s_k), name="k2")
    sm = te.compute((b * h * s_q,), lambda i: te.sum(tirx.exp(x[i, k2] - mx[i]), axis=k2), name="row_sum")
    p = te.compute((b * h * s_q, s_k), lambda i, j: (tirx.exp(x[i, j] - mx[i]) / sm[i]).astype("float16"),
                   name="normalize")
    return te.create_prim_func([x, p]).with_attr("global_symbol", "attn_softmax")


def pv_heads_func(b: int, s_q: int, s_k: int, h: int, d: int, epilogue, extra=(), out_dtype: str = "float16",
                  name: str = "attn_pv") -> tirx.PrimFunc:
    """``(probs, v, *extra, out)`` of :func:`pv_compute` (fp16 in, fp32 accumulation, per-channel epilogue
    parameters in ``extra``). The ``merge_heads`` block is inlined into the epilogue by :func:`schedule_pv`."""
    p = te.placeholder((b, h, s_q, s_k), "float16", name="p")
    v = te.placeholder((b, s_k, h * d), "float16", name="v")
    out = pv_compute(p, v, h, d, epilogue)
    return te.create_prim_func([p, v, *extra, out]).with_attr("global_symbol", name)


def pv_func(b: int, s_q: int, s_k: int, h: int, d: int) -> tirx.PrimFunc:
    return pv_heads_func(b, s_q, s_k, h, d, lambda acc, _c: acc.astype("float16"))


def schedule_pv(func: tirx.PrimFunc, config: MmaConfig | None = None) -> tirx.PrimFunc:
    """Tensor-core schedule of a :func:`pv_heads_func` PrimFunc (its ``merge_heads`` store inlined)."""
    b, h, s_q, s_k = (int(x) for x in func.params[0].shape)
    d = int(func.params[1].shape[2]) // h
    sch = s_tir.Schedule(func)
    sch.reverse_compute_inline(sch.get_sblock("merge_heads"))
    schedule_mma(sch, config or pick_config(b * h * s_q, d, s_k, 16), "float16", "float32", trans_b=False,
                 matmul="pv_acc")  # fp32, beside int32 "matmul" accumulators in int8 modules
    return sch.mod["main"].with_attr("tirx.is_scheduled", True)


@dataclass(frozen=True)
class AttentionConfig:
    scores: MmaConfig | None = None  # None: picked from the shape
    pv: MmaConfig | None = None
    softmax_threads: int = 32  # lanes per row (a warp)


@dataclass(frozen=True)
class AttentionKernels:
    """The three scheduled PrimFuncs and the shapes of the intermediates the lowering allocates."""

    scores: tirx.PrimFunc
    softmax: tirx.PrimFunc
    pv: tirx.PrimFunc
    scores_shape: tuple[int, int, int, int]  # fp32 [B, H, Sq, Sk]; softmax sees it as [B*H*Sq, Sk]
    probs_shape: tuple[int, int, int, int]  # fp16


def _schedule_softmax(func: tirx.PrimFunc, threads: int, rows_per_block: int = 4) -> tirx.PrimFunc:
    """A warp (``threads`` lanes, at most 32) per row, ``rows_per_block`` rows per thread block: the row max and
    row sum are warp-shuffle reductions. (One 128-thread block per row, reducing through shared memory, took
    31.7 us for BERT-base's 49152x128 fp32 scores at batch 32 on an H100.)"""
    sch = s_tir.Schedule(func)
    blk = sch.get_sblock("normalize")
    row, col = sch.get_loops(blk)
    rows = int(sch.get(row).extent)
    rpb = next(r for r in (rows_per_block, 2, 1) if rows % r == 0)
    bx, ty = sch.split(row, [None, rpb])
    sch.bind(bx, "blockIdx.x")
    sch.bind(ty, "threadIdx.y")
    _, tx = sch.split(col, [None, threads])
    sch.bind(tx, "threadIdx.x")
    # Row results stay in registers: the warp reduction leaves them in every lane (in shared memory, lane 0
    # would write them for the other lanes to read without a barrier). Integer softmax: 2^62 / row_sum too.
    place_row_values(sch, ty, threads, "local")
    return sch.mod["main"].with_attr("tirx.is_scheduled", True)


def attention(b: int, s_q: int, s_k: int, h: int, d: int, scale: float | None = None, causal: bool = False,
              has_mask: bool = True, config: AttentionConfig | None = None, mask_batch: int | None = None,
              mask_rows: int = 1) -> AttentionKernels:
    """Scheduled kernels for hwcomp's ``attention`` (see module docstring for the call sequence)."""
    cfg = config or AttentionConfig()
    scale = d ** -0.5 if scale is None else scale
    sch = s_tir.Schedule(scores_func(b, s_q, s_k, h, d, scale, causal, has_mask, mask_batch, mask_rows))
    schedule_mma(sch, cfg.scores or pick_config(b * h * s_q, s_k, d, 16), "float16", "float32", trans_b=True)
    scores = sch.mod["main"].with_attr("tirx.is_scheduled", True)
    pv = schedule_pv(pv_func(b, s_q, s_k, h, d), cfg.pv)
    softmax = _schedule_softmax(softmax_func(b, h, s_q, s_k), min(cfg.softmax_threads, s_k))
    return AttentionKernels(scores, softmax, pv, (b, h, s_q, s_k), (b, h, s_q, s_k))
