"""Op registry: every IR op has a type-inference rule and a numpy reference implementation.

An op is registered with :func:`op`::

    @op("Relu", infer=same_type)
    def relu(node, x):
        return np.maximum(x, 0)

``compute(node, *inputs)`` receives numpy arrays (``None`` for an absent optional input) and returns an
array or a tuple of arrays. ``infer(node, types, consts)`` receives the input :class:`TensorType` s and
the constant values of inputs where known (``None`` otherwise) and returns output types.

``by_evaluation`` infers types by running ``compute`` on zero tensors of the input shapes (with the
real values of constant inputs): used, explicitly, for the rarer ONNX ops whose shape rules would only
restate their numpy implementation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import ShapeError, UnsupportedOpError
from ..ir.graph import Node
from ..ir.types import DType, TensorType

InferFn = Callable[[Node, Sequence[TensorType | None], Sequence[np.ndarray | None]], list[TensorType]]
ComputeFn = Callable[..., np.ndarray | tuple[np.ndarray, ...]]


@dataclass(frozen=True)
class OpDef:
    name: str
    compute: ComputeFn
    infer: InferFn
    doc: str = ""


OPS: dict[str, OpDef] = {}


def op(*names: str, infer: InferFn) -> Callable[[ComputeFn], ComputeFn]:
    def deco(fn: ComputeFn) -> ComputeFn:
        for n in names:
            if n in OPS:
                raise AssertionError(f"op {n} registered twice")
            OPS[n] = OpDef(n, fn, infer, (fn.__doc__ or "").strip())
        return fn
    return deco


def get(name: str, node: Node | None = None) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        where = f" (node {node.name!r})" if node is not None else ""
        raise UnsupportedOpError(
            f"unsupported op {name!r}{where}: hwcomp implements {len(OPS)} ops (see `hwcomp.ops.supported_ops()`); "
            "open an issue or replace the op before export") from None


def supported_ops() -> list[str]:
    return sorted(OPS)


def run_op(node: Node, inputs: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    out = get(node.op, node).compute(node, *inputs)
    if not isinstance(out, (tuple, list)):
        out = (out,)
    return [np.asarray(o) for o in out]


# ---- common inference rules ----------------------------------------------------------------------------

def same_type(node: Node, types, consts) -> list[TensorType]:
    t = types[0]
    return [TensorType(t.shape, t.dtype)]


def broadcast_shape(*shapes: tuple[int, ...], node: Node | None = None) -> tuple[int, ...]:
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        where = f" at node {node.name!r} ({node.op})" if node else ""
        raise ShapeError(f"shapes {' and '.join(map(str, shapes))} do not broadcast{where}") from None


def broadcast_same_dtype(node: Node, types, consts) -> list[TensorType]:
    ts = [t for t in types if t is not None]
    return [TensorType(broadcast_shape(*(t.shape for t in ts), node=node), ts[0].dtype)]


def broadcast_bool(node: Node, types, consts) -> list[TensorType]:
    ts = [t for t in types if t is not None]
    return [TensorType(broadcast_shape(*(t.shape for t in ts), node=node), DType.bool)]


def by_evaluation(node: Node, types, consts) -> list[TensorType]:
    args = []
    for t, c in zip(types, consts):
        if c is not None:
            args.append(c)
        elif t is None:
            args.append(None)
        else:
            args.append(np.zeros(t.shape, t.dtype.numpy))
    outs = OPS[node.op].compute(node, *args)
    if not isinstance(outs, (tuple, list)):
        outs = (outs,)
    return [TensorType(np.shape(o), DType.from_numpy(np.asarray(o).dtype)) for o in outs]


def by_evaluation_needing(*const_idx: int) -> InferFn:
    """Like by_evaluation, but the inputs at ``const_idx`` determine the output shape and must be known
    at compile time (a clear ShapeError otherwise, instead of guessing from zeros)."""
    def infer(node: Node, types, consts) -> list[TensorType]:
        for i in const_idx:
            if i < len(node.inputs) and node.inputs[i]:
                need_const(node, consts, i, f"input {i}")
        return by_evaluation(node, types, consts)
    return infer


def need_const(node: Node, consts, i: int, what: str) -> np.ndarray:
    c = consts[i] if i < len(consts) else None
    if c is None:
        raise ShapeError(
            f"node {node.name!r} ({node.op}): its {what} (input {i}) is computed at run time, so the output "
            "shape is dynamic; give static input shapes with --shape NAME=AxB so it folds to a constant")
    return c
