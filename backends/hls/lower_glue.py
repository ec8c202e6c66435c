"""Lowering of the float/bool glue around the integer kernels: data movement (reshapes as buffer aliases,
Gather, Split, Concat, Transpose, Expand) and broadcasting elementwise ops, emitted as plain loop nests in the
``model`` body. Float arithmetic is single IEEE float32 operations in the interpreter's order, so it is
bit-exact under g++ -O2 -std=c++17 (no FMA contraction in ISO mode, SSE arithmetic on x86-64).
Reductions (ReduceSum, ReduceL2, float Softmax, ...) are not lowered: numpy's pairwise summation order
would have to be reproduced for bit-exactness.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hwcomp.errors import HardwareError
from hwcomp.ir.graph import Node
from hwcomp.ir.types import DType

from .lower import Emitter, _expect, _is_int, emits

# ---- data movement and elementwise glue (embeddings, masks, residual adds) -------------------------------

@emits("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
def _alias(e: Emitter, n: Node) -> None:
    """Row-major data is unchanged: the output shares the input's buffer (copied only into an output port)."""
    src = e.value(n.inputs[0], n)
    out = n.outputs[0]
    if out in e.g.outputs:
        y = e.define(out, n)
        e.emit(f"for (int64_t i = 0; i < {e.size(out)}; ++i) {y}[i] = {src}[i];")
    else:
        e.names[out] = src


@emits("Gather")
def _gather(e: Emitter, n: Node) -> None:
    data, idx = n.inputs[0], n.inputs[1]
    _expect(e, n, idx, _is_int, "integer indices")
    ds = e.shape(data)
    axis = int(n.attr("axis", 0))
    axis = axis + len(ds) if axis < 0 else axis
    pre, a, post = int(np.prod(ds[:axis], dtype=np.int64)), ds[axis], int(np.prod(ds[axis + 1:], dtype=np.int64))
    ni = e.size(idx)
    d, ix = e.value(data, n), e.value(idx, n)
    y = e.define(n.outputs[0], n)
    e.emit(f"// indices wrap once (numpy/ONNX negative indices) and are clamped to [0, {a - 1}] for memory safety")
    e.emit(f"for (int64_t p = 0; p < {pre}; ++p)")
    e.emit(f"    for (int64_t j = 0; j < {ni}; ++j) {{")
    e.emit(f"        int64_t t = (int64_t){ix}[j]; if (t < 0) t += {a}; t = t < 0 ? 0 : (t > {a - 1} ? {a - 1} : t);")
    e.emit(f"        for (int64_t q = 0; q < {post}; ++q) {{")
    e.emit("#pragma HLS PIPELINE II=1")
    e.emit(f"            {y}[(p * {ni} + j) * {post} + q] = {d}[(p * {a} + t) * {post} + q];")
    e.emit("        }")
    e.emit("    }")
    e.kernels.add("gather")


def _wrap_int(op: str) -> Callable[[list[str], str], str]:
    return lambda a, ct: f"({ct})((uint64_t)(int64_t){a[0]} {op} (uint64_t)(int64_t){a[1]})"


# op -> (allowed input dtypes, expression builder (operand expressions, output ctype) -> C expression)
_FLOAT = (DType.float32, DType.float64)
_INTS = (DType.int8, DType.int16, DType.int32, DType.int64, DType.uint8, DType.uint16, DType.uint32, DType.uint64)
ELEMENTWISE: dict[str, tuple[tuple[DType, ...] | None, Callable[[list[str], str], str]]] = {
    "Add": (_FLOAT, lambda a, ct: f"{a[0]} + {a[1]}"),
    "Sub": (_FLOAT, lambda a, ct: f"{a[0]} - {a[1]}"),
    "Mul": (_FLOAT, lambda a, ct: f"{a[0]} * {a[1]}"),
    "Div": (_FLOAT, lambda a, ct: f"{a[0]} / {a[1]}"),
    "And": ((DType.bool,), lambda a, ct: f"(uint8_t)({a[0]} && {a[1]})"),
    "Or": ((DType.bool,), lambda a, ct: f"(uint8_t)({a[0]} || {a[1]})"),
    "Not": ((DType.bool,), lambda a, ct: f"(uint8_t)(!{a[0]})"),
    "Where": (None, lambda a, ct: f"{a[0]} ? {a[1]} : {a[2]}"),
    "Cast": (None, None),  # built in _elementwise from the target type
}
_INT_ARITH = {"Add": "+", "Sub": "-", "Mul": "*"}


def _broadcast_index(in_shape: tuple[int, ...], out_shape: tuple[int, ...], ivars: list[str]) -> str:
    full = (1,) * (len(out_shape) - len(in_shape)) + in_shape
    terms = []
    for i, dim in enumerate(full):
        if dim > 1:
            stride = int(np.prod(full[i + 1:], dtype=np.int64))
            terms.append(ivars[i] if stride == 1 else f"{ivars[i]} * {stride}")
    return " + ".join(terms) or "0"


@emits(*ELEMENTWISE)
def _elementwise(e: Emitter, n: Node) -> None:
    allowed, build = ELEMENTWISE[n.op]
    ins = [i for i in n.inputs if i]
    dts = [e.g.types[i].dtype for i in ins]
    data_dts = dts[1:] if n.op == "Where" else dts
    out = n.outputs[0]
    oct = e.ctype(out, n)
    if n.op in _INT_ARITH and all(dt in _INTS for dt in dts) and len(set(dts)) == 1:
        build = _wrap_int(_INT_ARITH[n.op])
    elif n.op == "Cast":
        src, to = dts[0], e.g.types[out].dtype
        if to is DType.bool:
            build = lambda a, ct: f"(uint8_t)({a[0]} != 0)"  # noqa: E731
        elif src.is_float and to.is_int:
            raise HardwareError(f"node {n.name!r} (Cast): float -> {to} casts (saturating) are not supported by the "
                                "HLS backend")
        else:
            build = lambda a, ct: f"({ct}){a[0]}"  # noqa: E731
    elif allowed is not None and (not all(dt in allowed for dt in data_dts) or len(set(data_dts)) != 1):
        raise HardwareError(f"node {n.name!r} ({n.op}): input dtypes {', '.join(map(str, dts))} are not supported by "
                            f"the HLS backend for {n.op} (supported: {', '.join(map(str, allowed))})")
    if n.op == "Where" and (dts[0] is not DType.bool or dts[1] != dts[2]):
        raise HardwareError(f"node {n.name!r} (Where): needs a bool condition and equal branch dtypes, got "
                            f"{', '.join(map(str, dts))}")
    oshape = e.shape(out)
    ivars = [f"i{k}" for k in range(len(oshape))]
    operands = [f"{e.value(i, n)}[{_broadcast_index(e.shape(i), oshape, ivars)}]" for i in ins]
    y = e.define(out, n)
    oidx = _broadcast_index(oshape, oshape, ivars)
    if not oshape:
        e.emit(f"{y}[0] = {build(operands, oct)};")
        e.kernels.add("elementwise")
        return
    for k, dim in enumerate(oshape):
        e.emit("    " * k + f"for (int64_t {ivars[k]} = 0; {ivars[k]} < {dim}; ++{ivars[k]})" + (" {" if k == len(oshape) - 1 else ""))
    pad = "    " * len(oshape)
    e.emit("#pragma HLS PIPELINE II=1")
    e.emit(f"{pad}{y}[{oidx}] = {build(operands, oct)};")
    e.emit("    " * (len(oshape) - 1) + "}")
    e.kernels.add("elementwise")


# ---- strided copies: Transpose, Split, Concat, Expand -----------------------------------------------------

def _strides(shape: tuple[int, ...]) -> list[int]:
    return [int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape))]


def _affine(ivars: list[str], coeffs: list[int], offset: int) -> str:
    terms = [v if c == 1 else f"{v} * {c}" for v, c in zip(ivars, coeffs) if c]
    if offset:
        terms.append(str(offset))
    return " + ".join(terms) or "0"


def _copy(e: Emitter, shape: tuple[int, ...], dst: str, dst_coeffs: list[int], dst_off: int, src: str,
          src_coeffs: list[int], src_off: int) -> None:
    """dst[dst_off + sum i_k * dst_coeffs[k]] = src[src_off + sum i_k * src_coeffs[k]] over ``shape``."""
    ivars = [f"i{k}" for k in range(len(shape))]
    stmt = f"{dst}[{_affine(ivars, dst_coeffs, dst_off)}] = {src}[{_affine(ivars, src_coeffs, src_off)}];"
    if not shape:
        e.emit(stmt)
        return
    for k, dim in enumerate(shape):
        e.emit("    " * k + f"for (int64_t {ivars[k]} = 0; {ivars[k]} < {dim}; ++{ivars[k]})"
               + (" {" if k == len(shape) - 1 else ""))
    e.emit("#pragma HLS PIPELINE II=1")
    e.emit("    " * len(shape) + stmt)
    e.emit("    " * (len(shape) - 1) + "}")


def _axis(n: Node, rank: int) -> int:
    a = int(n.attr("axis", 0))
    return a + rank if a < 0 else a


@emits("Transpose")
def _transpose(e: Emitter, n: Node) -> None:
    x, out = n.inputs[0], n.outputs[0]
    ishape = e.shape(x)
    perm = [int(p) for p in (n.attr("perm") or list(range(len(ishape)))[::-1])]
    ist = _strides(ishape)
    src = e.value(x, n)
    y = e.define(out, n)
    oshape = e.shape(out)
    _copy(e, oshape, y, _strides(oshape), 0, src, [ist[p] for p in perm], 0)
    e.kernels.add("copy")


@emits("Split")
def _split(e: Emitter, n: Node) -> None:
    x = n.inputs[0]
    ishape = e.shape(x)
    axis = _axis(n, len(ishape))
    ist = _strides(ishape)
    src = e.value(x, n)
    off = 0
    for out in n.outputs:
        if not out:
            raise HardwareError(f"node {n.name!r} (Split): unnamed outputs are not supported by the HLS backend")
        oshape = e.shape(out)
        y = e.define(out, n)
        _copy(e, oshape, y, _strides(oshape), 0, src, ist, off * ist[axis])
        off += oshape[axis]
    e.kernels.add("copy")


@emits("Concat")
def _concat(e: Emitter, n: Node) -> None:
    out = n.outputs[0]
    oshape = e.shape(out)
    axis = _axis(n, len(oshape))
    ost = _strides(oshape)
    srcs = [(i, e.value(i, n)) for i in n.inputs if i]
    y = e.define(out, n)
    off = 0
    for i, src in srcs:
        ishape = e.shape(i)
        _copy(e, ishape, y, ost, off * ost[axis], src, _strides(ishape), 0)
        off += ishape[axis]
    e.kernels.add("copy")


@emits("Expand")
def _expand(e: Emitter, n: Node) -> None:
    x, out = n.inputs[0], n.outputs[0]
    oshape = e.shape(out)
    ishape = e.shape(x)
    full = (1,) * (len(oshape) - len(ishape)) + ishape
    coeffs = [s if d > 1 else 0 for d, s in zip(full, _strides(full))]
    src = e.value(x, n)
    y = e.define(out, n)
    _copy(e, oshape, y, _strides(oshape), 0, src, coeffs, 0)
    e.kernels.add("copy")
