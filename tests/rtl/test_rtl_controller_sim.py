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
    assert out.cycles == model.cycles, f"rtl {out.cycles} cycles, model {model.cycles}"  # the schedule is exact


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


def _random_program(hw: HardwareParams, rng: np.random.Generator, n_ops: int):
    """Random instruction mixes that stress the decoupled units: overlapping scratchpad ranges, chained and
    unchained WS MATMULs (short ones, reused weights), stride-0 loads, STOREs read back by later LOADs (DRAM
    RAW/WAR across the LD and ST units), REQUANT/VECTOR against STORE, SYNC fences."""
    from backends.rtl.isa import Matmul, Requant, Sync
    from backends.rtl.isa_model import line_bytes
    from backends.rtl.program import pack_params

    half = hw.dram_bytes // 2
    dram = rng.integers(0, 256, hw.dram_bytes, dtype=np.uint8)
    mult, sh = quantize_multiplier(rng.uniform(2e-5, 4e-3, 4 * hw.cols))
    params = pack_params(hw, mult, sh, rng.integers(-20, 20, 4 * hw.cols))
    dram[:params.size] = params
    lines = {Buffer.INPUT: hw.input_lines, Buffer.WEIGHT: hw.weight_lines, Buffer.ACC: hw.acc_lines,
             Buffer.VECTOR: hw.vector_lines}

    def span(total: int, most: int) -> tuple[int, int]:
        n = int(rng.integers(1, min(most, total) + 1))
        return int(rng.integers(0, total - n + 1)), n

    prog = []
    for _ in range(n_ops):
        kind = rng.choice(["load", "load", "matmul", "matmul", "matmul", "requant", "vector", "store", "sync"],
                          p=[.15, .15, .2, .15, .1, .08, .07, .08, .02])
        if kind == "load":
            buf = Buffer(int(rng.choice([0, 0, 1, 1, 2, 3, 4])))
            if buf == Buffer.PARAM:
                prog.append(Load(buf, 0, 1, int(rng.integers(0, 4)) * hw.param_line_bytes, 0))
                continue
            sp, n = span(lines[buf], 24)
            lb = line_bytes(hw, buf)
            stride = int(rng.choice([0, lb, 2 * lb, 3]))
            prog.append(Load(buf, sp, n, int(rng.integers(256, hw.dram_bytes - (n + 1) * max(stride, lb))), stride))
        elif kind == "matmul":
            if hw.dataflow == "ws":
                a, n = span(hw.input_lines, 20 if rng.random() < .7 else 3)
                c = int(rng.integers(0, hw.acc_lines - n + 1)) if rng.random() < .5 else \
                    (prog[-1].c if prog and isinstance(prog[-1], Matmul) and prog[-1].c + n <= hw.acc_lines else 0)
                b = int(rng.integers(0, hw.weight_lines - hw.rows + 1))
                prog.append(Matmul(a, b, c, n, accumulate=bool(rng.random() < .6),
                                   load_weights=bool(rng.random() < .8)))
            else:
                k = int(rng.integers(1, 20))
                prog.append(Matmul(int(rng.integers(0, hw.input_lines - k + 1)),
                                   int(rng.integers(0, hw.weight_lines - k + 1)),
                                   int(rng.integers(0, hw.acc_lines - hw.rows + 1)), k,
                                   accumulate=bool(rng.random() < .6)))
        elif kind == "requant":
            src, n = span(hw.acc_lines, 20)
            prog.append(Requant(src, int(rng.integers(0, hw.vector_lines - n + 1)), n))
        elif kind == "vector":
            _, n = span(hw.vector_lines, 12)
            x, y, z = (int(rng.integers(0, hw.vector_lines - n + 1)) for _ in range(3))
            prog.append(Vector(VecOp(int(rng.integers(0, len(VecOp)))), x, y, z, n))
        elif kind == "store":
            buf = Buffer.VECTOR if rng.random() < .6 else Buffer.ACC
            sp, n = span(lines[buf], 16)
            lb = line_bytes(hw, buf)
            # half of them into the region later LOADs read from
            lo = 256 if rng.random() < .5 else half
            prog.append(Store(buf, sp, n, int(rng.integers(lo, hw.dram_bytes - (n + 1) * lb)), lb))
        else:
            prog.append(Sync())
    prog.append(Halt())
    return BuiltProgram(prog, dram)


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_random_programs_on_decoupled_units_are_bit_and_cycle_exact(simulator: str, dataflow: str) -> None:
    """Whatever the overlap the scoreboard allows, the RTL computes what sequential execution computes, in
    exactly the cycles isa_model.schedule predicts."""
    hw = _hw(simulator, dataflow)
    rng = np.random.default_rng(7 if dataflow == "ws" else 8)
    for _ in range(2 if simulator == "icarus" else 3):
        built = _random_program(hw, rng, 60 if simulator == "icarus" else 150)
        model, out = _run(simulator, hw, built)
        assert out.retired == len(built.program)
        assert out.cycles == model.cycles, f"rtl {out.cycles} cycles, model {model.cycles}"
