"""Shape and data-movement ONNX ops. Ops whose output shape depends on an input's *value* need that
input to be a constant at compile time (the frontend folds shape subgraphs once input shapes are known)."""

from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..ir.types import DType, TensorType
from .registry import by_evaluation, by_evaluation_needing, need_const, op, same_type


def _axes(node, axes_input, rank: int) -> list[int] | None:
    axes = node.attr("axes") if axes_input is None else axes_input
    if axes is None:
        return None
    return [int(a) + rank if int(a) < 0 else int(a) for a in np.atleast_1d(axes)]


# ---- Reshape ------------------------------------------------------------------------------------------
def reshape_shape(in_shape: tuple[int, ...], shape: np.ndarray, allowzero: int = 0) -> tuple[int, ...]:
    out = [int(s) for s in shape]
    if not allowzero:
        out = [in_shape[i] if s == 0 else s for i, s in enumerate(out)]
    if -1 in out:
        known = int(np.prod([s for s in out if s != -1], dtype=np.int64))
        total = int(np.prod(in_shape, dtype=np.int64))
        if known == 0 or total % known:
            raise ShapeError(f"cannot reshape {in_shape} to {tuple(shape)}")
        out[out.index(-1)] = total // known
    if int(np.prod(out, dtype=np.int64)) != int(np.prod(in_shape, dtype=np.int64)):
        raise ShapeError(f"cannot reshape {in_shape} to {tuple(shape)}: element counts differ")
    return tuple(out)


def _reshape_infer(node, types, consts):
    shape = need_const(node, consts, 1, "target shape")
    return [TensorType(reshape_shape(types[0].shape, shape, node.attr("allowzero", 0)), types[0].dtype)]


@op("Reshape", infer=_reshape_infer)
def reshape(node, x, shape):
    return x.reshape(reshape_shape(x.shape, shape, node.attr("allowzero", 0)))


@op("Flatten", infer=by_evaluation)
def flatten(node, x):
    axis = node.attr("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1) if x.size else \
        x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), int(np.prod(x.shape[axis:], dtype=np.int64)))


def _transpose_infer(node, types, consts):
    t = types[0]
    perm = node.attr("perm") or list(range(t.rank))[::-1]
    return [TensorType(tuple(t.shape[p] for p in perm), t.dtype)]


@op("Transpose", infer=_transpose_infer)
def transpose(node, x):
    return np.transpose(x, node.attr("perm") or None)


def _unsqueeze_shape(shape, axes):
    out_rank = len(shape) + len(axes)
    axes = sorted(a + out_rank if a < 0 else a for a in axes)
    out = list(shape)
    for a in axes:
        out.insert(a, 1)
    return tuple(out)


def _unsqueeze_infer(node, types, consts):
    axes = node.attr("axes")
    if axes is None:
        axes = need_const(node, consts, 1, "axes")
    return [TensorType(_unsqueeze_shape(types[0].shape, [int(a) for a in np.atleast_1d(axes)]), types[0].dtype)]


@op("Unsqueeze", infer=_unsqueeze_infer)
def unsqueeze(node, x, axes=None):
    axes = node.attr("axes") if axes is None else axes
    return x.reshape(_unsqueeze_shape(x.shape, [int(a) for a in np.atleast_1d(axes)]))


@op("Squeeze", infer=by_evaluation_needing(1))
def squeeze(node, x, axes=None):
    ax = _axes(node, axes, x.ndim)
    return np.squeeze(x, axis=tuple(ax) if ax is not None else None)


@op("Concat", infer=by_evaluation)
def concat(node, *xs):
    return np.concatenate(xs, axis=node.attrs["axis"])


@op("Split", infer=by_evaluation_needing(1))
def split(node, x, split_sizes=None):
    axis = node.attr("axis", 0)
    sizes = node.attr("split") if split_sizes is None else split_sizes
    if sizes is None:
        n = node.attr("num_outputs") or len(node.outputs)
        chunk = -(-x.shape[axis] // n)
        sizes = [chunk] * (n - 1) + [x.shape[axis] - chunk * (n - 1)]
    idx = np.cumsum(sizes)[:-1]
    return tuple(np.split(x, idx, axis=axis))


@op("Slice", infer=by_evaluation_needing(1, 2, 3, 4))
def slice_(node, x, starts=None, ends=None, axes=None, steps=None):
    starts = node.attr("starts") if starts is None else starts
    ends = node.attr("ends") if ends is None else ends
    axes = list(range(len(starts))) if axes is None and node.attr("axes") is None else \
        (node.attr("axes") if axes is None else axes)
    steps = [1] * len(starts) if steps is None else steps
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = int(a) + x.ndim if int(a) < 0 else int(a)
        dim = x.shape[a]
        s, e, st = int(s), int(e), int(st)
        # Clamp like ONNX (INT64_MAX / INT64_MIN sentinels).
        s = max(min(s, dim), -dim - 1) if st > 0 else max(min(s, dim - 1), -dim - 1)
        e = max(min(e, dim), -dim - 1)
        if st < 0 and e < -dim:
            e = None
        sl[a] = slice(s, e, st)
    return x[tuple(sl)]


def _gather_infer(node, types, consts):
    d, i = types[0], types[1]
    axis = node.attr("axis", 0)
    axis = axis + d.rank if axis < 0 else axis
    return [TensorType(d.shape[:axis] + i.shape + d.shape[axis + 1:], d.dtype)]


@op("Gather", infer=_gather_infer)
def gather(node, data, idx):
    axis = node.attr("axis", 0)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return np.take(data, idx, axis=axis)


@op("GatherElements", infer=by_evaluation)
def gather_elements(node, data, idx):
    axis = node.attr("axis", 0)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return np.take_along_axis(data, idx, axis=axis)


@op("GatherND", infer=by_evaluation)
def gather_nd(node, data, idx):
    b = node.attr("batch_dims", 0)
    batch_shape = data.shape[:b]
    nb = int(np.prod(batch_shape, dtype=np.int64))
    d = data.reshape((nb,) + data.shape[b:])
    ix = idx.reshape((nb,) + idx.shape[b:])
    k = ix.shape[-1]
    outs = []
    for j in range(nb):
        flat = ix[j].reshape(-1, k)
        outs.append(np.stack([d[j][tuple(row)] for row in flat]) if flat.size else
                    np.zeros((0,) + d.shape[1 + k:], d.dtype))
        outs[-1] = outs[-1].reshape(ix.shape[1:-1] + d.shape[1 + k:])
    return np.stack(outs).reshape(batch_shape + idx.shape[b:-1] + data.shape[b + k:])


@op("ScatterND", infer=same_type)
def scatter_nd(node, data, idx, upd):
    out = data.copy()
    red = node.attr("reduction", "none")
    flat_idx = idx.reshape(-1, idx.shape[-1])
    flat_upd = upd.reshape((flat_idx.shape[0],) + upd.shape[idx.ndim - 1:])
    for i, u in zip(flat_idx, flat_upd):
        t = tuple(i)
        out[t] = {"none": u, "add": out[t] + u, "mul": out[t] * u, "max": np.maximum(out[t], u),
                  "min": np.minimum(out[t], u)}[red]
    return out


@op("ScatterElements", infer=same_type)
def scatter_elements(node, data, idx, upd):
    out = data.copy()
    axis = node.attr("axis", 0)
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    red = node.attr("reduction", "none")
    if red == "none":
        np.put_along_axis(out, idx, upd, axis=axis)
        return out
    ufunc = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}.get(red)
    if ufunc is None:
        raise ShapeError(f"ScatterElements reduction {red!r} is not supported")
    full = list(np.indices(idx.shape, sparse=True))
    full[axis] = idx
    ufunc.at(out, tuple(full), upd)
    return out


def _expand_infer(node, types, consts):
    shape = need_const(node, consts, 1, "target shape")
    return [TensorType(np.broadcast_shapes(types[0].shape, tuple(int(s) for s in shape)), types[0].dtype)]


@op("Expand", infer=_expand_infer)
def expand(node, x, shape):
    return x * np.ones(tuple(int(s) for s in shape), dtype=x.dtype) if x.dtype != bool else \
        np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(int(s) for s in shape))).copy()


def _shape_infer(node, types, consts):
    return [TensorType(shape_op_value(node, types[0].shape).shape, DType.int64)]


def shape_op_value(node, shape: tuple[int, ...]) -> np.ndarray:
    r = len(shape)
    start, end = node.attr("start", 0), node.attr("end", r)
    start = max(0, min(r, start + r if start < 0 else start))
    end = max(0, min(r, end + r if end < 0 else end))
    return np.array(shape[start:end], dtype=np.int64)


@op("Shape", infer=_shape_infer)
def shape(node, x):
    return shape_op_value(node, x.shape)


@op("Size", infer=lambda n, t, c: [TensorType((), DType.int64)])
def size(node, x):
    return np.array(x.size, dtype=np.int64)


def _cos_infer(node, types, consts):
    shape = need_const(node, consts, 0, "shape")
    value = node.attr("value")
    dt = DType.float32 if value is None else DType.from_numpy(np.asarray(value).dtype)
    return [TensorType(tuple(int(s) for s in shape), dt)]


@op("ConstantOfShape", infer=_cos_infer)
def constant_of_shape(node, shape):
    value = node.attr("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value)
    # An empty shape tensor means a scalar output (the legacy exporter writes these).
    return np.full(tuple(int(s) for s in shape), value.reshape(-1)[0], dtype=value.dtype)


@op("Range", infer=by_evaluation_needing(0, 1, 2))
def range_(node, start, limit, delta):
    return np.arange(start, limit, delta, dtype=np.asarray(start).dtype)


@op("Tile", infer=by_evaluation_needing(1))
def tile(node, x, reps):
    return np.tile(x, tuple(int(r) for r in reps))


@op("Trilu", infer=same_type)
def trilu(node, x, k=None):
    k = 0 if k is None else int(k)
    return np.triu(x, k) if node.attr("upper", 1) else np.tril(x, k)


@op("CumSum", infer=same_type)
def cumsum(node, x, axis):
    axis = int(axis)
    y = x
    if node.attr("reverse", 0):
        y = np.flip(y, axis)
    out = np.cumsum(y, axis=axis, dtype=x.dtype)
    if node.attr("exclusive", 0):
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis)), np.delete(out, -1, axis)], axis) \
            if out.shape[axis] else out
    if node.attr("reverse", 0):
        out = np.flip(out, axis)
    return out


@op("Pad", infer=by_evaluation_needing(1, 3))
def pad(node, x, pads=None, value=None, axes=None):
    pads = node.attr("pads") if pads is None else pads
    r = x.ndim
    ax = list(range(r)) if axes is None else [int(a) + r if a < 0 else int(a) for a in axes]
    n = len(ax)
    widths = [(0, 0)] * r
    for j, a in enumerate(ax):
        widths[a] = (int(pads[j]), int(pads[j + n]))
    mode = node.attr("mode", "constant")
    if mode == "constant":
        v = 0 if value is None else np.asarray(value).reshape(-1)[0] if np.size(value) else 0
        return np.pad(x, widths, mode="constant", constant_values=v)
    return np.pad(x, widths, mode={"reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode])


@op("ArgMax", infer=by_evaluation)
def argmax(node, x):
    axis, keep = node.attr("axis", 0), node.attr("keepdims", 1)
    if node.attr("select_last_index", 0):
        flipped = np.flip(x, axis)
        r = x.shape[axis] - 1 - np.argmax(flipped, axis=axis)
    else:
        r = np.argmax(x, axis=axis)
    return np.expand_dims(r, axis).astype(np.int64) if keep else r.astype(np.int64)


@op("ArgMin", infer=by_evaluation)
def argmin(node, x):
    axis, keep = node.attr("axis", 0), node.attr("keepdims", 1)
    if node.attr("select_last_index", 0):
        r = x.shape[axis] - 1 - np.argmin(np.flip(x, axis), axis=axis)
    else:
        r = np.argmin(x, axis=axis)
    return np.expand_dims(r, axis).astype(np.int64) if keep else r.astype(np.int64)


@op("Dropout", infer=lambda n, t, c: [TensorType(t[0].shape, t[0].dtype), TensorType(t[0].shape, DType.bool)])
def dropout(node, x, ratio=None, training_mode=None):
    """Inference-mode Dropout: identity, mask all True (training_mode=True is rejected by the frontend)."""
    return x, np.ones(x.shape, dtype=bool)


@op("EyeLike", infer=by_evaluation)
def eye_like(node, x):
    dt = DType(node.attr("dtype")).numpy if node.attr("dtype") else x.dtype
    return np.eye(x.shape[0], x.shape[1], k=node.attr("k", 0), dtype=dt)


@op("DepthToSpace", infer=by_evaluation)
def depth_to_space(node, x):
    b, c, h, w = x.shape
    bs = node.attrs["blocksize"]
    if node.attr("mode", "DCR") == "DCR":
        t = x.reshape(b, bs, bs, c // bs ** 2, h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        t = x.reshape(b, c // bs ** 2, bs, bs, h, w).transpose(0, 1, 4, 2, 5, 3)
    return t.reshape(b, c // bs ** 2, h * bs, w * bs)
