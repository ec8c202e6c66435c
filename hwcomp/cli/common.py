"""Helpers shared by CLI commands: loading models and .npz files."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelLoadError
from ..frontend.onnx import from_onnx, load_model_proto, parse_shapes
from ..ir import Graph
from ..ir import load as load_ir

SHAPE_HELP = "bind a symbolic input shape, NAME=AxB (repeatable), e.g. input_ids=1x128"


def load_model(path: str, shapes: list[str] | None, inputs: dict[str, np.ndarray] | None = None) -> Graph:
    """Load .onnx (binding --shape, else the shapes of the given inputs) or a saved .hwir graph."""
    p = Path(path)
    if p.suffix == ".hwir":
        return load_ir(p)
    model = load_model_proto(p)
    bound = parse_shapes(shapes)
    if inputs:
        inits = {t.name for t in model.graph.initializer}
        names = {i.name for i in model.graph.input if i.name not in inits}
        for k, v in inputs.items():
            if k in names:
                bound.setdefault(k, tuple(np.shape(v)))
    return from_onnx(model, bound, name=p.stem)


def load_npz(path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such input file; write one with numpy.savez(path, input_ids=..., ...)")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"{path}: not a readable .npz file ({e}); write one with numpy.savez") from None


def save_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    p = Path(path)
    if p.parent and not p.parent.exists():
        raise ModelLoadError(f"{path}: directory {p.parent} does not exist")
    tmp = p.with_name(p.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, p)
