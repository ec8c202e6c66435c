"""Static checks of the Verilog: lint-clean on Verilator -Wall and Icarus -Wall for several
configurations, parses with pyverilog, and the generator's output is byte-identical across runs."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from backends.rtl.generate import LIBRARY, generate, wrapper_name
from hwcomp.hardware import HardwareParams
from sim.runner import RTL_DIR, SOURCES, _sim_environment, missing_reason

CONFIGS = [HardwareParams.from_string("4x4"), HardwareParams.from_string("8x4-os", vector_lanes=2),
           HardwareParams.from_string("1x1", dram_bus_bytes=4), HardwareParams.from_string("16x8", dram_bus_bytes=64)]


def _gparams(hw: HardwareParams) -> list[str]:
    return [f"-G{k}={v}" for k, v in hw.verilog_params(sim=True).items()]


@pytest.mark.parametrize("hw", CONFIGS, ids=lambda h: f"{h.rows}x{h.cols}-{h.dataflow}")
def test_verilator_lint_wall_is_clean(hw: HardwareParams) -> None:
    if missing_reason("verilator"):
        pytest.skip(missing_reason("verilator"))
    srcs = [str(RTL_DIR / s) for s in SOURCES["accel_sim_top"]]
    with _sim_environment("verilator"):
        proc = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "accel_sim_top",
                               *_gparams(hw), *srcs], capture_output=True, text=True)
    assert proc.returncode == 0 and "%Warning" not in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("hw", CONFIGS, ids=lambda h: f"{h.rows}x{h.cols}-{h.dataflow}")
def test_icarus_compiles_without_warnings(hw: HardwareParams, tmp_path: Path) -> None:
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not on PATH")
    srcs = [str(RTL_DIR / s) for s in SOURCES["accel_sim_top"]]
    params = [f"-Paccel_sim_top.{k}={v}" for k, v in hw.verilog_params(sim=True).items()]
    proc = subprocess.run(["iverilog", "-g2005", "-Wall", "-o", str(tmp_path / "a.vvp"), "-s", "accel_sim_top",
                           *params, *srcs], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr[-3000:]


def test_pyverilog_parses_every_module(tmp_path: Path) -> None:
    pytest.importorskip("pyverilog")
    if shutil.which("iverilog") is None:
        pytest.skip("pyverilog preprocesses with iverilog, which is not on PATH")
    from pyverilog.vparser.parser import parse

    cwd = os.getcwd()
    os.chdir(tmp_path)  # pyverilog writes parser.out / parsetab.py into the working directory
    try:
        ast, _ = parse([str(RTL_DIR / s) for s in SOURCES["accel_sim_top"]], debug=False,
                       outputdir=str(tmp_path))
    finally:
        os.chdir(cwd)
    names = {d.name for d in ast.description.definitions}
    assert names == {"pe", "systolic_array", "spad", "requant", "vec_lane", "vector_unit", "accel_top",
                     "dram_model", "accel_sim_top"}


def _digest(files: list[Path]) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.mark.parametrize("spec", ["8x8", "16x16-os"])
def test_generated_verilog_is_byte_identical_across_runs(spec: str, tmp_path: Path) -> None:
    hw = HardwareParams.from_string(spec)
    a = generate(hw, tmp_path / "a")
    b = generate(hw, tmp_path / "b")
    assert [f.name for f in a] == [f.name for f in b] == [*LIBRARY, f"{wrapper_name(hw)}.v", "accel_config.h"]
    assert _digest(a) == _digest(b)
    top = (tmp_path / "a" / f"{wrapper_name(hw)}.v").read_text()
    assert f".ROWS({hw.rows})" in top and f".DATAFLOW({hw.dataflow_code})" in top


def test_generated_wrapper_elaborates(tmp_path: Path) -> None:
    if shutil.which("iverilog") is None:
        pytest.skip("iverilog not on PATH")
    hw = HardwareParams.from_string("8x8-os")
    files = [str(f) for f in generate(hw, tmp_path) if f.suffix == ".v"]
    proc = subprocess.run(["iverilog", "-g2005", "-Wall", "-o", str(tmp_path / "a.vvp"), "-s", wrapper_name(hw),
                           *files], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
