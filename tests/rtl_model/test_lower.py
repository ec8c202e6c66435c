"""Lowering of quantized graphs to accelerator programs, checked on the instruction-level model (no
simulator): bit-exact against the interpreter, tiling across every scratchpad limit, error cases."""

from __future__ import annotations

import numpy as np
import pytest

import hwcomp
from backends.rtl.compile import compile as rtl_compile
from backends.rtl.lower import HostStep, lower, plan_cycles
from backends.rtl.runtime import load_plan, run_on_model
from hwcomp.errors import HardwareError
from hwcomp.hardware import HardwareParams

from .conftest import assert_bit_exact, attention, mlp

# 4x8 array with tiny scratchpads: every qdense crosses M, N and K tiles and the input does not stay resident.
SMALL = HardwareParams(rows=4, cols=8, input_sp_bytes=4 * 8, weight_sp_bytes=8 * 8, acc_sp_bytes=32 * 8,
                       vector_sp_bytes=8 * 8, vector_lanes=8, imem_depth=16)


@pytest.mark.parametrize("hw", [HardwareParams.from_string("4x4"), HardwareParams.from_string("16x16"), SMALL],
                         ids=["4x4", "16x16", "tiny-buffers"])
def test_mlp_on_model_bit_exact(hw):
    g, feeds = mlp()
    plan = lower(g, hw)
    outs, stats = run_on_model(plan, g, feeds)
    assert_bit_exact(hwcomp.run(g, feeds), outs)
    assert stats.cycles == stats.predicted > 0
    ops = [p.op for s in plan.segments for p in s.phases]
    host = [(s.op, s.kind) for s in plan.steps if isinstance(s, HostStep)]
    if hw is SMALL:   # an 8-line vector buffer cannot stage the 256-entry table: i-GELU stays on the host
        assert ops == ["qdense", "qdense", "qdense"]
        assert host == [("quantize", "node"), ("int_gelu", "node"), ("qdense", "epilogue")]
    else:
        assert ops == ["qdense", "qdense", "int_gelu", "qdense"]
        assert host == [("quantize", "node"), ("qdense", "epilogue")]


def test_tiny_imem_splits_segments_into_chunks():
    g, _ = mlp()
    plan = lower(g, SMALL)
    assert max(len(s.chunks(SMALL.imem_depth)) for s in plan.segments) > 1
    assert all(len(ch) <= SMALL.imem_depth for s in plan.segments for ch in s.chunks(SMALL.imem_depth))


def test_bert_tiny_on_model_bit_exact(bert_tiny_q):
    g, feeds = bert_tiny_q
    plan = lower(g, HardwareParams.from_string("16x16"))
    outs, stats = run_on_model(plan, g, feeds)
    assert_bit_exact(hwcomp.run(g, feeds), outs)
    assert len(plan.segments) == 8
    assert sorted({p.op for s in plan.segments for p in s.phases}) == ["int_gelu", "qattention.pv", "qattention.qk",
                                                                        "qdense"]
    assert sum(len(s.phases) for s in plan.segments) == 18      # 12 qdense + 2 x (QK^T, PV, i-GELU)
    cyc = plan_cycles(plan)
    assert cyc["total_cycles"] == stats.cycles


def test_compile_writes_deterministic_artifact_and_plan_round_trips(tmp_path):
    g, feeds = mlp()
    a, b = tmp_path / "a", tmp_path / "b"
    rep = rtl_compile(g, a, array="4x4")
    rtl_compile(g, b, array="4x4")
    assert rep["files"] == sorted(rep["files"]) and "rtl/accel_4x4_ws.v" in rep["files"]
    for name in rep["files"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert rep["resources"]["method"].startswith("analytic")
    assert [h["op"] for h in rep["host_steps"]] == ["quantize", "qdense"]
    plan = load_plan(a)
    outs, _ = run_on_model(plan, hwcomp.ir.load(a / "graph.hwir"), feeds)
    assert_bit_exact(hwcomp.run(g, feeds), outs)


def test_generated_top_parses_with_pyverilog(tmp_path):
    pytest.importorskip("pyverilog")
    import os
    import shutil

    if shutil.which("iverilog") is None:
        pytest.skip("pyverilog needs iverilog for preprocessing")
    from pyverilog.vparser.parser import parse

    g, _ = mlp()
    rtl_compile(g, tmp_path / "art", array="4x4")
    rtl = tmp_path / "art" / "rtl"
    files = [str(rtl / f) for f in ("pe.v", "systolic_array.v", "spad.v", "requant.v", "vec_lane.v", "vector_unit.v",
                                    "accel_top.v", "accel_4x4_ws.v")]
    cwd = os.getcwd()
    os.chdir(tmp_path)  # pyverilog writes parser tables into the working directory
    try:
        ast, _ = parse(files)
    finally:
        os.chdir(cwd)
    names = {d.name for d in ast.description.definitions}
    assert {"accel_4x4_ws", "accel_top"} <= names


def test_not_quantized_model_is_rejected(tmp_path):
    from tests.hls.conftest import make_graph

    rng = np.random.default_rng(0)
    g = make_graph({"x": rng.standard_normal((2, 8)).astype(np.float32)},
                   {"w": rng.standard_normal((8, 4)).astype(np.float32)}, [("MatMul", ["x", "w"], {}, "y")], ["y"])
    with pytest.raises(HardwareError, match=r"not quantized.*MatMul.*quantize with --quant int8"):
        rtl_compile(g, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unsupported_op_names_node_and_says_no_host_fallback(tmp_path):
    g, _ = mlp()
    g.nodes[3].op = "Softmax"   # a float op in the middle of an int8 graph (lowering checks before running)
    with pytest.raises(HardwareError, match=r"node 'int_gelu_h3' \(Softmax\).*--keep-float/host fallback is not "
                                            r"available for RTL"):
        lower(g, HardwareParams.from_string("4x4"))


def test_array_too_big_for_buffers_is_a_clear_error(tmp_path):
    g, _ = mlp()
    with pytest.raises(HardwareError, match=r"input_sp_bytes=1024 gives 16 lines of 64 bytes.*one tile must fit"):
        rtl_compile(g, tmp_path / "out", array="64x64", input_sp_bytes=1024)


def test_output_stationary_whole_models_are_rejected_with_the_reason():
    g, _ = mlp()
    with pytest.raises(HardwareError, match=r"dataflow 'os'.*--dataflow ws"):
        lower(g, HardwareParams.from_string("4x4-os"))


@pytest.mark.parametrize("causal", [0, 1])
def test_qattention_matmuls_on_model_bit_exact(causal):
    g, feeds = attention(causal)
    plan = lower(g, HardwareParams.from_string("4x4"))
    outs, _ = run_on_model(plan, g, feeds)
    assert_bit_exact(hwcomp.run(g, feeds), outs)
    assert [p.op for s in plan.segments for p in s.phases] == ["qattention.qk", "qattention.pv"]
    host = [(s.op, s.kind) for s in plan.steps if isinstance(s, HostStep)]
    assert host == [("qattention", "transpose"), ("qattention", "softmax"), ("qattention", "node")]


def test_qattention_head_narrower_than_the_array_runs_on_the_host():
    g, feeds = attention(0, d=4)
    plan = lower(g, HardwareParams.from_string("8x8"))
    assert not plan.segments and all(s.kind == "node" for s in plan.steps)


def test_int_gelu_table_covers_every_int8_input():
    """All 256 int8 codes through quantize -> int_gelu (vector-unit table) match the interpreter."""
    from hwcomp.ops import intmath
    from hwcomp.ops.quantized import gelu_constants
    from tests.hls.conftest import make_graph

    x = (np.arange(256, dtype=np.float32) - 128).reshape(4, 64) * np.float32(0.04)
    b_int, one_int, acc_scale = gelu_constants(0.04)
    m, sh = intmath.quantize_multiplier(acc_scale / 0.03)
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (64, 4), dtype=np.int8)
    g = make_graph({"x": x}, {"w": w},
                   [("quantize", ["x"], {"scale": np.float32(0.04), "zero_point": 0, "bits": 8}, "xq"),
                    ("int_gelu", ["xq"], {"b_int": b_int, "one_int": one_int, "multiplier": m, "shift": sh,
                                          "out_zero_point": -60}, "y"),
                    ("qdense", ["y", "w"], {"x_zero_point": -60, "multiplier": np.full(4, 1 << 30, np.int32),
                                            "shift": np.full(4, 38, np.int32), "out_zero_point": 1}, "z")],
                   ["y", "z"])
    feeds = {"x": x}
    plan = lower(g, HardwareParams.from_string("16x16"))
    assert [p.op for s in plan.segments for p in s.phases] == ["int_gelu", "qdense"]
    outs, _ = run_on_model(plan, g, feeds)
    assert_bit_exact(hwcomp.run(g, feeds), outs)
    assert len(np.unique(outs["y"])) > 20
