"""yosys synthesis wrappers on a tiny configuration (the full sweep is bench/rtl/synth_resources.py)."""

from __future__ import annotations

import shutil

import pytest

from hwcomp.cost.synth import sram_bits, synth_generic
from hwcomp.hardware import HardwareParams

pytestmark = pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not on PATH")


def test_generic_synth_counts_cells_memories_and_area() -> None:
    hw = HardwareParams.from_string("2x2", imem_depth=16)
    res = synth_generic(hw, timeout_s=600)
    assert res.memories == 6            # 4 scratchpads + second vector read port + imem
    assert res.cells > 1000 and res.flops > 100
    assert res.sram_bits == sram_bits(hw) == 8 * (4 * 256 + 4 * 256 + 16 * 256 + 2 * 4 * 256) + 128 * 16
    assert res.total_um2 > res.logic_um2 > 0
