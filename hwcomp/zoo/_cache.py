"""On-disk cache for exported models (outside git).

Location: ``$HWCOMP_CACHE`` if set, else ``~/.cache/hwcomp/zoo``. Every file name carries a hash of
*all* parameters that shaped the export (model config, seed, exporter, opset, attention
implementation, static/dynamic shapes, and the torch/transformers/onnx versions), so a cache hit is an
exact hit. Files are written to a temporary name in the same directory and renamed into place
(``os.replace``), so an interrupted export never leaves a partial ``.onnx`` behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

FORMAT_VERSION = 1  # bump when the export recipe changes in a way the key does not capture


def cache_dir() -> Path:
    env = os.environ.get("HWCOMP_CACHE")
    d = Path(env).expanduser() if env else Path.home() / ".cache" / "hwcomp" / "zoo"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _pkg_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "none"


def cache_key(params: dict) -> str:
    full = dict(params)
    full["_format"] = FORMAT_VERSION
    full["_versions"] = {p: _pkg_version(p) for p in ("torch", "transformers", "onnx", "onnxscript")}
    blob = json.dumps(full, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def tmp_path_near(final: Path, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".tmp-{final.stem}-", suffix=suffix, dir=final.parent)
    os.close(fd)
    return Path(name)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = tmp_path_near(path, ".txt")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
