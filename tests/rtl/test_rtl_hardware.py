"""HardwareParams: validation messages, presets, derived geometry, Verilog parameters."""

from __future__ import annotations

import pytest

from hwcomp.errors import HardwareError
from hwcomp.hardware import HardwareParams


def test_from_string_square_array_scales_buffers() -> None:
    hw = HardwareParams.from_string("16x16")
    assert (hw.rows, hw.cols, hw.dataflow) == (16, 16, "ws")
    assert hw.input_lines == 256 and hw.acc_line_bytes == 64 and hw.vector_lanes == 16


def test_from_string_with_dataflow_and_override() -> None:
    hw = HardwareParams.from_string("8x4-os", dram_bus_bytes=8)
    assert (hw.rows, hw.cols, hw.dataflow, hw.dram_bus_bytes) == (8, 4, "os", 8)


@pytest.mark.parametrize("spec", ["0x16", "16x129"])
def test_impossible_array_is_rejected_with_the_fix(spec: str) -> None:
    with pytest.raises(HardwareError, match=r"array .* is impossible: rows and cols must be integers 1\.\.128"):
        HardwareParams.from_string(spec)


def test_garbled_spec_is_rejected() -> None:
    with pytest.raises(HardwareError, match="'sixteen' is not understood"):
        HardwareParams.from_string("sixteen")


@pytest.mark.parametrize("kw, match", [
    ({"dataflow": "rs"}, "dataflow 'rs' is unknown"),
    ({"input_sp_bytes": 1000}, "input_sp_bytes=1000 is impossible"),
    ({"acc_sp_bytes": 64 * 3}, "line count must be a power of two"),
    ({"dram_bus_bytes": 12}, "dram_bus_bytes=12 is impossible"),
    ({"vector_lanes": 5}, "vector_lanes=5 is impossible: it must divide cols=16"),
    ({"clock_mhz": 0}, "clock_mhz=0 is impossible"),
])
def test_bad_fields_are_quoted(kw: dict, match: str) -> None:
    with pytest.raises(HardwareError, match=match):
        HardwareParams(**kw)


def test_params_are_frozen_and_keyword_only() -> None:
    hw = HardwareParams()
    with pytest.raises(Exception):
        hw.rows = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        HardwareParams(16, 16)  # type: ignore[misc]


def test_derived_widths_follow_depths() -> None:
    hw = HardwareParams.from_string("4x8", acc_sp_bytes=32 * 512)
    assert hw.acc_lines == 512 and hw.acc_addr_bits == 9
    assert hw.param_line_bytes == 64 and hw.beats(64) == 4 and hw.vector_passes == 1
    p = hw.verilog_params(sim=True)
    assert p["ROWS"] == 4 and p["COLS"] == 8 and p["ACC_DEPTH"] == 512 and p["DRAM_BYTES"] == hw.dram_bytes
    assert "DRAM_BYTES" not in hw.verilog_params()
