"""End to end: the controller runs tiled matmul+requant programs bit-exactly (vs numpy) and in the
number of cycles the instruction-level model predicts; hangs end in a SimulationError."""

from __future__ import annotations

import numpy as np
import pytest

from backends.rtl.isa import Buffer, Halt, Load, Store, Vector, VecOp, assemble
from backends.rtl.isa_model import AccelModel
from backends.rtl.program import BuiltProgram, elementwise, matmul_requant
from backends.rtl.vector_ops import apply_vec_op
from hwcomp.errors import SimulationError
from hwcomp.hardware import HardwareParams
from hwcomp.ops.intmath import int_matmul, quantize_multiplier, requantize
from sim.accel import run_program
from sim.runner import missing_reason

pytestmark = pytest.mark.rtl

# (array, M, K, N): several tiles in every dimension, ragged edges; bigger on Verilator.
PROBLEM = {"icarus": ("4x4", 10, 20, 9), "verilator": ("8x8", 40, 72, 20)}
CYCLE_TOLERANCE = 0.05


def _hw(sim: str, dataflow: str) -> HardwareParams:
    """One configuration per simulator and dataflow (the vector test reuses the WS build)."""
    spec = PROBLEM[sim][0]
    cols = int(spec.split("x")[1])
    return HardwareParams.from_string(f"{spec}-{dataflow}", dram_bytes=1 << 14, dram_bus_bytes=8,
                                      vector_lanes=cols // 2)


def _run(sim: str, hw: HardwareParams, built: BuiltProgram, *, timeout_cycles: int | None = None):
    model = AccelModel(hw).run(built.program, built.dram)
    out = run_program(sim, hw, assemble(built.program), [str(i) for i in built.program], built.dram, model.dram,
                      timeout_cycles=timeout_cycles or 2 * model.cycles + 1000)
    return model, out


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_tiled_matmul_requant_bit_exact_and_cycle_model(simulator: str, dataflow: str) -> None:
    _, m, k, n = PROBLEM[simulator]
    hw = _hw(simulator, dataflow)
    rng = np.random.default_rng(42)
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    a[0], b[:, 0] = -128, -128                         # (-128)*(-128) rows/columns
    bias = rng.integers(-100_000, 100_000, n)
    bias[1] = (1 << 31) - 1                            # wraps in the int32 accumulator
    mult, shift = quantize_multiplier(rng.uniform(2e-5, 4e-4, n))
    zp = rng.integers(-20, 20, n)
    built = matmul_requant(hw, a, b, mult, shift, zp, bias, tile_m=6, tile_k=8)
    model, out = _run(simulator, hw, built)

    acc = (int_matmul(a, b).astype(np.int64) + bias).astype(np.int32)  # int32 wrap, as the hardware
    want = requantize(acc, mult, shift, zp)
    np.testing.assert_array_equal(built.read_y(out.dram), want)
    assert np.any(want == 127) or np.any(want == -128), "the problem should exercise saturation"
    assert out.retired == len(built.program)
    err = abs(out.cycles - model.cycles) / model.cycles
    assert err <= CYCLE_TOLERANCE, f"rtl {out.cycles} cycles, model {model.cycles} ({err:.1%})"


def test_vector_program_add_and_relu(simulator: str) -> None:
    """One program: ADD (saturating) then RELU of the first operand, both results stored."""
    hw = _hw(simulator, "ws")
    rng = np.random.default_rng(9)
    x = rng.integers(-128, 128, (4, 2 * hw.cols))
    y = rng.integers(-128, 128, (4, 2 * hw.cols))
    x[0, :4], y[0, :4] = [127, -128, 100, -100], [127, -128, 100, -100]   # saturation
    built = elementwise(hw, VecOp.ADD, x, y)
    lines, lb = x.size // hw.cols, hw.vector_line_bytes
    relu_off = built.layout.end
    built.program[-1:] = [Vector(VecOp.RELU, 0, 0, 3 * lines, lines),
                          Store(Buffer.VECTOR, 3 * lines, lines, relu_off, lb), Halt()]
    model, out = _run(simulator, hw, built)
    np.testing.assert_array_equal(built.read_y(out.dram), apply_vec_op(VecOp.ADD, x, y))
    relu = out.dram[relu_off: relu_off + x.size].view(np.int8).reshape(x.shape)
    np.testing.assert_array_equal(relu, apply_vec_op(VecOp.RELU, x, y))
    assert out.cycles == model.cycles


def test_hang_is_reported_with_the_last_retired_instruction() -> None:
    if missing_reason("icarus"):
        pytest.skip(f"icarus unavailable: {missing_reason('icarus')}")
    hw = _hw("icarus", "ws")
    prog = [Load(Buffer.INPUT, 0, 2, 0, 4), Load(Buffer.WEIGHT, 0, 200, 0, 4), Halt()]
    built = BuiltProgram(prog, np.zeros(hw.dram_bytes, np.uint8))
    with pytest.raises(SimulationError, match=r"hung.*last retired: LOAD\(buf=INPUT, sp=0, lines=2"):
        _run("icarus", hw, built, timeout_cycles=100)
