"""Compiled artifact directories: `hwcomp compile` writes one, `hwcomp run OUTDIR` dispatches on its kind.

Every artifact directory has a `report.json` whose "target" names the backend that made it. Backends
register a runner here (the IR side names no backend: backends register themselves when imported).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import BackendError, ModelLoadError

# target -> module that registers a runner (imported lazily; backends depend on hwcomp, not the reverse)
RUNNER_MODULES = {"cuda": "hwcomp.backends.tvm_cuda.runtime", "llvm": "hwcomp.backends.tvm_cuda.runtime",
                  "fpga": "hwcomp.backends.rtl.runtime", "asic": "hwcomp.backends.rtl.runtime"}
RUNNERS: dict[str, Callable[[Path, dict[str, np.ndarray]], dict[str, np.ndarray]]] = {}


def register_runner(target: str):
    def deco(fn):
        RUNNERS[target] = fn
        return fn
    return deco


def read_report(outdir: Path) -> dict:
    rp = outdir / "report.json"
    if not rp.is_file():
        raise ModelLoadError(f"{outdir}: not a hwcomp artifact (no report.json); create one with `hwcomp compile`")
    try:
        return json.loads(rp.read_text())
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{rp}: corrupt report ({e}); recompile with `hwcomp compile`") from None


def run_artifact(outdir: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    target = read_report(outdir).get("target")
    if target not in RUNNER_MODULES:
        raise BackendError(f"{outdir}: unknown artifact target {target!r}")
    if target not in RUNNERS:
        try:
            importlib.import_module(RUNNER_MODULES[target])
        except ModuleNotFoundError as e:
            raise BackendError(f"{outdir}: the {target} backend is not installed ({e.name}); "
                               "pip install 'hwcomp[tvm]' / 'hwcomp[rtl]'") from None
    if target not in RUNNERS:
        raise BackendError(f"{outdir}: no runner registered for target {target!r}")
    return RUNNERS[target](outdir, inputs)
