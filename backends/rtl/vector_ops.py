"""Golden element-wise semantics of the vector unit (``rtl/vec_lane.v``), one numpy function per op.

Adding an op: a code in ``isa.VecOp``, a function here, a case in ``rtl/vec_lane.v``. The I-BERT integer
kernels (softmax/GELU/layernorm) will take codes 16..31 once ``hwcomp/ops`` defines them bit-exactly.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from hwcomp.errors import HardwareError

from .isa import VecOp


def _sat8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -128, 127).astype(np.int8)


VEC_OPS: dict[VecOp, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    VecOp.COPY: lambda a, b: a,
    VecOp.ADD: lambda a, b: a + b,
    VecOp.SUB: lambda a, b: a - b,
    VecOp.MAX: np.maximum,
    VecOp.MIN: np.minimum,
    VecOp.RELU: lambda a, b: np.maximum(a, 0),
    VecOp.MUL: lambda a, b: a * b,
}


def apply_vec_op(op: VecOp | int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int8 x int8 -> int8, computed in int32 then saturated."""
    fn = VEC_OPS.get(VecOp(op)) if int(op) in VecOp._value2member_map_ else None
    if fn is None:
        raise HardwareError(f"vector op {int(op)} is not implemented (known: {[o.name for o in VecOp]})")
    return _sat8(fn(np.asarray(a, np.int32), np.asarray(b, np.int32)))
