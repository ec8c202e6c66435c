"""Pass infrastructure: named graph passes (Graph -> Graph) composed into pipelines.

A pass is declared with :func:`graph_pass`; it receives a copy of the graph and a :class:`PassContext`
(options such as calibration data) and returns the transformed graph. Pipelines are named lists of pass
names (:data:`PIPELINES`); ``run_pipeline`` runs them, optionally verifying after each pass (tests do) and
stopping after a given pass (``hwcomp inspect --after NAME``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import PassError
from ..ir.graph import Graph
from ..ir.verify import verify

log = logging.getLogger(__name__)


@dataclass
class PassContext:
    """Options for passes (e.g. calibration inputs, quantization mode) and what passes report back."""

    options: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    verify_each: bool = False

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)


@dataclass(frozen=True)
class GraphPass:
    name: str
    fn: Callable[[Graph, PassContext], Graph]
    requires: tuple[str, ...] = ()
    doc: str = ""

    def __call__(self, g: Graph, ctx: PassContext | None = None) -> Graph:
        ctx = ctx or PassContext()
        out = self.fn(g.copy(), ctx)
        if ctx.verify_each:
            verify(out)
        return out


PASSES: dict[str, GraphPass] = {}


def graph_pass(name: str, requires: tuple[str, ...] = ()):
    """Register ``fn(graph, ctx) -> graph`` as a pass called ``name`` (snake_case, used on the CLI)."""
    def deco(fn: Callable[[Graph, PassContext], Graph]) -> GraphPass:
        if name in PASSES:
            raise AssertionError(f"pass {name} registered twice")
        p = GraphPass(name, fn, tuple(requires), (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "")
        PASSES[name] = p
        return p
    return deco


CLEANUP = ["fold_constants", "remove_noops", "canonicalize", "cse", "dce"]
FUSION = ["fuse_attention", "fuse_layer_norm", "fuse_gelu", "fuse_dense", "fuse_add_layer_norm", "fold_conv_bn",
          "canonicalize", "cse"]

# Named pipelines. Quantization passes are appended by `hwcomp quantize/compile` according to --quant.
PIPELINES: dict[str, list[str]] = {
    "none": [],
    "cleanup": CLEANUP,
    "default": CLEANUP + FUSION + ["dce"],
    "cuda": CLEANUP + FUSION + ["dce"],
    "fpga": CLEANUP + FUSION + ["dce"],
    "asic": CLEANUP + FUSION + ["dce"],
}


def get_pass(name: str) -> GraphPass:
    _ensure_loaded()
    if name not in PASSES:
        raise PassError(f"unknown pass {name!r}; known passes: {', '.join(sorted(PASSES))}")
    return PASSES[name]


def resolve(names: list[str] | str | None) -> list[str]:
    if names is None:
        return list(PIPELINES["default"])
    if isinstance(names, str):
        if names in PIPELINES:
            return list(PIPELINES[names])
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[str] = []
    for n in names:
        if n in PIPELINES and n not in PASSES:
            out.extend(PIPELINES[n])
        else:
            out.append(n)
    for n in out:
        get_pass(n)
    return out


def run_pipeline(g: Graph, names: list[str] | str | None = None, ctx: PassContext | None = None,
                 stop_after: str | None = None) -> Graph:
    ctx = ctx or PassContext()
    seq = resolve(names)
    if stop_after is not None and stop_after not in seq:
        get_pass(stop_after)
        raise PassError(f"--after {stop_after!r}: that pass is not in the pipeline {','.join(seq)}")
    for n in seq:
        p = get_pass(n)
        before = len(g.nodes)
        g = p(g, ctx)
        log.info("pass %s: %d -> %d nodes", n, before, len(g.nodes))
        if n == stop_after:
            break
    return g


PASS_MODULES = ["cleanup", "fusion", "quantize", "prune"]


def _ensure_loaded() -> None:
    """Import every pass module for its registrations (a module not present in this checkout is skipped)."""
    import importlib
    import importlib.util

    for m in PASS_MODULES:
        name = f"{__package__}.{m}"
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
