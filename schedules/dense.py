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
        return tirx.max(v, tirx.const(0.0, v.dtype))
    if name == "tanh":
        return tirx.tanh(v)
    raise ScheduleError(f"dense activation {name!r} is not one of {ACTIVATIONS}")


def dense_f16_func(m: int, n: int, k: int, act: str = "none", has_bias: bool = True) -> tirx.PrimFunc:
    """Unscheduled PrimFunc ``dense_f16(x, w, [bias,] out)``; valid on any target as it is."""
    x = te.placeholder((m, k), "float16", name="x")
    w = te.placeholder((k, n), "float16", name="w")
    b = te.placeholder((n,), "float16", name="bias")
    r = te.reduce_axis((0, k), name="k")
    acc = te.compute((m, n), lambda i, j: te.sum(x[i, r].astype("float32") * w[r, j].astype("float32"), axis=r),
                     name="matmul")

    def epi(i, j):
        v = acc[i, j] + b[j].astype("float32") if has_bias else acc[i, j]
        return activation(v, act).astype("float16")

    out = te.compute((m, n), epi, name="epilogue")
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
