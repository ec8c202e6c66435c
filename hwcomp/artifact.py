"""Compiled artifacts and the backend registry.

`hwcomp compile --target T` hands the transformed graph to the backend registered for T, which writes an
artifact directory with a `report.json` whose "target" names it; `hwcomp run OUTDIR` dispatches on that.
Backends live in the top-level `backends/` package (installed as `hwcomp.backends`) and register
themselves when imported; hwcomp's core only knows their module names, so the import direction stays
backends -> hwcomp.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import BackendError, HwcompError, ModelLoadError

BACKEND_MODULES = {"cuda": "hwcomp.backends.tvm_cuda.compile", "llvm": "hwcomp.backends.tvm_cuda.compile",
                   "fpga": "hwcomp.backends.rtl.compile", "asic": "hwcomp.backends.rtl.compile"}


@dataclass(frozen=True)
class Backend:
    target: str
    compile: Callable[..., dict]  # (graph, outdir: Path, **options) -> report dict
    run: Callable[[Path, dict[str, np.ndarray]], dict[str, np.ndarray]]
    default_pipeline: str


BACKENDS: dict[str, Backend] = {}


def register_backend(target: str, *, compile: Callable, run: Callable, default_pipeline: str) -> None:
    BACKENDS[target] = Backend(target, compile, run, default_pipeline)


def get_backend(target: str) -> Backend:
    if target not in BACKEND_MODULES:
        raise BackendError(f"unknown target {target!r}; choose one of {', '.join(BACKEND_MODULES)}")
    if target not in BACKENDS:
        try:
            importlib.import_module(BACKEND_MODULES[target])
        except ModuleNotFoundError as e:
            raise BackendError(f"the {target} backend needs {e.name!r}, which is not installed; "
                               "install hwcomp with its extras: pip install 'hwcomp[tvm,rtl]'") from None
    if target not in BACKENDS:
        raise BackendError(f"no backend registered for target {target!r}")
    return BACKENDS[target]


def read_report(outdir: Path) -> dict:
    rp = Path(outdir) / "report.json"
    if not rp.is_file():
        raise ModelLoadError(f"{outdir}: not a hwcomp artifact (no report.json); create one with `hwcomp compile`")
    try:
        return json.loads(rp.read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{rp}: corrupt report ({e}); recompile with `hwcomp compile`") from None


def run_artifact(outdir: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    target = read_report(outdir).get("target")
    return get_backend(str(target)).run(Path(outdir), inputs)


@contextmanager
def atomic_outdir(outdir: Path, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary directory beside `outdir`; on success it replaces `outdir`, on any error it is
    removed, so a failed compile never leaves a half-written output directory."""
    outdir = Path(outdir)
    parent = outdir.resolve().parent
    if not parent.is_dir():
        raise HwcompError(f"{outdir}: parent directory {parent} does not exist")
    if outdir.exists() and not overwrite:
        raise HwcompError(f"{outdir} exists; pass --force to replace it")
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if outdir.exists():
        old = parent / f".{outdir.name}.old.{os.getpid()}"
        os.replace(outdir, old)
        os.replace(tmp, outdir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, outdir)


def write_json(path: Path, obj: dict) -> None:
    """Deterministic JSON (sorted keys, fixed float formatting by json) so reports are byte-stable."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
