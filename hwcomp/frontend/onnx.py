"""ONNX frontend: ONNX ModelProto -> hwcomp IR.

Loads what ``torch.onnx.export`` writes (legacy exporter, opset 17, and the dynamo exporter, opset 18+),
binds symbolic input dimensions to the static shapes the user gives, infers every value's type with the
op registry's rules, and folds every node whose inputs are all known at compile time -- in particular the
shape subgraphs (Shape, ConstantOfShape, Expand, Range, Equal/Where on masks, ...) the exporters emit.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import HwcompError, ModelLoadError, ShapeError, UnsupportedOpError
from ..ir.graph import Graph, Node
from ..ir.types import DType, TensorType
from ..ops import OPS, run_op
from ..ops.tensor import shape_op_value
from .support import REJECTED_OPS as _REJECTED

log = logging.getLogger(__name__)

# ONNX TensorProto.DataType -> hwcomp DType
_ONNX_DTYPES = {
    1: DType.float32, 2: DType.uint8, 3: DType.int8, 4: DType.uint16, 5: DType.int16, 6: DType.int32,
    7: DType.int64, 9: DType.bool, 10: DType.float16, 11: DType.float64, 12: DType.uint32, 13: DType.uint64,
    16: DType.bfloat16, 21: DType.uint4, 22: DType.int4,
}
# Attributes holding an ONNX dtype enum, per op.
_DTYPE_ATTRS = {"Cast": "to", "QuantizeLinear": "output_dtype", "EyeLike": "dtype"}
# Ops never folded at compile time (none today; kept explicit).
_NO_FOLD: set[str] = set()
# Constants larger than this are not created by folding non-weight subgraphs (keeps memory bounded).
_FOLD_LIMIT_BYTES = 256 << 20


def onnx_dtype(code: int, where: str) -> DType:
    try:
        return _ONNX_DTYPES[code]
    except KeyError:
        raise UnsupportedOpError(f"{where}: ONNX element type {code} is not supported") from None


def parse_shapes(specs: list[str] | None) -> dict[str, tuple[int, ...]]:
    """Parse ``--shape name=1x128`` specs."""
    out: dict[str, tuple[int, ...]] = {}
    for s in specs or []:
        name, sep, dims = s.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            out[name] = tuple(int(d) for d in dims.lower().split("x")) if dims else ()
            if any(d <= 0 for d in out[name]):
                raise ValueError
        except ValueError:
            raise ShapeError(f"bad --shape {s!r}: write NAME=AxB with positive integers, e.g. input_ids=1x128") from None
    return out


def load_model_proto(path: str | os.PathLike):
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path}: not a valid ONNX file (truncated or another format: {type(e).__name__}); "
                             "re-export it with torch.onnx.export") from None
    if not model.HasField("graph") or not model.graph.node and not model.graph.output:
        raise ModelLoadError(f"{path}: not a valid ONNX model (no graph); re-export it with torch.onnx.export")
    # External data: check every referenced file before loading, to name the missing one.
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    for t in _get_all_tensors(model):
        if uses_external_data(t):
            loc = next((e.value for e in t.external_data if e.key == "location"), None)
            if loc is None or not (path.parent / loc).is_file():
                raise ModelLoadError(f"{path}: external data file {loc!r} for tensor {t.name!r} is missing; "
                                     f"put it next to the model (in {path.parent})")
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: external data could not be read ({e}); re-export the model") from None
    return model


def _attr_value(node, a, name: str):
    from onnx import helper, numpy_helper

    v = helper.get_attribute_value(a)
    if a.type == a.TENSOR:
        v = numpy_helper.to_array(a.t)
    elif a.type == a.TENSORS:
        v = [numpy_helper.to_array(t) for t in a.tensors]
    elif a.type in (a.GRAPH, a.GRAPHS):
        raise UnsupportedOpError(f"node {name!r} ({node.op_type}) has a subgraph attribute {a.name!r}; "
                                 "control flow is not supported: export without it")
    if isinstance(v, bytes):
        v = v.decode()
    elif isinstance(v, list) and v and isinstance(v[0], bytes):
        v = [x.decode() for x in v]
    if _DTYPE_ATTRS.get(node.op_type) == a.name:
        v = onnx_dtype(int(v), f"node {name!r}").value if v else None
    return v


def _to_array(t) -> np.ndarray:
    from onnx import numpy_helper

    a = numpy_helper.to_array(t)
    if t.data_type == 16:  # bfloat16 comes back as uint16 bits or ml_dtypes; compute in float32
        a = np.asarray(a).astype(np.float32)
    return np.asarray(a)


def from_onnx(model, shapes: Mapping[str, tuple[int, ...]] | None = None, *, name: str | None = None,
              bind: Mapping[str, np.ndarray] | None = None) -> Graph:
    """Convert an ONNX ModelProto to hwcomp IR with static shapes, folding compile-time subgraphs.

    ``bind`` specializes graph inputs to constant values (e.g. a Reshape target shape that a test graph
    takes as an input); bound inputs are no longer graph inputs.
    """
    shapes = dict(shapes or {})
    bind = dict(bind or {})
    og = model.graph
    g = Graph(name or og.name or "main")
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    g.metadata["opset"] = opsets.get("ai.onnx", 0)
    g.metadata["producer"] = f"{model.producer_name} {model.producer_version}".strip()

    init_names = set()
    for t in og.initializer:
        arr = _to_array(t)
        g.constants[t.name] = arr
        g.types[t.name] = TensorType(arr.shape, onnx_dtype(t.data_type, f"initializer {t.name!r}"))
        init_names.add(t.name)

    unknown_shapes = set(shapes) - {i.name for i in og.input}
    if unknown_shapes:
        raise ShapeError(f"--shape names {sorted(unknown_shapes)} are not graph inputs; inputs are "
                         f"{[i.name for i in og.input if i.name not in init_names]}")
    for vi in og.input:
        if vi.name in init_names:
            continue
        if vi.name in bind:
            arr = np.asarray(bind[vi.name])
            g.constants[vi.name] = arr
            g.types[vi.name] = TensorType(arr.shape, DType.from_numpy(arr.dtype))
            continue
        if not vi.type.HasField("tensor_type"):
            raise UnsupportedOpError(f"input {vi.name!r} is a {vi.type.WhichOneof('value')}, not a tensor; "
                                     "hwcomp compiles tensor graphs only: export without sequences/optionals")
        tt = vi.type.tensor_type
        dims = []
        for d_i, d in enumerate(tt.shape.dim):
            dims.append(d.dim_value if d.HasField("dim_value") else None)
            if dims[-1] is None:
                dims[-1] = d.dim_param or "?"
        if vi.name in shapes:
            given = shapes[vi.name]
            if len(given) != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(dims, given)):
                raise ShapeError(f"--shape {vi.name}={'x'.join(map(str, given))} does not fit the model's input "
                                 f"shape [{', '.join(map(str, dims))}]")
            dims = list(given)
        sym = [d for d in dims if not isinstance(d, int)]
        if sym:
            example = "x".join(str(d) if isinstance(d, int) else "N" for d in dims)
            raise ShapeError(f"input {vi.name!r} has symbolic dimension(s) {', '.join(map(repr, sym))}; give static "
                             f"shapes with --shape {vi.name}={example} (e.g. --shape input_ids=1x128)")
        g.inputs.append(vi.name)
        g.types[vi.name] = TensorType(tuple(dims), onnx_dtype(tt.elem_type, f"input {vi.name!r}"))

    # Check every op up front, so the error lists the first unsupported op and how many there are.
    bad = []
    for i, n in enumerate(og.node):
        domain = n.domain or "ai.onnx"
        if domain not in ("ai.onnx",) or n.op_type in _REJECTED or (n.op_type not in OPS and n.op_type != "Constant"):
            bad.append(n)
    if bad:
        n = bad[0]
        why = _REJECTED.get(n.op_type, "not implemented")
        dom = f"{n.domain}::" if n.domain else ""
        others = sorted({f"{(b.domain + '::') if b.domain else ''}{b.op_type}" for b in bad} - {dom + n.op_type})
        more = f" (also unsupported: {', '.join(others)})" if others else ""
        raise UnsupportedOpError(f"unsupported op {dom}{n.op_type} at node {n.name or '#' + str(list(og.node).index(n))!r} "
                                 f"({why}){more}; supported ops: `python -c 'import hwcomp.ops as o; "
                                 "print(o.supported_ops())'`")

    for idx, on in enumerate(og.node):
        nname = on.name or f"{on.op_type}_{idx}"
        attrs = {a.name: _attr_value(on, a, nname) for a in on.attribute}
        if on.op_type == "Constant":
            _import_constant(g, on, attrs, nname)
            continue
        node = Node(on.op_type, list(on.input), list(on.output), attrs, nname)
        _add_node(g, node)

    g.outputs = [o.name for o in og.output]
    for o in g.outputs:
        if o not in g.types:
            raise ModelLoadError(f"graph output {o!r} is produced by no node")
    g.remove_unused()
    return g


def _import_constant(g: Graph, on, attrs: dict, nname: str) -> None:
    if "value" in attrs:
        v = np.asarray(attrs["value"])
    elif "value_float" in attrs:
        v = np.array(attrs["value_float"], np.float32)
    elif "value_floats" in attrs:
        v = np.array(attrs["value_floats"], np.float32)
    elif "value_int" in attrs:
        v = np.array(attrs["value_int"], np.int64)
    elif "value_ints" in attrs:
        v = np.array(attrs["value_ints"], np.int64)
    else:
        raise UnsupportedOpError(f"Constant node {nname!r} with attributes {sorted(attrs)} is not supported")
    out = on.output[0]
    g.constants[out] = v
    g.types[out] = TensorType(v.shape, DType.from_numpy(v.dtype))


def _add_node(g: Graph, node: Node) -> None:
    """Infer the node's output types; fold it into constants if every input is known now."""
    for i in node.inputs:
        if i and i not in g.types:
            raise ModelLoadError(f"node {node.name!r} ({node.op}): input {i!r} is not produced by any earlier node "
                                 "(the graph is not topologically sorted or is truncated)")
    if node.op == "Dropout" and len(node.inputs) > 2 and node.inputs[2]:
        tm = g.constants.get(node.inputs[2])
        if tm is None or bool(np.asarray(tm)):
            raise UnsupportedOpError(f"Dropout {node.name!r} runs in training mode; export the model in eval() mode")
    if node.op == "BatchNormalization" and node.attr("training_mode", 0):
        raise UnsupportedOpError(f"BatchNormalization {node.name!r} runs in training mode; export the model in eval() mode")
    types = [g.types[i] if i else None for i in node.inputs]
    consts = [g.constants.get(i) if i else None for i in node.inputs]
    opdef = OPS[node.op]
    if node.op in ("Shape", "Size"):
        # Shapes are static: Shape/Size are compile-time constants even on run-time tensors.
        t = types[0]
        val = shape_op_value(node, t.shape) if node.op == "Shape" else np.array(t.size, np.int64)
        g.constants[node.outputs[0]] = val
        g.types[node.outputs[0]] = TensorType(val.shape, DType.int64)
        return
    foldable = all(c is not None for c, i in zip(consts, node.inputs) if i) and node.op not in _NO_FOLD
    if foldable:
        try:
            outs = run_op(node, consts)
        except HwcompError:
            raise
        except Exception as e:
            raise ShapeError(f"node {node.name!r} ({node.op}) failed while folding constants: {type(e).__name__}: {e}") from None
        if sum(o.nbytes for o in outs) <= _FOLD_LIMIT_BYTES:
            for o, v in zip(node.outputs, outs):
                if o:
                    g.constants[o] = v
                    g.types[o] = TensorType(v.shape, _dtype_of(node, v))
            return
    try:
        out_types = opdef.infer(node, types, consts)
    except HwcompError:
        raise
    except Exception as e:
        raise ShapeError(f"node {node.name!r} ({node.op}): cannot infer output shape from inputs "
                         f"{[str(t) for t in types]}: {type(e).__name__}: {e}") from None
    for o, t in zip(node.outputs, out_types):
        if o:
            g.types[o] = t
    node.outputs = [o for o in node.outputs]
    g.nodes.append(node)


def _dtype_of(node: Node, v: np.ndarray) -> DType:
    if node.op == "QuantizeLinear" and node.attr("output_dtype") in ("int4", "uint4"):
        return DType(node.attr("output_dtype"))
    return DType.from_numpy(v.dtype)


def load_onnx(path: str | os.PathLike, shapes: Mapping[str, tuple[int, ...]] | list[str] | None = None) -> Graph:
    """Load an ONNX file into hwcomp IR. ``shapes`` binds symbolic input dims: {"input_ids": (1, 128)} or
    ["input_ids=1x128"]."""
    if isinstance(shapes, list):
        shapes = parse_shapes(shapes)
    model = load_model_proto(path)
    g = from_onnx(model, shapes, name=Path(path).stem)
    log.info("imported %s: %d nodes, %d constants", path, len(g.nodes), len(g.constants))
    return g
