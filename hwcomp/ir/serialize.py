"""Save/load a graph as one file: an .npz holding the constants and the graph structure as JSON."""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError
from .graph import Graph, Node
from .types import QuantParams, TensorType

FORMAT = "hwcomp-ir/1"


def _enc_attr(v):
    if isinstance(v, np.ndarray):
        return {"__ndarray__": v.tolist(), "dtype": str(v.dtype), "shape": list(v.shape)}
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (list, tuple)):
        return [_enc_attr(x) for x in v]
    if isinstance(v, dict):
        return {k: _enc_attr(x) for k, x in v.items()}
    return v


def _dec_attr(v):
    if isinstance(v, dict) and "__ndarray__" in v:
        return np.array(v["__ndarray__"], dtype=v["dtype"]).reshape(v["shape"])
    if isinstance(v, list):
        return [_dec_attr(x) for x in v]
    if isinstance(v, dict):
        return {k: _dec_attr(x) for k, x in v.items()}
    return v


def to_json(g: Graph) -> dict:
    def t(tt: TensorType) -> dict:
        return {"shape": list(tt.shape), "dtype": tt.dtype.value,
                "quant": tt.quant.to_json() if tt.quant else None, "sparsity": tt.sparsity}
    return {
        "format": FORMAT, "name": g.name, "inputs": g.inputs, "outputs": g.outputs,
        "types": {k: t(v) for k, v in g.types.items()},
        "nodes": [{"op": n.op, "name": n.name, "inputs": n.inputs, "outputs": n.outputs,
                   "attrs": {k: _enc_attr(v) for k, v in n.attrs.items()}} for n in g.nodes],
        "constants": list(g.constants), "metadata": _enc_attr(g.metadata),
    }


def from_json(d: dict, constants: dict[str, np.ndarray]) -> Graph:
    if d.get("format") != FORMAT:
        raise ModelLoadError(f"not a {FORMAT} file (format {d.get('format')!r})")
    types = {k: TensorType(tuple(v["shape"]), v["dtype"], QuantParams.from_json(v["quant"]) if v["quant"] else None,
                           v.get("sparsity")) for k, v in d["types"].items()}
    nodes = [Node(n["op"], n["inputs"], n["outputs"], {k: _dec_attr(v) for k, v in n["attrs"].items()}, n["name"])
             for n in d["nodes"]]
    return Graph(d["name"], d["inputs"], d["outputs"], nodes, types, {k: constants[k] for k in d["constants"]},
                 _dec_attr(d.get("metadata", {})))


def save(g: Graph, path: str | os.PathLike) -> None:
    """Write atomically: a killed save never leaves a half file."""
    path = Path(path)
    blob = dumps(g)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def load(path: str | os.PathLike) -> Graph:
    try:
        data = np.load(path, allow_pickle=False)
        meta = json.loads(bytes(data["__graph__"]).decode())
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"{path}: not a readable hwcomp IR file ({e}); write one with `hwcomp inspect --save`") from None
    consts = {name: data[key] for name, key in zip(meta["constants"], meta["constant_keys"])}
    return from_json(meta, consts)


def dumps(g: Graph) -> bytes:
    buf = io.BytesIO()
    arrays = {f"c{i}": v for i, v in enumerate(g.constants.values())}
    meta = to_json(g)
    meta["constant_keys"] = list(arrays)
    arrays["__graph__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(buf, **arrays)
    return buf.getvalue()
