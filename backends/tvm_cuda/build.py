"""Build hwcomp's scheduled PrimFuncs for CUDA: standalone kernels or a Relax module of ``call_tir``s.

``cuda_target(arch)`` gives the dict-form target (TVM 0.27 rejects CLI-style strings); every
``tvm.compile`` for CUDA runs inside ``with target:`` (else "No CUDA architecture was specified").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tvm
from tvm import relax, tirx


def cuda_target(arch: str = "sm_90") -> tvm.target.Target:
    return tvm.target.Target({"kind": "cuda", "arch": arch}, host={"kind": "llvm"})


# cp.async for the global->shared copies of software-pipelined loops (hwcomp's multi-stage GEMMs). Without it
# TVM keeps the pipeline's stages and waits but issues the copies synchronously.
PASS_CONFIG = {"tirx.use_async_copy": True}


_POSTPROC = "tvm_callback_cuda_postproc"
_COMPILE = "tvm_callback_cuda_compile"
_REGISTERED = "hwcomp.cuda_device_functions"  # marks, in TVM's process-wide registry, that the hooks are in place


def _device_functions():
    try:
        from hwcomp.schedules import cuda_device_functions as dev
    except ImportError:  # backends/ imported from a source checkout's root (the bench/gpu device scripts)
        from schedules import cuda_device_functions as dev
    return dev


def _sm90a_arch() -> str | None:
    """``sm_90a`` when the CUDA build is for (or, at load, runs on) an sm_90 GPU, else None."""
    target = tvm.target.Target.current(allow_none=True)
    arch = getattr(target, "arch", None) if target is not None else None
    if not arch:
        from tvm.support.nvcc import get_target_compute_version
        arch = "sm_" + get_target_compute_version(None).replace(".", "")
    return "sm_90a" if arch in ("sm_90", "sm_90a") else None


def register_hooks() -> None:
    """Install hwcomp's two CUDA hooks in TVM, once per process (the mark lives in TVM's registry, not in this
    module, which a source checkout can import twice: as ``hwcomp.backends`` and as ``backends``). Every CUDA
    build runs it (:func:`pass_context`); call it before loading an exported library:

    * postproc: add the definitions of hwcomp's ``__device__`` helpers and generated functions
      (``schedules/cuda_device_functions.py``) to any generated source that calls them;
    * compile: build a source that uses sm_90a-only instructions (the wgmma GEMM) for ``sm_90a`` instead of
      ``sm_90``, whether TVM compiles at build time or, for a library exported on a GPU-less machine, at load.

    A hook registered before hwcomp's still runs (postproc: after hwcomp's; compile: for every other source)."""
    import tvm_ffi

    if tvm_ffi.get_global_func(_REGISTERED, allow_missing=True) is not None:
        return
    import tvm.support.nvcc  # noqa: F401 - registers TVM's own compile hook, which hwcomp's wraps

    dev = _device_functions()
    prev_post = tvm_ffi.get_global_func(_POSTPROC, allow_missing=True)
    prev_compile = tvm_ffi.get_global_func(_COMPILE, allow_missing=True)

    def hwcomp_cuda_postproc(code, target):
        code = dev.inject(code)
        return prev_post(code, target) if prev_post is not None else code

    def hwcomp_cuda_compile(code, *rest):
        arch = _sm90a_arch() if dev.needs_sm90a(code) else None
        if arch is None:
            if prev_compile is None:
                raise RuntimeError("TVM's CUDA compile hook is missing")
            return prev_compile(code, *rest)
        import os

        from tvm.support import nvcc
        mode = os.environ.get("TVM_CUDA_COMPILE_MODE", "nvrtc").lower()
        fmt = "fatbin" if mode == "nvcc" else "cubin"
        gencode = ["-gencode", f"arch=compute_{arch.removeprefix('sm_')},code={arch}"]
        return nvcc.compile_cuda(code, target_format=fmt, arch=gencode if mode == "nvcc" else arch, compiler=mode)

    tvm_ffi.register_global_func(_POSTPROC, hwcomp_cuda_postproc, override=True)
    tvm_ffi.register_global_func(_COMPILE, hwcomp_cuda_compile, override=True)
    tvm_ffi.register_global_func(_REGISTERED, lambda: True, override=True)


def pass_context(**config) -> tvm.transform.PassContext:
    """The PassContext every CUDA build of hwcomp runs in (and hwcomp's device functions registered)."""
    register_hooks()
    return tvm.transform.PassContext(opt_level=3, config={**PASS_CONFIG, **config})


def build_kernel(func: tirx.PrimFunc, name: str, arch: str = "sm_90"):
    """Compile one scheduled PrimFunc to a runnable executable (``ex[name](*tensors)`` on the GPU)."""
    target = cuda_target(arch)
    with target, pass_context():
        return tvm.compile(tvm.IRModule({name: func.with_attr("global_symbol", name)}), target)


def build_cpu_reference(func: tirx.PrimFunc, name: str = "main"):
    """Compile an *unscheduled* PrimFunc for llvm (numerics check of the kernel definition)."""
    return tvm.compile(tvm.IRModule({name: func.with_attr("global_symbol", name)}), "llvm")


@dataclass(frozen=True)
class KernelCall:
    """One ``call_tir`` in a Relax graph: a scheduled PrimFunc, its argument names, its output type."""

    name: str
    func: tirx.PrimFunc
    args: tuple[str, ...]
    out: str
    out_shape: tuple[int, ...]
    out_dtype: str


def relax_module(inputs: dict[str, tuple[tuple[int, ...], str]], calls: Sequence[KernelCall],
                 outputs: Sequence[str], params: dict[str, tuple[tuple[int, ...], str]] | None = None,
                 ) -> tvm.IRModule:
    """A Relax ``main(inputs..., params...)`` that runs ``calls`` in order via ``call_tir``.

    Values are named; ``inputs``/``params`` map a name to (shape, dtype). Weights are function
    parameters (bind them with ``relax.transform.BindParams`` to make them constants).
    """
    bb = relax.BlockBuilder()
    args = {name: relax.Var(name, relax.TensorType(list(shape), dtype))
            for name, (shape, dtype) in {**inputs, **(params or {})}.items()}
    with bb.function("main", list(args.values())):
        with bb.dataflow():
            env = dict(args)
            for call in calls:
                gv = bb.add_func(call.func.with_attr("global_symbol", call.name)
                                 .with_attr("tirx.is_scheduled", True), call.name)
                env[call.out] = bb.emit(relax.call_tir(
                    gv, [env[a] for a in call.args],
                    relax.TensorType(list(call.out_shape), call.out_dtype)), name_hint=call.out)
            outs = [env[o] for o in outputs]
            result = bb.emit_output(outs[0] if len(outs) == 1 else relax.Tuple(outs))
        bb.emit_func_output(result)
    return bb.get()


def compile_relax(mod: tvm.IRModule, arch: str = "sm_90"):
    """Compile a Relax module. PrimFuncs marked ``tirx.is_scheduled`` (every hwcomp kernel) are kept;
    the CUDA default pipeline legalizes the remaining Relax ops and schedules them with dlight's
    default rules (reductions, elementwise, transposes)."""
    target = cuda_target(arch)
    with target, pass_context():
        return tvm.compile(mod, target, relax_pipeline="default")


def export(executable, path: str | Path) -> Path:
    """``export_library`` to a .so (on a GPU-less machine it embeds the CUDA source, compiled at load)."""
    path = Path(path)
    executable.export_library(str(path))
    return path
