"""Reference interpreter: executes hwcomp IR with numpy.

Float ops follow ONNX semantics; integer ops are bit-exact by definition (see ``hwcomp/ops/intmath.py``).
This is the golden model the GPU and RTL backends are checked against.
"""

from __future__ import annotations

import logging
from typing import Mapping

import numpy as np

from .errors import HwcompError, InputError
from .ir.graph import Graph
from .ops import run_op

log = logging.getLogger(__name__)


def check_inputs(g: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate names, dtypes and shapes of user inputs; returns them as arrays of the graph's dtypes."""
    missing = [i for i in g.inputs if i not in inputs]
    if missing:
        raise InputError(f"inputs lack {', '.join(map(repr, missing))}; the graph takes "
                         f"{', '.join(f'{i}: {g.types[i]}' for i in g.inputs)}")
    out = {}
    for name in g.inputs:
        t = g.types[name]
        a = np.asarray(inputs[name])
        if tuple(a.shape) != t.shape:
            raise InputError(f"input {name!r} has shape {list(a.shape)}, the graph expects {list(t.shape)} "
                             f"(compile/run with --shape {name}={'x'.join(map(str, a.shape))} to change it)")
        want = t.dtype.numpy
        if a.dtype.name == "bfloat16":  # ml_dtypes bfloat16: hwcomp computes bfloat16 in float32
            a = a.astype(np.float32)
        if a.dtype != want:
            same_kind = (np.issubdtype(a.dtype, np.integer) and np.issubdtype(want, np.integer)) or \
                        (np.issubdtype(a.dtype, np.floating) and np.issubdtype(want, np.floating))
            if not same_kind:
                raise InputError(f"input {name!r} has dtype {a.dtype}, the graph expects {t.dtype}")
            a = a.astype(want)
        out[name] = a
    return out


def _blas_threads() -> int:
    """BLAS threads for the interpreter: HWCOMP_BLAS_THREADS, default 1. A transformer layer is many
    small GEMMs; OpenBLAS's thread hand-off per call cost more than it gave (BERT-base seq 128 on 2 shared
    cores: 2.3 s with 2 threads, 0.6-0.8 s with 1)."""
    import os
    try:
        return max(1, int(os.environ.get("HWCOMP_BLAS_THREADS", "1")))
    except ValueError:
        return 1


def run(g: Graph, inputs: Mapping[str, np.ndarray], *, keep: set[str] | None = None,
        observer=None) -> dict[str, np.ndarray]:
    """Execute the graph; returns the graph outputs (and any value named in ``keep``).

    ``observer(name, array)``, if given, sees every value as it is produced (calibration uses this).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=_blas_threads(), user_api="blas"):
        return _run(g, inputs, keep=keep, observer=observer)


def _run(g: Graph, inputs: Mapping[str, np.ndarray], *, keep: set[str] | None, observer) -> dict[str, np.ndarray]:
    env: dict[str, np.ndarray] = dict(g.constants)
    env.update(check_inputs(g, inputs))
    want = set(g.outputs) | (keep or set())
    # Free each intermediate after its last use to keep peak memory near one layer's working set.
    last_use: dict[str, int] = {}
    for idx, n in enumerate(g.nodes):
        for i in n.inputs:
            last_use[i] = idx
    with np.errstate(all="ignore"):
        for idx, n in enumerate(g.nodes):
            args = [env[i] if i else None for i in n.inputs]
            try:
                outs = run_op(n, args)
            except HwcompError:
                raise
            except Exception as e:  # a numpy failure inside an op: name the node
                raise HwcompError(f"node {n.name!r} ({n.op}) failed in the interpreter: {type(e).__name__}: {e}") from e
            for o, v in zip(n.outputs, outs):
                if o:
                    env[o] = v
                    if observer is not None:
                        observer(o, v)
            for i in n.inputs:
                if i and last_use.get(i) == idx and i not in want and i not in g.constants:
                    env.pop(i, None)
    return {o: env[o] for o in list(g.outputs) + sorted((keep or set()) - set(g.outputs))}
