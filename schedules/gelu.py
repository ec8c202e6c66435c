"""``gelu`` (erf or tanh form) on any fp16 tensor, computed in fp32: one vectorized elementwise kernel."""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

from tvm import s_tir, te, tirx

from .dense import activation
from .errors import ScheduleError


def gelu_func(shape: tuple[int, ...], approximate: str = "none") -> tirx.PrimFunc:
    if approximate not in ("none", "tanh"):
        raise ScheduleError(f"gelu approximate={approximate!r} is not 'none' or 'tanh'")
    x = te.placeholder(shape, "float16", name="x")
    act = "gelu" if approximate == "none" else "gelu_tanh"
    y = te.compute(shape, lambda *i: activation(x[i].astype("float32"), act).astype("float16"), name="gelu")
    return te.create_prim_func([x, y]).with_attr("global_symbol", f"gelu_{approximate}")


@dataclass(frozen=True)
class ElementwiseRule:
    threads: int = 256
    vector: int = 8  # fp16 elements per thread per step: 16-byte accesses

    def apply(self, func: tirx.PrimFunc, block: str) -> tirx.PrimFunc:
        sch = s_tir.Schedule(func)
        blk = sch.get_sblock(block)
        loops = sch.get_loops(blk)
        fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
        total = reduce(lambda a, b: a * b, (int(d) for d in func.params[0].shape))
        vec = self.vector if total % (self.vector * self.threads) == 0 else 1
        bx, tx, v = sch.split(fused, [None, self.threads, vec])
        sch.bind(bx, "blockIdx.x")
        sch.bind(tx, "threadIdx.x")
        sch.vectorize(v)
        return sch.mod["main"].with_attr("tirx.is_scheduled", True)


def gelu(shape: tuple[int, ...], approximate: str = "none") -> tirx.PrimFunc:
    """Scheduled PrimFunc ``gelu_<approximate>(x, y)``."""
    return ElementwiseRule().apply(gelu_func(shape, approximate), "gelu")
