"""yosys synthesis wrappers on small tops (the full accel_top sweep is bench/rtl/synth_resources.py)."""

from __future__ import annotations

import shutil

import pytest

from hwcomp.cost.synth import sram_bits, synth_generic, synth_xilinx
from hwcomp.errors import BackendError
from hwcomp.hardware import HardwareParams

pytestmark = pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not on PATH")


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_xilinx_maps_one_dsp48_per_pe(dataflow: str) -> None:
    hw = HardwareParams.from_string(f"2x3-{dataflow}")
    res = synth_xilinx(hw, top="systolic_array", timeout_s=600)
    assert res.dsp == hw.rows * hw.cols
    assert res.ff > 0 and res.bram36 == 0


def test_generic_synth_counts_cells_flops_and_area() -> None:
    hw = HardwareParams.from_string("2x2")
    res = synth_generic(hw, top="systolic_array", timeout_s=600)
    assert res.memories == 0 and res.sram_bits == 0
    # every PE holds at least a, b (8 bits each) and a 32-bit partial sum
    assert res.flops >= hw.rows * hw.cols * (8 + 8 + 32)
    assert res.logic_um2 > 0 and res.total_um2 == res.logic_um2


def test_sram_bits_of_accel_top_follow_the_buffers() -> None:
    hw = HardwareParams.from_string("2x2", imem_depth=16)
    want = 8 * (hw.input_sp_bytes + hw.weight_sp_bytes + hw.acc_sp_bytes + 2 * hw.vector_sp_bytes) + 128 * 16
    assert sram_bits(hw) == want == 8 * (512 + 512 + 2048 + 2 * 512) + 2048


def test_unknown_top_is_rejected() -> None:
    with pytest.raises(BackendError, match="cannot synthesize 'dram_model'"):
        synth_generic(HardwareParams.from_string("2x2"), top="dram_model")
