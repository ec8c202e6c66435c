"""Whole graphs through the HLS path: a hand-built quantized MLP, the quantized bert-tiny (two encoder layers)
bit-exact against the interpreter, byte-identical regeneration, and the errors for what the path lacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import hwcomp
from backends.hls.generate import csim, emit_hls
from hwcomp.errors import HardwareError, InputError
from hwcomp.hardware import HardwareParams
from hwcomp.ops import intmath
from hwcomp.ops.quantized import gelu_constants

from .conftest import SMALL_HW, make_graph

ROOT = Path(__file__).resolve().parents[2]


def _mlp():
    """float x -> quantize -> qdense(relu, int8) -> qdense(int8) -> int_gelu -> qdense(float epilogue)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 24)).astype(np.float32)
    w1 = rng.integers(-127, 128, (24, 40), dtype=np.int8)
    w2 = rng.integers(-127, 128, (40, 32), dtype=np.int8)
    w3 = rng.integers(-127, 128, (32, 12), dtype=np.int8)
    b1 = rng.integers(-3000, 3000, 40, dtype=np.int32)
    m1, s1 = intmath.quantize_multiplier(rng.uniform(2e-4, 8e-4, 40))
    m2, s2 = intmath.quantize_multiplier(rng.uniform(1e-4, 4e-4, 32))
    b_int, one_int, acc_scale = gelu_constants(0.04)
    mg, sg = intmath.quantize_multiplier(acc_scale / 0.03)
    nodes = [
        ("quantize", ["x"], {"scale": np.float32(0.02), "zero_point": -9, "bits": 8}, "xq"),
        ("qdense", ["xq", "w1", "b1"], {"x_zero_point": -9, "multiplier": m1, "shift": s1, "out_zero_point": -4,
                                        "activation": "relu"}, "h1"),
        ("qdense", ["h1", "w2"], {"x_zero_point": -4, "multiplier": m2, "shift": s2, "out_zero_point": 0}, "h2"),
        ("int_gelu", ["h2"], {"b_int": b_int, "one_int": one_int, "multiplier": mg, "shift": sg,
                              "out_zero_point": -60}, "h3"),
        ("qdense", ["h3", "w3"], {"x_zero_point": -60, "out_dtype": "float32",
                                  "out_scale": np.full(12, 3e-4, np.float32)}, "y"),
    ]
    g = make_graph({"x": x}, {"w1": w1, "b1": b1, "w2": w2, "w3": w3}, nodes, ["y", "h1", "h3"])
    return g, {"x": x}


def test_quantized_mlp_bit_exact(bit_exact):
    got, ref = bit_exact(*_mlp())
    assert got["h1"].dtype == np.int8 and got["h1"].min() >= -4  # relu clamps at the zero point


def _quantized(model: str, seq: int = 16, smooth: bool = False):
    """zoo model at seq -> default pipeline -> int8 + I-BERT nonlinears; every integer activation of the
    kernels is exposed as an extra output so that it is compared bit for bit too."""
    from hwcomp import zoo
    from hwcomp.passes import PassContext, run_pipeline

    feeds = zoo.sample_inputs(model, 1, seq, seed=5)
    g = hwcomp.load_onnx(zoo.get(model), {k: v.shape for k, v in feeds.items()})
    g = run_pipeline(g, "default")
    calib = [zoo.sample_inputs(model, 1, seq, seed=s) for s in range(2)]
    q = run_pipeline(g, ["quantize_int8", "integer_nonlinear"],
                     PassContext(options={"calib_inputs": calib, **({} if smooth else {"smooth_alpha": None})}))
    feeds["attention_mask"][0, (3 * seq) // 4:] = 0  # padded tail: the additive mask reaches qattention
    extra = [n.outputs[0] for n in q.nodes if n.op in ("qattention", "int_gelu", "int_layer_norm", "qdense")
             and q.types[n.outputs[0]].dtype.is_int]
    q.outputs = list(q.outputs) + extra
    return q, feeds


@pytest.fixture(scope="module")
def bert_tiny_q():
    """bert-tiny (2 layers, hidden 128, 2 heads) at seq 16."""
    q, feeds = _quantized("bert-tiny")
    hist = q.op_histogram()
    assert hist["qattention"] == 2 and hist["int_gelu"] == 2 and hist["int_layer_norm"] >= 4
    return q, feeds


def test_bert_tiny_quantized_bit_exact(bert_tiny_q, bit_exact):
    g, feeds = bert_tiny_q
    got, ref = bit_exact(g, feeds, HardwareParams())
    assert len(got) == len(g.outputs) >= 15
    assert any(v.dtype == np.float32 for v in got.values()) and any(v.dtype == np.int8 for v in got.values())


def test_bert_tiny_regeneration_byte_identical(bert_tiny_q, tmp_path):
    g, _ = bert_tiny_q
    a, b = tmp_path / "a", tmp_path / "b"
    info = emit_hls(g, a, HardwareParams())
    emit_hls(g, b, HardwareParams())
    assert info["kernels"] == ["dequantize", "elementwise", "gather", "int_gelu", "int_layer_norm", "qattention",
                               "qdense", "quantize"]
    for name in info["files"]:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert info["weights_bin_bytes"] > 0  # the 30522x128 embedding table is streamed, not inlined


def test_gpt2_tiny_quantized_bit_exact(bit_exact):
    """GPT-2: fused-QKV Split, causal + padding mask as the additive qattention mask, on an 8x8 array."""
    g, feeds = _quantized("gpt2-tiny")
    assert "Split" in g.op_histogram() and g.op_histogram()["qattention"] == 2
    bit_exact(g, feeds, HardwareParams.from_string("8x8"))


def test_bert_tiny_smoothquant_default_bit_exact(bit_exact):
    """The quantizer's defaults (SmoothQuant smoothing: per-channel quantize scales, per-channel requantization
    into smoothed consumers)."""
    g, feeds = _quantized("bert-tiny", smooth=True)
    per_channel = [n for n in g.nodes if np.size(n.attrs.get("scale", 1)) > 1 or
                   (n.op != "qdense" and np.size(n.attrs.get("multiplier", 1)) > 1)]
    assert per_channel
    bit_exact(g, feeds, HardwareParams())


def test_regeneration_identical_across_hash_seeds(tmp_path):
    """Separate processes with different PYTHONHASHSEED write the same bytes."""
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]); "
            "from tests.hls.test_model import _mlp; from tests.hls.conftest import SMALL_HW; "
            "from backends.hls.generate import emit_hls; emit_hls(_mlp()[0], Path(sys.argv[1]), SMALL_HW)")
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / seed), str(ROOT)], check=True, env=env, cwd=ROOT)
    files = sorted(p.name for p in (tmp_path / "1").iterdir())
    assert "model.cpp" in files and "tb.cpp" in files
    for name in files:
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name


def test_unsupported_op_names_node_and_op(tmp_path):
    x = np.zeros((2, 8), np.float32)
    g = make_graph({"x": x}, {}, [("Softmax", ["x"], {"axis": -1}, "y")], ["y"])
    with pytest.raises(HardwareError, match=r"node 'Softmax_y' \(Softmax\).*no kernel for op 'Softmax'"):
        emit_hls(g, tmp_path, SMALL_HW)


def test_float_softmax_attention_rejected(tmp_path):
    q = np.zeros((1, 4, 8), np.int8)
    attrs = {"num_heads": 2, "score_scale": 1e-3, "softmax": "float", "multiplier": np.array([1 << 30], np.int32),
             "shift": np.array([40], np.int32)}
    g = make_graph({"q": q}, {}, [("qattention", ["q", "q", "q"], attrs, "y")], ["y"])
    with pytest.raises(HardwareError, match=r"qattention.*softmax='float'"):
        emit_hls(g, tmp_path, SMALL_HW)


def test_float_epilogue_gelu_rejected(tmp_path):
    x = np.zeros((4, 8), np.int8)
    g = make_graph({"x": x}, {"w": np.ones((8, 4), np.int8)},
                   [("qdense", ["x", "w"], {"out_dtype": "float32", "out_scale": np.float32(1.0), "activation": "gelu"},
                     "y")], ["y"])
    with pytest.raises(HardwareError, match=r"node 'qdense_y' \(qdense\): activation 'gelu'"):
        emit_hls(g, tmp_path, SMALL_HW)


def test_csim_rejects_missing_input(tmp_path):
    g, feeds = _mlp()
    emit_hls(g, tmp_path, SMALL_HW)
    with pytest.raises(InputError, match="input 'x' is missing"):
        csim(tmp_path, {})


def test_testbench_self_checks_against_expected(tmp_path, csim_cache):
    """write_vectors + tb.cpp's 4th argument: exit 0 on the interpreter's outputs, 1 with one flipped byte."""
    from backends.hls.generate import build_csim, write_vectors

    g, feeds = _mlp()
    emit_hls(g, tmp_path, SMALL_HW)
    ref = hwcomp.run(g, feeds)
    assert write_vectors(tmp_path, feeds, ref) == ["inputs.bin", "expected.bin"]
    exe = build_csim(tmp_path, csim_cache)
    args = [str(exe)] + [str(tmp_path / f) for f in ("inputs.bin", "weights.bin", "outputs.bin", "expected.bin")]
    ok = subprocess.run(args, capture_output=True, text=True)
    assert ok.returncode == 0 and "0 of" in ok.stdout
    want = bytearray((tmp_path / "expected.bin").read_bytes())
    want[5] ^= 1
    (tmp_path / "expected.bin").write_bytes(bytes(want))
    bad = subprocess.run(args, capture_output=True, text=True)
    assert bad.returncode == 1 and "1 of" in bad.stdout
    assert "[file normalize expected.bin]" in (tmp_path / "run_hls.tcl").read_text()
