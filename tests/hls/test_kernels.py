"""Per-kernel C simulation of the HLS library against the interpreter and against hwcomp/ops/intmath.py
directly: random data plus the corner cases (int32 wrap of -128*-128-style sums, saturation, negative
rounding, I-BERT clamps)."""

from __future__ import annotations

import numpy as np

from hwcomp.ops import intmath
from hwcomp.ops.quantized import exp_constants, gelu_constants

from .conftest import SMALL_HW, make_graph, qattention_graph

RNG = np.random.default_rng


def _mult(real) -> tuple[np.ndarray, np.ndarray]:
    return intmath.quantize_multiplier(np.asarray(real, np.float64))


def _qdense_graph():
    """M, N, K all off the 4x8 array's tile grid (and M over the 16 accumulator lines); int8+relu, float
    and int16 epilogues; per-channel multipliers."""
    rng = RNG(0)
    m, k, n = 37, 70, 45
    x = rng.integers(-128, 128, (1, m, k), dtype=np.int8)
    w = rng.integers(-128, 128, (k, n), dtype=np.int8)
    bias = rng.integers(-50000, 50000, n, dtype=np.int32)
    mult, shift = _mult(rng.uniform(1e-5, 3e-4, n))
    base = {"x_zero_point": -3, "multiplier": mult, "shift": shift}
    nodes = [
        ("qdense", ["x", "w", "b"], {**base, "out_zero_point": 5, "activation": "relu"}, "y8"),
        ("qdense", ["x", "w", "b"], {"x_zero_point": -3, "out_dtype": "float32",
                                     "out_scale": rng.uniform(1e-4, 1e-3, n).astype(np.float32)}, "yf"),
        ("qdense", ["x", "w"], {**base, "out_bits": 16, "out_zero_point": -7}, "y16"),
    ]
    g = make_graph({"x": x}, {"w": w, "b": bias}, nodes, ["y8", "yf", "y16"])
    return g, {"x": x}


def test_qdense_bit_exact(bit_exact):
    g, feeds = _qdense_graph()
    got, _ = bit_exact(g, feeds)
    x, w = feeds["x"], g.constants["w"]
    n = g.nodes[0]
    acc = intmath.wrap_int32(intmath.int_matmul(x, w, -3).astype(np.int64) + g.constants["b"])
    y = np.maximum(intmath.requantize(acc, n.attrs["multiplier"], n.attrs["shift"], 5), 5)
    np.testing.assert_array_equal(got["y8"], y)


def test_qdense_wraps_int32_and_saturates(bit_exact):
    """(-128 - 127) * -128 summed over K = 65800 passes 2^31 and wraps; a bias near INT32_MAX wraps again;
    huge multipliers saturate at -128/127; inline_limit=1 sends every constant through weights.bin."""
    k = 65800
    x = np.full((2, k), -128, np.int8)
    x[1, ::2] = 127
    w = np.full((k, 3), -128, np.int8)
    w[:, 2] = 1
    bias = np.array([0, intmath.INT32_MAX, -5], np.int32)
    mult, shift = _mult([0.9, 0.9, 0.9])
    g = make_graph({"x": x}, {"w": w, "b": bias},
                   [("qdense", ["x", "w", "b"], {"x_zero_point": 127, "multiplier": mult, "shift": shift,
                                                 "out_zero_point": 0, "out_bits": 16}, "y")], ["y"])
    got, _ = bit_exact(g, {"x": x}, inline_limit=1)
    exact = (x.astype(np.int64) - 127) @ w.astype(np.int64) + bias
    assert exact[0, 0] > intmath.INT32_MAX  # the wrap is really exercised
    acc = intmath.wrap_int32(exact)
    np.testing.assert_array_equal(got["y"], intmath.requantize(acc, mult, shift, 0, -(1 << 15), (1 << 15) - 1))
    assert {-(1 << 15), (1 << 15) - 1} & set(got["y"].reshape(-1).tolist())


def test_requantize_rounds_half_up_on_negatives(bit_exact):
    """K = 1, w = 1: the accumulator is x - zp; multiplier 2^30, shift 31 (x 0.5) puts every odd value on a tie:
    -0.5 -> 0, -1.5 -> -1, 0.5 -> 1 (round half towards +inf), and 2^-40 shifts small values to 0/-0."""
    x = np.arange(-128, 128, dtype=np.int8).reshape(256, 1)
    w = np.ones((1, 2), np.int8)
    mult = np.array([1 << 30, 1 << 30], np.int32)
    shift = np.array([31, 62], np.int32)
    g = make_graph({"x": x}, {"w": w}, [("qdense", ["x", "w"], {"x_zero_point": 0, "multiplier": mult,
                                                                "shift": shift, "out_zero_point": -1}, "y")], ["y"])
    got, _ = bit_exact(g, {"x": x})
    a = x[:, 0].astype(np.int64)
    np.testing.assert_array_equal(got["y"][:, 0], np.floor(a / 2 + 0.5).astype(np.int64) - 1)
    assert got["y"][:, 0][a == -1].item() == -1 and got["y"][:, 0][a == -3].item() == -2


def test_int_gelu_all_int8_codes(bit_exact):
    s = 0.05
    b_int, one_int, acc_scale = gelu_constants(s)
    m, sh = _mult(acc_scale / 0.02)
    x = np.arange(-128, 128, dtype=np.int8).reshape(2, 128)
    attrs = {"b_int": b_int, "one_int": one_int}
    g = make_graph({"x": x}, {}, [
        ("int_gelu", ["x"], {**attrs, "multiplier": m, "shift": sh, "out_zero_point": -20}, "y"),
        ("int_gelu", ["x"], {**attrs, "out_dtype": "float32", "out_scale": np.float32(acc_scale)}, "yf"),
    ], ["y", "yf"])
    got, _ = bit_exact(g, {"x": x})
    np.testing.assert_array_equal(got["y"], intmath.requantize(intmath.int_gelu(x, b_int, one_int), m, sh, -20))


def test_int_layer_norm_extremes(bit_exact):
    """int16 rows: random, constant (variance 0 -> eps only), +-32767 extremes, negative sums (floor mean)."""
    rng = RNG(1)
    c = 96
    x = rng.integers(-3000, 3000, (1, 6, c), dtype=np.int16)
    x[0, 1] = 1234
    x[0, 2, ::2], x[0, 2, 1::2] = 32767, -32767
    x[0, 3] = -rng.integers(0, 7, c)
    x[0, 4] = 0
    gam = rng.integers(-32767, 32768, c).astype(np.int32)
    bet = rng.integers(-(1 << 20), 1 << 20, c).astype(np.int32)
    m, sh = _mult(1.3e-6)
    attrs = {"gamma_int": gam, "beta_int": bet, "eps_int": 3, "frac_bits": 14}
    g = make_graph({"x": x}, {}, [
        ("int_layer_norm", ["x"], {**attrs, "multiplier": m, "shift": sh, "out_zero_point": 2}, "y"),
        ("int_layer_norm", ["x"], {**attrs, "out_dtype": "float32", "out_scale": np.float32(2e-8)}, "yf"),
    ], ["y", "yf"])
    got, _ = bit_exact(g, {"x": x})
    np.testing.assert_array_equal(got["y"], intmath.requantize(intmath.int_layer_norm(x, gam, bet, 3, 14), m, sh, 2))


def test_int_softmax_rows_and_prob_bits(bit_exact):
    rng = RNG(2)
    ln2, b, cc = exp_constants(2e-3)
    x = rng.integers(-3000, 3000, (5, 19)).astype(np.int32)
    x[1] = 7  # uniform row
    x[2, 3:] = -(1 << 30)  # masked entries clamp at 30 * ln2
    x[3] = rng.integers(-(1 << 20), 1 << 20, 19)
    attrs = {"exp_ln2": ln2, "exp_b": b, "exp_c": cc}
    g = make_graph({"x": x}, {}, [("int_softmax", ["x"], {**attrs, "prob_bits": 8}, "p8"),
                                  ("int_softmax", ["x"], {**attrs, "prob_bits": 16}, "p16")], ["p8", "p16"])
    got, _ = bit_exact(g, {"x": x})
    np.testing.assert_array_equal(got["p16"], intmath.int_softmax(x, ln2, b, cc, 16))
    assert got["p8"].dtype == np.uint8 and got["p16"].dtype == np.uint16


def _attention_graph(causal: int, sq: int, sk: int):
    return qattention_graph(causal, sq, sk, heads=3, d=4)


def test_qattention_mask_bit_exact(bit_exact):
    bit_exact(*_attention_graph(0, 6, 6))


def test_qattention_causal_cross_lengths_bit_exact(bit_exact):
    bit_exact(*_attention_graph(1, 3, 7))


def test_quantize_dequantize_ties_and_saturation(bit_exact):
    """x / scale on exact .5 ties rounds half to even; values past the range saturate; per-channel scales."""
    x = np.array([[-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 300.0, -300.0],
                  [0.1, -0.1, 1e9, -1e9, 3.49, -3.51, 126.5, -128.5]], np.float32)
    chan = np.array([1, 1, 1, 1, 0.5, 2, 1, 1], np.float32)
    g = make_graph({"x": x}, {}, [
        ("quantize", ["x"], {"scale": np.float32(1.0), "zero_point": 0, "bits": 8}, "q"),
        ("quantize", ["x"], {"scale": chan, "zero_point": 3, "bits": 16}, "q16"),
        ("quantize", ["x"], {"scale": np.float32(0.5), "zero_point": 0, "bits": 8, "signed": 0}, "qu"),
        ("dequantize", ["q"], {"scale": np.float32(0.1), "zero_point": 4}, "dq"),
    ], ["q", "q16", "qu", "dq"])
    got, _ = bit_exact(g, {"x": x})
    np.testing.assert_array_equal(got["q"][0], [-2, -2, 0, 0, 2, 2, 127, -128])


def test_small_hw_is_used_for_tiles(tmp_path):
    from backends.hls.generate import emit_hls
    g, _ = _qdense_graph()
    info = emit_hls(g, tmp_path, SMALL_HW)
    assert info["tiles"] == {"TM": 16, "TN": 8, "TK": 4}
    cfg = (tmp_path / "hw_config.h").read_text()
    assert "#define HWC_TK 4" in cfg and "#define HWC_TN 8" in cfg
    assert "hwc::qdense<HWC_TM, HWC_TN, HWC_TK>" in (tmp_path / "model.cpp").read_text()


def test_estimate_counts_gemm_tiles():
    from backends.hls.estimate import estimate, qdense_cycles
    # M=37 -> tiles of 16, 16, 5 rows; N=45 -> 6 column tiles of 8; K=70 -> 18 K-slices of 4.
    per_tile = [mt + 18 * (4 + 2 * mt) + mt * 8 for mt in (16, 16, 5)]
    assert qdense_cycles(37, 70, 45, SMALL_HW) == 6 * sum(per_tile)
    g, _ = _qdense_graph()
    est = estimate(g, SMALL_HW)
    assert est["by_op"] == {"qdense": 3 * 6 * sum(per_tile)}
    assert 0 < est["qdense_mac_utilization"] <= 1 and est["latency_us"] == est["cycles"] / SMALL_HW.clock_mhz


SANITIZE = ("-O1", "-std=c++17", "-fsanitize=undefined,address", "-fno-sanitize-recover=undefined")


def test_kernels_free_of_undefined_behaviour(bit_exact):
    """The wrap-around GEMM (int32 overflow on purpose), layer norm extremes and softmax clamps, compiled with
    UBSan + ASan: no signed overflow, bad shift or out-of-bounds access, and still bit-exact."""
    import shutil
    import subprocess

    probe = subprocess.run(["g++", "-fsanitize=undefined,address", "-x", "c++", "-", "-o", "/dev/null"],
                           input="int main() { return 0; }", capture_output=True, text=True) if shutil.which("g++") else None
    if probe is None or probe.returncode != 0:
        import pytest
        pytest.skip("g++ sanitizers unavailable")
    rng = RNG(5)
    k = 70000  # 70000 * (-128 - 127) * -128 > 2^31: the int32 accumulator wraps
    x = np.full((2, k), -128, np.int8)
    w = rng.integers(-128, 128, (k, 3), dtype=np.int8)
    w[:, 0] = -128
    mult, shift = _mult([0.7, 1e-6, 0.9])
    c = 64
    xl = rng.integers(-32767, 32768, (3, c), dtype=np.int16)
    ln2, b, cc = exp_constants(1e-3)
    gam = rng.integers(-32767, 32768, c).astype(np.int32)
    lm, ls = _mult(1e-6)
    g = make_graph({"x": x, "xl": xl}, {"w": w}, [
        ("qdense", ["x", "w"], {"x_zero_point": 127, "multiplier": mult, "shift": shift}, "y"),
        ("int_layer_norm", ["xl"], {"gamma_int": gam, "beta_int": gam, "eps_int": 0, "multiplier": lm, "shift": ls},
         "yl"),
        ("int_softmax", ["xl"], {"exp_ln2": ln2, "exp_b": b, "exp_c": cc, "prob_bits": 16}, "p"),
    ], ["y", "yl", "p"])
    assert (x[:1].astype(np.int64) - 127) @ w[:, :1].astype(np.int64) > intmath.INT32_MAX
    bit_exact(g, {"x": x, "xl": xl}, cxx_flags=SANITIZE, inline_limit=4096)
