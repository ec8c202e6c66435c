"""`hwcomp compile --target cuda|llvm`: hwcomp IR -> Relax -> TensorIR -> CUDA (or LLVM for CPU) library.

Artifact directory:
    model.so      the deployable library (`export_library`)
    params.npz    weights, keyed by the library's parameter order (see report.json "params")
    graph.hwir    the compiled hwcomp graph (the interpreter's reference for cross-checks)
    report.json   target, arch, precision, per-kernel FLOPs/bytes and predicted roofline time, schedules used
"""

from __future__ import annotations

import functools
import logging
import re
import time
from pathlib import Path

import numpy as np

from hwcomp.artifact import atomic_outdir, read_report, register_backend, write_json
from hwcomp.cost.roofline import roofline
from hwcomp.errors import BackendError
from hwcomp.ir import Graph, save

from .build import _device_functions, pass_context, register_hooks
from .relax_lowering import lower_to_relax
from .scheduled_ops import apply_hwcomp_schedules
from .verify import cuda_source

log = logging.getLogger(__name__)

KNOWN_ARCHS = ("sm_70", "sm_75", "sm_80", "sm_86", "sm_87", "sm_89", "sm_90", "sm_90a", "sm_100", "sm_120")


def cuda_target(arch: str):
    import tvm

    if arch not in KNOWN_ARCHS:
        raise BackendError(f"unknown CUDA arch {arch!r}; choose one of {', '.join(KNOWN_ARCHS)} (H100/H200: sm_90)")
    return tvm.target.Target({"kind": "cuda", "arch": arch}, host={"kind": "llvm"})


def schedule_cuda(mod, precision: str):
    """Apply hwcomp's schedules to the kernels they match, dlight's default rules to the rest."""
    from tvm.s_tir import dlight as dl

    rules = []
    try:
        from hwcomp.schedules import cuda_rules  # hwcomp's own TensorIR schedules
        rules.extend(cuda_rules(precision))
    except ImportError:
        pass
    # dlight's gpu.Matmul tensorization crashes or stalls on fp16/int8 in TVM 0.27 (toolchain.md): use it
    # only for fp32, where it does not tensorize.
    if precision == "fp32":
        rules.append(dl.gpu.Matmul())
    rules += [_declining(dl.gpu.GEMV()), _declining(dl.gpu.Reduction()), _declining(dl.gpu.GeneralReduction()),
              dl.gpu.Fallback()]
    return dl.ApplyDefaultSchedule(*rules)(mod)


@functools.cache
def _declining_class():
    from tvm.s_tir import dlight as dl

    class Declining(dl.ScheduleRule):
        """A dlight rule that declines (the next rule applies) where it would fail: dlight's GEMV asserts on a
        reduction of extent 1, e.g. attention over a single key when a decoder runs on one token."""

        def __init__(self, rule):
            self.rule = rule

        def apply(self, func, target, tunable):
            try:
                return self.rule.apply(func, target, tunable)
            except (AssertionError, ValueError, IndexError) as e:
                log.debug("dlight %s declined %s: %s", type(self.rule).__name__, func.attrs, e)
                return None

        def is_target_available(self, target) -> bool:
            return self.rule.is_target_available(target)

    return Declining


def _declining(rule):
    """``rule`` wrapped so that it declines instead of raising (the class needs dlight, imported lazily)."""
    return _declining_class()(rule)


INTEGER_OPS = frozenset({"qdense", "qattention", "int_layer_norm", "int_gelu", "int_softmax"})


def float_precision(g: Graph, target_kind: str, precision: str) -> str:
    """The float type the graph's float ops compute in: fp32 on the CPU, and on CUDA for int8 graphs too, whose
    float glue (quantize, dequantize, residual adds) must round exactly as the interpreter does for the GPU
    result to equal the interpreter's bit for bit; else ``precision``."""
    if target_kind != "cuda" or any(n.op in INTEGER_OPS for n in g.nodes):
        return "fp32"
    return precision


def build(g: Graph, target_kind: str, arch: str, precision: str, tuning_db: str | None = None,
          cuda_graph: bool = True, use_schedules: bool = True):
    """Lower and compile; returns (executable, LoweredModel)."""
    import tvm
    from tvm import relax

    if precision not in ("fp32", "fp16"):
        raise BackendError(f"--precision {precision!r}: the {target_kind} backend supports fp32 and fp16")
    precision = float_precision(g, target_kind, precision)
    lm = lower_to_relax(g, precision, target=target_kind, arch=arch, use_schedules=use_schedules)
    if target_kind == "cuda":
        target = cuda_target(arch)
        with target:
            mod = relax.get_pipeline("zero")(lm.mod)
            if tuning_db:  # tuning records that beat hwcomp's schedule, then hwcomp's schedules, then dlight
                from .tuning import apply_database, database_kernels, hwcomp_preferred
                mod = apply_hwcomp_schedules(mod, lm.kernel_schedules, only=hwcomp_preferred(tuning_db, target))
                mod = apply_database(mod, target, tuning_db)
                lm.tuned_kernels = database_kernels(mod)
            mod = apply_hwcomp_schedules(mod, lm.kernel_schedules)
            mod = schedule_cuda(mod, precision)
            # Static shapes: let Relax capture the whole forward pass as one CUDA graph.
            with pass_context(**{"relax.backend.use_cuda_graph": cuda_graph}):
                ex = tvm.compile(mod, target)
    else:
        target = tvm.target.Target({"kind": "llvm"})
        mod = relax.get_pipeline("zero")(lm.mod)
        if tuning_db:
            from .tuning import apply_database, database_kernels
            mod = apply_database(mod, target, tuning_db)
            lm.tuned_kernels = database_kernels(mod)
        ex = tvm.compile(mod, target)
    return ex, lm


def _compile(target_kind: str):
    def compile_artifact(g: Graph, outdir: Path, *, precision: str = "fp16", arch: str = "sm_90",
                         tuning_db: str | None = None, quant: str = "none", source: str = "", **_: object) -> dict:
        if quant not in ("none",):
            # Quantized graphs lower through the same path once their ops are supported by the lowering.
            log.info("quantized graph (%s) compiled for %s", quant, target_kind)
        if target_kind == "cuda":
            cuda_target(arch)  # validate before any work
        t0 = time.perf_counter()
        ex, lm = build(g, target_kind, arch, precision, tuning_db)
        precision = float_precision(g, target_kind, precision)
        build_s = time.perf_counter() - t0
        with atomic_outdir(outdir) as tmp:
            ex.export_library(str(tmp / "model.so"))
            np.savez(tmp / "params.npz", **{f"p{i}": lm.params[k] for i, k in enumerate(lm.param_names)})
            g = lm.graph or g  # as lowered (fuse_qkv)
            save(g, tmp / "graph.hwir")
            rows = roofline(g, arch, precision if target_kind == "cuda" else "fp32")
            report = {
                "target": target_kind, "arch": arch if target_kind == "cuda" else "llvm", "precision": precision
                if target_kind == "cuda" else "fp32", "quant": quant, "source": Path(source).name,
                "inputs": {i: {"shape": list(g.types[i].shape), "dtype": g.types[i].dtype.value} for i in g.inputs},
                "outputs": {o: {"shape": list(g.types[o].shape), "dtype": "float32" if g.types[o].dtype.is_float
                                else g.types[o].dtype.value} for o in g.outputs},
                # the library's argument order (report keys are sorted): inputs, then params; outputs in order
                "input_order": list(g.inputs), "output_order": list(g.outputs),
                "params": lm.param_names, "build_seconds": round(build_s, 2),
                "kernels": rows,
                "predicted_total_us": round(sum(r["predicted_us"] for r in rows), 3),
                "schedules": "hwcomp schedules where they match, dlight defaults otherwise"
                + (f", tuning records from {tuning_db}" if tuning_db else ""),
                "kernel_sources": lm.kernel_sources,  # hwcomp node -> "hwcomp schedule"
                "tuned_kernels": lm.tuned_kernels,    # PrimFuncs whose schedule came from --tuning-db
                # the library's CUDA uses sm_90a-only instructions (wgmma): it runs on compute capability 9.0 only
                "needs_sm90a": target_kind == "cuda" and _device_functions().needs_sm90a(cuda_source(ex)),
            }
            write_json(tmp / "report.json", report)
        report["summary"] = (f"{len(rows)} kernels, {sum(r['flops'] for r in rows) / 1e9:.2f} GFLOP, predicted "
                             f"{report['predicted_total_us']:.1f} us (roofline), build {build_s:.1f} s")
        return report
    return compile_artifact


def check_device_arch(report: dict, compute_version: str, device_name: str = "this GPU") -> None:
    """One clear error when a CUDA artifact holds kernels the GPU cannot run: Hopper wgmma kernels (sm_90a) on a
    GPU other than compute capability 9.0 (H100/H200)."""
    if report.get("needs_sm90a") and compute_version != "9.0":
        raise BackendError(f"this artifact was compiled for {report.get('arch')} with Hopper wgmma kernels, which "
                           f"run only on compute capability 9.0 (H100/H200); {device_name} is {compute_version}. "
                           f"Recompile with --arch sm_{compute_version.replace('.', '')}")


def run_artifact(outdir: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import tvm
    from tvm import relax

    from hwcomp.interp import check_inputs
    from hwcomp.ir import load

    rep = read_report(outdir)
    if rep["target"] == "cuda":
        dev = tvm.cuda(0)
        if not dev.exist:
            raise BackendError(f"{outdir} is a CUDA artifact but this machine has no CUDA GPU; run it on a GPU "
                               "machine, or compile with --target llvm to run on the CPU")
        check_device_arch(rep, dev.compute_version, dev.device_name)
    else:
        dev = tvm.cpu(0)
    g = load(Path(outdir) / "graph.hwir")
    feeds = check_inputs(g, inputs)
    register_hooks()  # a library exported without a GPU holds CUDA source, compiled here (sm_90a for wgmma)
    lib = tvm.runtime.load_module(str(Path(outdir) / "model.so"))
    vm = relax.VirtualMachine(lib, dev)
    with np.load(Path(outdir) / "params.npz") as z:
        params = [tvm.runtime.tensor(z[f"p{i}"], dev) for i in range(len(rep["params"]))]
    args = [tvm.runtime.tensor(feeds[i], dev) for i in g.inputs] + params
    out = vm["main"](*args)
    outs = [out] if len(g.outputs) == 1 else [out[i] for i in range(len(g.outputs))]
    return {name: o.numpy() for name, o in zip(g.outputs, outs)}


register_backend("cuda", compile=_compile("cuda"), run=run_artifact, default_pipeline="cuda")
register_backend("llvm", compile=_compile("llvm"), run=run_artifact, default_pipeline="cuda")
