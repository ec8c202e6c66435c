"""Prove, without a GPU, that a TVM CUDA module holds real machine code for a given SM architecture.

On a machine without ``libcuda.so.1`` TVM keeps the CUDA C source in the module (the GPU machine compiles
it at load). :func:`compile_fatbin` compiles that source with ``nvcc`` for one ``sm_XX`` and
:func:`fatbin_archs` reads the fatbin container back (entry kind 2 = ELF cubin, kind 1 = PTX), checking
each cubin's own ELF header (``e_machine`` 190 = EM_CUDA, SM version in bits 8..15 of ``e_flags``), so
the check needs neither ``cuobjdump`` nor a driver.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import tvm
from tvm.support import nvcc

FATBIN_MAGIC = 0xBA55ED50
EM_CUDA = 190


class VerifyError(RuntimeError):
    """The CUDA source did not compile, or the binary does not hold code for the requested arch."""


@dataclass(frozen=True)
class FatbinEntry:
    kind: str  # "elf" or "ptx"
    arch: int  # e.g. 90
    size: int


def cuda_source(executable) -> str:
    """CUDA C source of every CUDA module imported by a ``tvm.compile`` result (Executable or Module)."""
    mod = getattr(executable, "mod", executable)
    srcs = []
    stack = [mod]
    while stack:
        m = stack.pop()
        if m.kind == "cuda":
            srcs.append(m.inspect_source())
        stack.extend(m.imports)
    if not srcs:
        raise VerifyError("module holds no CUDA code (was it built for a cuda target?)")
    return "\n".join(srcs)


def compile_fatbin(source: str, arch: str = "sm_90", options: list[str] | None = None) -> bytes:
    """Compile CUDA C to a fatbin holding an ``arch`` cubin (and its PTX) with nvcc."""
    target = tvm.target.Target({"kind": "cuda", "arch": arch})
    digits = arch.removeprefix("sm_")
    from .build import _device_functions

    if digits == "90" and _device_functions().needs_sm90a(source):
        digits = "90a"  # wgmma: sm_90's arch-specific target, as hwcomp's compile hook builds it
    gencode = ["-gencode", f"arch=compute_{digits},code=[sm_{digits},compute_{digits}]"]
    try:
        with target:
            return bytes(nvcc.compile_cuda(source, target_format="fatbin", arch=gencode,
                                           options=options or ["-w"], compiler="nvcc"))
    except RuntimeError as err:  # nvcc's stderr is in the message
        raise VerifyError(f"nvcc failed for {arch}: {str(err)[-2000:]}") from err


def elf_arch(cubin: bytes) -> int:
    """SM version (e.g. 90) recorded in a CUDA ELF's header."""
    if cubin[:4] != b"\x7fELF":
        raise VerifyError("not an ELF file")
    (machine,) = struct.unpack_from("<H", cubin, 18)
    if machine != EM_CUDA:
        raise VerifyError(f"ELF e_machine {machine} is not EM_CUDA ({EM_CUDA})")
    # e_flags sits at 48 in ELF64 (at 36 in ELF32); cubins are ELF64 (EI_CLASS 2).
    (flags,) = struct.unpack_from("<I", cubin, 48 if cubin[4] == 2 else 36)
    return (flags >> 8) & 0xFF


def fatbin_archs(fatbin: bytes) -> list[FatbinEntry]:
    """Entries of a fatbin container; ELF entries are checked against their own ELF header."""
    magic, _version, header_size, total = struct.unpack_from("<IHHQ", fatbin, 0)
    if magic != FATBIN_MAGIC:
        raise VerifyError(f"bad fatbin magic {magic:#x}")
    entries, off, end = [], header_size, header_size + total
    while off < end:
        kind, _, hsz, size = struct.unpack_from("<HHIQ", fatbin, off)
        (arch,) = struct.unpack_from("<I", fatbin, off + 28)
        payload = fatbin[off + hsz: off + hsz + size]
        if kind == 2:
            if elf_arch(payload) != arch:
                raise VerifyError(f"fatbin entry says sm_{arch}, its ELF says sm_{elf_arch(payload)}")
            entries.append(FatbinEntry("elf", arch, size))
        elif kind == 1:
            entries.append(FatbinEntry("ptx", arch, size))
        off += hsz + size
    return entries


@dataclass(frozen=True)
class BuildReport:
    arch: str
    fatbin_bytes: int
    entries: tuple[FatbinEntry, ...]
    kernels: tuple[str, ...]
    mma_instructions: int  # mma.sync in the source: >0 proves the tensor-core path survived lowering
    wgmma_instructions: int = 0  # wgmma.mma_async (Hopper warpgroup GEMM, built for sm_90a)


def verify_executable(executable, arch: str = "sm_90") -> BuildReport:
    """Compile the module's CUDA source for ``arch``; raise unless the fatbin holds an ``arch`` cubin."""
    src = cuda_source(executable)
    fb = compile_fatbin(src, arch)
    entries = tuple(fatbin_archs(fb))
    want = int(re.match(r"sm_(\d+)", arch).group(1))  # sm_90a's cubin says 90
    if not any(e.kind == "elf" and e.arch == want for e in entries):
        raise VerifyError(f"fatbin holds {entries}, no {arch} machine code")
    kernels = tuple(dict.fromkeys(re.findall(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(', src)))
    return BuildReport(arch, len(fb), entries, kernels, src.count("mma.sync"), src.count("wgmma.mma_async"))
