"""Compiled models on the RTL (cocotb on Icarus and Verilator): bit-exact against the interpreter, cycles
as the instruction-level model predicts, hangs reported with the last retired instruction, and the CLI
(`hwcomp compile --target fpga` + `hwcomp simulate`) end to end on bert-tiny."""

from __future__ import annotations

import numpy as np
import pytest

import hwcomp
from backends.rtl.compile import compile as rtl_compile
from backends.rtl.compile import run as rtl_run
from backends.rtl.runtime import RunStats
from hwcomp.errors import SimulationError

from .conftest import assert_bit_exact, attention, mlp, require

pytestmark = pytest.mark.rtl

CYCLE_TOLERANCE = 0.05
ARRAY = {"icarus": "4x4", "verilator": "16x16"}   # Icarus is ~100x slower: a small array there
SMALL_DRAM = 1 << 16                                # Icarus initialises every DRAM byte: keep it small


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_quantized_mlp_on_rtl_bit_exact_with_predicted_cycles(sim, tmp_path):
    require(sim)
    g, feeds = mlp()
    rep = rtl_compile(g, tmp_path / "art", array=ARRAY[sim], hls=False,
                      dram_bytes=SMALL_DRAM if sim == "icarus" else None)
    stats = RunStats()
    got = rtl_run(tmp_path / "art", feeds, sim=sim, stats=stats)
    assert_bit_exact(hwcomp.run(g, feeds), got)
    assert stats.predicted == rep["cycles"]["predicted_total"]
    assert abs(stats.cycles - stats.predicted) <= CYCLE_TOLERANCE * stats.predicted, (stats.cycles, stats.predicted)


def test_qattention_on_icarus_bit_exact(tmp_path):
    require("icarus")
    g, feeds = attention(1)
    rtl_compile(g, tmp_path / "art", array="4x4", hls=False, dram_bytes=SMALL_DRAM)
    stats = RunStats()
    got = rtl_run(tmp_path / "art", feeds, sim="icarus", stats=stats)
    assert_bit_exact(hwcomp.run(g, feeds), got)
    assert stats.cycles == stats.predicted


def test_hang_names_the_last_retired_instruction(tmp_path):
    """A cycle budget below what the program needs reads as a hang: the error names where it stopped."""
    require("icarus")
    g, feeds = mlp()
    rtl_compile(g, tmp_path / "art", array="4x4", hls=False, dram_bytes=SMALL_DRAM)
    with pytest.raises(SimulationError, match=r"hung in segment 0 chunk 0: no HALT after 1000 cycles.*last retired: "
                                              r"(LOAD|MATMUL|REQUANT|STORE|VECTOR)\("):
        rtl_run(tmp_path / "art", feeds, sim="icarus", timeout_factor=0.0)


def test_bert_tiny_on_verilator_bit_exact(bert_tiny_q, tmp_path):
    require("verilator")
    g, feeds = bert_tiny_q
    rtl_compile(g, tmp_path / "art", array="16x16", hls=False)
    stats = RunStats()
    got = rtl_run(tmp_path / "art", feeds, sim="verilator", stats=stats)
    assert_bit_exact(hwcomp.run(g, feeds), got)
    assert len(got) == len(g.outputs) >= 15
    assert abs(stats.cycles - stats.predicted) <= CYCLE_TOLERANCE * stats.predicted


def test_cli_compile_and_simulate_bert_tiny(cli, tmp_path):
    require("verilator")
    from hwcomp import zoo

    model = zoo.get("bert-tiny")
    out = tmp_path / "bt"
    res = cli("compile", model, "--target", "fpga", "--quant", "int8", "--calibrator", "minmax", "--shape",
              "input_ids=1x16", "--shape", "attention_mask=1x16", "--array", "16x16", "--dataflow", "ws", "-o", out)
    assert res.code == 0, res.err
    assert (out / "report.json").is_file() and (out / "rtl" / "accel_16x16_ws.v").is_file()
    feeds = zoo.sample_inputs("bert-tiny", 1, 16, seed=3)
    feeds["attention_mask"][0, 12:] = 0
    np.savez(tmp_path / "in.npz", **feeds)
    res = cli("simulate", out, "--inputs", tmp_path / "in.npz", "--output", tmp_path / "out.npz")
    assert res.code == 0, res.err + res.out
    assert "bit-exact: all 1 outputs match the interpreter" in res.out
    assert "cycles: rtl" in res.out and "host steps" in res.out
    ref = hwcomp.run(hwcomp.ir.load(out / "graph.hwir"), feeds)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npz")["last_hidden_state"], ref["last_hidden_state"])


def test_simulate_rejects_a_mismatch(cli, tmp_path, monkeypatch):
    """A wrong hardware result (here: one bias byte flipped in the DRAM image) exits 2 naming the output."""
    require("icarus")
    g, feeds = mlp()
    art = tmp_path / "art"
    rtl_compile(g, art, array="4x4", hls=False, dram_bytes=SMALL_DRAM)
    img = bytearray((art / "dram_image.bin").read_bytes())
    from backends.rtl.runtime import load_plan

    plan = load_plan(art)
    first = plan.segments[0].program
    bias_load = next(i for i in first if type(i).__name__ == "Load" and i.buf.name == "ACC")
    img[bias_load.dram + 2] ^= 0x10           # channel 0 bias += 2^20: saturates
    (art / "dram_image.bin").write_bytes(bytes(img))
    np.savez(tmp_path / "in.npz", **feeds)
    res = cli("simulate", art, "--inputs", tmp_path / "in.npz", "--sim", "icarus")
    assert res.code == 2
    assert "outputs differ from the interpreter" in res.err and "h1" in res.err
