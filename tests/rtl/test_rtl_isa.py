"""ISA encoding, assembler determinism, and the instruction-level model against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from backends.rtl.isa import (Buffer, Halt, Load, Matmul, Requant, Store, Sync, Vector, VecOp, assemble, decode,
                              disassemble, encode)
from backends.rtl.isa_model import AccelModel, program_cycles
from backends.rtl.program import elementwise, matmul_requant
from backends.rtl.vector_ops import apply_vec_op
from hwcomp.errors import HardwareError
from hwcomp.hardware import HardwareParams
from hwcomp.ops.intmath import int_matmul, quantize_multiplier, requantize

PROGRAM = [Load(Buffer.INPUT, 3, 17, 0x1234, 64), Load(Buffer.PARAM, 0, 1, 64, 0),
           Matmul(1, 2, 3, 200, accumulate=True, load_weights=False), Matmul(0, 0, 0, 16),
           Requant(5, 6, 7), Vector(VecOp.RELU, 1, 2, 3, 4), Store(Buffer.ACC, 9, 10, 0xFFFF_FFF0, (1 << 20) - 1),
           Sync(), Halt()]


def test_every_instruction_round_trips_through_its_word() -> None:
    for ins in PROGRAM:
        word = encode(ins)
        assert 0 <= word < 1 << 128
        assert decode(word) == ins


def test_assembler_is_deterministic_and_reversible() -> None:
    text = assemble(PROGRAM)
    assert text == assemble(list(PROGRAM))
    lines = text.splitlines()
    assert len(lines) == len(PROGRAM) and all(len(x) == 32 for x in lines) and text.endswith("\n")
    assert disassemble(text) == PROGRAM
    assert lines[-1] == f"{7:032x}"  # HALT is opcode 7 in bits [3:0]


def test_field_overflow_names_the_field() -> None:
    with pytest.raises(HardwareError, match="field n=65536 does not fit in 16 bits"):
        encode(Load(Buffer.INPUT, 0, 1 << 16, 0, 0))


def test_unknown_opcode_is_rejected() -> None:
    with pytest.raises(HardwareError, match="opcode 0 is not an instruction"):
        decode(0)


def _problem(rng: np.random.Generator, m: int, k: int, n: int, bias: bool):
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    mult, sh = quantize_multiplier(rng.uniform(2e-5, 5e-4, n))
    zp = rng.integers(-20, 20, n)
    bb = rng.integers(-50_000, 50_000, n) if bias else None
    want = requantize(int_matmul(a, b) + (0 if bb is None else bb), mult, sh, zp)
    return a, b, mult, sh, zp, bb, want


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("shape, bias", [((1, 1, 1), False), ((13, 37, 10), True), ((33, 64, 17), False)])
def test_model_matmul_requant_matches_numpy(dataflow: str, shape: tuple[int, int, int], bias: bool) -> None:
    rng = np.random.default_rng(sum(shape))
    hw = HardwareParams.from_string(f"8x4-{dataflow}", dram_bytes=1 << 16)
    a, b, mult, sh, zp, bb, want = _problem(rng, *shape, bias)
    built = matmul_requant(hw, a, b, mult, sh, zp, bb, tile_m=7, tile_k=16)
    res = AccelModel(hw).run(built.program, built.dram)
    np.testing.assert_array_equal(built.read_y(res.dram), want)
    assert res.cycles == program_cycles(hw, built.program) > 0


def test_model_accumulator_wraps_like_int32() -> None:
    """A bias near INT32_MAX plus positive products wraps exactly like a 32-bit accumulator."""
    hw = HardwareParams.from_string("4x4", dram_bytes=1 << 14)
    a = np.full((4, 8), 127, np.int8)
    b = np.full((8, 4), 127, np.int8)
    bias = np.full(4, (1 << 31) - 1000)
    built = matmul_requant(hw, a, b, 1 << 30, 31, 0, bias)
    res = AccelModel(hw).run(built.program, built.dram)
    acc = int_matmul(a, b).astype(np.int64) + bias
    np.testing.assert_array_equal(built.read_y(res.dram), requantize(acc.astype(np.int64).astype(np.int32), 1 << 30, 31, 0))


@pytest.mark.parametrize("op", list(VecOp))
def test_model_elementwise_matches_golden(op: VecOp) -> None:
    rng = np.random.default_rng(int(op))
    hw = HardwareParams.from_string("4x8", vector_lanes=2)
    x = rng.integers(-128, 128, (3, 16))
    y = rng.integers(-128, 128, (3, 16))
    built = elementwise(hw, op, x, y)
    res = AccelModel(hw).run(built.program, built.dram)
    np.testing.assert_array_equal(built.read_y(res.dram), apply_vec_op(op, x, y))


def test_vector_add_saturates() -> None:
    assert apply_vec_op(VecOp.ADD, np.array([100, -100]), np.array([100, -100])).tolist() == [127, -128]


def test_model_rejects_out_of_range_scratchpad_lines() -> None:
    hw = HardwareParams.from_string("4x4")
    with pytest.raises(HardwareError, match="exceed the 256-line scratchpad"):
        AccelModel(hw).run([Load(Buffer.INPUT, 250, 10, 0, 4), Halt()], np.zeros(hw.dram_bytes, np.uint8))


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_matmul_cost_equals_the_model_run(dataflow: str) -> None:
    from backends.rtl.cost import matmul_cost

    hw = HardwareParams.from_string(f"4x4-{dataflow}", dram_bytes=1 << 14)
    rng = np.random.default_rng(1)
    a, b, mult, sh, zp, bb, _ = _problem(rng, 9, 13, 6, True)
    built = matmul_requant(hw, a, b, mult, sh, zp, bb)
    cost = matmul_cost(hw, 9, 13, 6, bias=True)
    assert cost.cycles == AccelModel(hw).run(built.program, built.dram).cycles
    assert 0 < cost.utilization < 1 and cost.macs == 9 * 13 * 6
