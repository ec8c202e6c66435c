"""``layer_norm`` and ``add_layer_norm`` over the last axis, fp16 in/out, fp32 statistics.

Layouts: x (and residual) ``[M, C]`` fp16 (flatten leading axes), gamma/beta ``[C]`` fp16.
``layer_norm_f16`` -> ``y``; ``add_layer_norm_f16`` -> ``(y, s)`` with ``s = x + residual`` rounded to fp16
(hwcomp's second output, written by a second, elementwise kernel) and ``y = layer_norm(s)``. Two-pass statistics (mean, then mean of squared
deviations) as ONNX's reference computes them.

Schedule: one thread block per row, ``threads`` threads; each statistic is a cross-thread reduction
(warp shuffles + shared memory, TVM's allreduce lowering); rows are re-read from L1/L2, not DRAM.
"""

from __future__ import annotations

from dataclasses import dataclass

from tvm import s_tir, te, tirx

from .errors import ScheduleError


def layer_norm_func(m: int, c: int, eps: float = 1e-5, residual: bool = False) -> tirx.PrimFunc:
    x = te.placeholder((m, c), "float16", name="x")
    res = te.placeholder((m, c), "float16", name="residual")
    gamma = te.placeholder((c,), "float16", name="gamma")
    beta = te.placeholder((c,), "float16", name="beta")

    def inp(i, j):  # the residual sum rounded to fp16 (hwcomp's second output), normalized as rounded
        return ((x[i, j] + res[i, j]) if residual else x[i, j]).astype("float32")

    k1 = te.reduce_axis((0, c), name="k1")
    total = te.compute((m,), lambda i: te.sum(inp(i, k1), axis=k1), name="row_sum")
    k2 = te.reduce_axis((0, c), name="k2")
    sq = te.compute((m,), lambda i: te.sum((inp(i, k2) - total[i] / c) * (inp(i, k2) - total[i] / c), axis=k2),
                    name="row_sq")
    y = te.compute((m, c), lambda i, j: ((inp(i, j) - total[i] / c) * tirx.rsqrt(sq[i] / c + eps)
                                         * gamma[j].astype("float32") + beta[j].astype("float32")).astype("float16"),
                   name="normalize")
    if residual:
        s_out = te.compute((m, c), lambda i, j: x[i, j] + res[i, j], name="residual_sum")
        return te.create_prim_func([x, res, gamma, beta, y, s_out]).with_attr("global_symbol", "add_layer_norm_f16")
    return te.create_prim_func([x, gamma, beta, y]).with_attr("global_symbol", "layer_norm_f16")


@dataclass(frozen=True)
class LayerNormRule:
    threads: int = 256

    def apply(self, func: tirx.PrimFunc) -> tirx.PrimFunc:
        sch = s_tir.Schedule(func)
        out = sch.get_sblock("normalize")
        c = int(func.params[0].shape[1])
        if c % self.threads and c < self.threads:
            raise ScheduleError(f"layer_norm width C={c} is below threads={self.threads}; use fewer threads")
        row, col = sch.get_loops(out)
        sch.bind(row, "blockIdx.x")
        _, tx = sch.split(col, [None, self.threads])
        sch.bind(tx, "threadIdx.x")
        for name in ("row_sq", "row_sum"):
            blk = sch.get_sblock(name)
            sch.compute_at(blk, row)
            sch.set_scope(blk, 0, "shared")
            (k,) = sch.get_loops(blk)[-1:]
            _, ktx = sch.split(k, [None, self.threads])
            sch.bind(ktx, "threadIdx.x")
        if len(func.params) == 6:  # add_layer_norm's second output, x + residual: its own elementwise kernel
            out = sch.get_sblock("residual_sum")  # (it depends on no statistic, so compute-at cannot place it)
            flat = sch.fuse(*sch.get_loops(out))
            bx, tx = sch.split(flat, [None, self.threads])
            sch.bind(bx, "blockIdx.x")
            sch.bind(tx, "threadIdx.x")
        return sch.mod["main"].with_attr("tirx.is_scheduled", True)


def layer_norm(m: int, c: int, eps: float = 1e-5, residual: bool = False, threads: int = 256) -> tirx.PrimFunc:
    """Scheduled PrimFunc: ``layer_norm_f16(x, gamma, beta, y)`` or
    ``add_layer_norm_f16(x, residual, gamma, beta, y, s)``."""
    return LayerNormRule(threads).apply(layer_norm_func(m, c, eps, residual))
