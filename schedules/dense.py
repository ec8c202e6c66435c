"""``dense`` fp16: ``act(x[M, K] @ w[K, N] + bias[N])`` with fp32 accumulation on tensor cores.

Layouts: x row-major ``[M, K]`` fp16, w ``[K, N]`` fp16 (hwcomp's layout, no transpose needed: B goes
through ``ldmatrix.trans``), bias ``[N]`` fp16, out ``[M, N]`` fp16. Accumulation, bias and activation in
fp32; one rounding to fp16 at the end. Activations: none, gelu (erf), gelu_tanh, relu, tanh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tvm import s_tir, te, tirx

from ._mma import MmaConfig, pick_config, schedule_mma
from .errors import ScheduleError

ACTIVATIONS = ("none", "gelu", "gelu_tanh", "relu", "tanh")


def activation(v: tirx.PrimExpr, name: str) -> tirx.PrimExpr:
    """fp32 activation expression, the same formulas as hwcomp's numpy reference."""
    if name == "none":
        return v
    if name == "gelu":
        return 0.5 * v * (1.0 + tirx.erf(v * (1.0 / math.sqrt(2.0))))
    if name == "gelu_tanh":
        return 0.5 * v * (1.0 + tirx.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * v * v * v)))
    if name == "relu":
        return tirx.max(v, tirx.const(0.0, "float32"))
    if name == "tanh":
        return tirx.tanh(v)
    raise ScheduleError(f"dense activation {name!r} is not one of {ACTIVATIONS}")


def _bias_activation(acc: tirx.PrimExpr, bias: tirx.PrimExpr | None, act: str) -> tirx.PrimExpr:
    """The dense epilogue of one fp32 accumulator: + bias (fp16), activation in fp32, one rounding to fp16."""
    v = acc + bias.astype("float32") if bias is not None else acc
    return activation(v, act).astype("float16")


def dense_f16_func(m: int, n: int, k: int, act: str = "none", has_bias: bool = True) -> tirx.PrimFunc:
    """Unscheduled PrimFunc ``dense_f16(x, w, [bias,] out)``; valid on any target as it is."""
    x = te.placeholder((m, k), "float16", name="x")
    w = te.placeholder((k, n), "float16", name="w")
    b = te.placeholder((n,), "float16", name="bias")
    r = te.reduce_axis((0, k), name="k")
    acc = te.compute((m, n), lambda i, j: te.sum(x[i, r].astype("float32") * w[r, j].astype("float32"), axis=r),
                     name="matmul")

    out = te.compute((m, n), lambda i, j: _bias_activation(acc[i, j], b[j] if has_bias else None, act),
                     name="epilogue")
    args = [x, w, b, out] if has_bias else [x, w, out]
    return te.create_prim_func(args).with_attr("global_symbol", f"dense_f16_{act}")


@dataclass(frozen=True)
class DenseF16Rule:
    """Schedule rule for ``dense`` fp16; ``configs`` maps a target arch to a fixed tile (else picked)."""

    configs: dict[str, MmaConfig] = field(default_factory=dict)

    def apply(self, func: tirx.PrimFunc, arch: str = "sm_90") -> tirx.PrimFunc:
        m, k = (int(d) for d in func.params[0].shape)
        n = int(func.params[1].shape[1])
        cfg = self.configs.get(arch) or pick_config(m, n, k, 16)
        sch = s_tir.Schedule(func)
        schedule_mma(sch, cfg, "float16", "float32", trans_b=False)
        return sch.mod["main"].with_attr("tirx.is_scheduled", True)


def dense_f16(m: int, n: int, k: int, act: str = "none", has_bias: bool = True, arch: str = "sm_90",
              config: MmaConfig | None = None) -> tirx.PrimFunc:
    """Scheduled tensor-core PrimFunc for ``dense`` fp16 (see module docstring for layouts)."""
    rule = DenseF16Rule({arch: config} if config else {})
    return rule.apply(dense_f16_func(m, n, k, act, has_bias), arch)


def splitk_factor(m: int, n: int, k: int) -> int:
    """K splits for a GEMM with few output tiles and a long K (FFN-down at batch 1: 128x768x3072), else 1.
    Unsplit, its ~100 thread blocks each walk K=3072 (14.7 us on an H100 against cuBLAS's split-K 7.4 us)."""
    if m * n > 256 * 1024 or k < 2048:
        return 1
    return next((s for s in (4, 2) if k % (s * 64) == 0 and k // s >= 512), 1)


def dense_f16_splitk_funcs(m: int, n: int, k: int, splits: int, act: str = "none",
                           has_bias: bool = True) -> tuple[tirx.PrimFunc, tirx.PrimFunc]:
    """Unscheduled ``(partial(x, w, part), reduce(part, [bias,] out))`` of a split-K ``dense`` fp16:
    ``part[s] = x[:, s*Kc:(s+1)*Kc] @ w[s*Kc:(s+1)*Kc]`` in fp32, then ``out = act(sum_s part[s] + bias)``."""
    if k % splits:
        raise ScheduleError(f"K={k} does not split {splits} ways")
    kc = k // splits
    x = te.placeholder((m, k), "float16", name="x")
    w = te.placeholder((k, n), "float16", name="w")
    r = te.reduce_axis((0, kc), name="k")
    acc = te.compute((splits, m, n), lambda s, i, j: te.sum(
        x[i, s * kc + r].astype("float32") * w[s * kc + r, j].astype("float32"), axis=r), name="matmul")
    part = te.compute((splits, m, n), lambda s, i, j: acc[s, i, j], name="epilogue")
    partial = te.create_prim_func([x, w, part]).with_attr("global_symbol", "dense_f16_partial")

    p = te.placeholder((splits, m, n), "float32", name="part")
    b = te.placeholder((n,), "float16", name="bias")
    rs = te.reduce_axis((0, splits), name="s")
    total = te.compute((m, n), lambda i, j: te.sum(p[rs, i, j], axis=rs), name="split_sum")

    out = te.compute((m, n), lambda i, j: _bias_activation(total[i, j], b[j] if has_bias else None, act),
                     name="epilogue")
    reduce = te.create_prim_func([p, b, out] if has_bias else [p, out]).with_attr("global_symbol",
                                                                                  "dense_f16_reduce")
    return partial, reduce


def dense_f16_splitk(m: int, n: int, k: int, splits: int, act: str = "none", has_bias: bool = True,
                     config: MmaConfig | None = None) -> tuple[tirx.PrimFunc, tirx.PrimFunc]:
    """Scheduled split-K ``dense`` fp16: the partial GEMMs on tensor cores (one grid row per split), then one
    thread per output element sums the splits and applies bias and activation."""
    partial, reduce = dense_f16_splitk_funcs(m, n, k, splits, act, has_bias)
    sch = s_tir.Schedule(partial)
    schedule_mma(sch, config or pick_config(splits * m, n, k // splits, 16), "float16", "float32", trans_b=False)
    partial = sch.mod["main"].with_attr("tirx.is_scheduled", True)

    sch = s_tir.Schedule(reduce)
    epi = sch.get_sblock("epilogue")
    i, j = sch.get_loops(epi)
    bx, tx = sch.split(sch.fuse(i, j), [None, 256])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    total = sch.get_sblock("split_sum")
    sch.compute_at(total, tx)
    sch.set_scope(total, 0, "local")
    return partial, sch.mod["main"].with_attr("tirx.is_scheduled", True)
