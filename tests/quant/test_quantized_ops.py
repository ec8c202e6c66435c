"""Quantized ops and the integer algorithms of intmath: exact integer checks and numerics vs float/ONNX."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import erf

from hwcomp.ir.graph import Node
from hwcomp.ops import intmath as im
from hwcomp.ops import run_op
from hwcomp.ops.quantized import exp_constants, gelu_constants
from hwcomp.quant.params import act_qparams, weight_grouped, weight_per_channel

RNG = np.random.default_rng(0)


def _run(op, inputs, **attrs):
    return run_op(Node(op, [f"i{k}" for k in range(len(inputs))], ["y"], attrs, op), inputs)[0]


def test_int_matmul_fast_equals_int64_reference_including_wraparound():
    a = RNG.integers(-128, 128, (3, 5, 64), dtype=np.int8)
    b = RNG.integers(-128, 128, (64, 7), dtype=np.int8)
    assert np.array_equal(im.int_matmul_fast(a, b, 3), im.int_matmul(a, b, 3))
    big = np.full((1, 2), 2**31 - 1, np.int64)  # bound >= 2^53: exact int64 path, wraps like int32
    w = np.full((2, 1), 2**31 - 1, np.int64)
    assert im.int_matmul_fast(big, w)[0, 0] == im.wrap_int32(np.int64(2) * (2**31 - 1) ** 2)


def test_qdense_int8_output_matches_explicit_integer_reference():
    x = RNG.integers(-128, 128, (2, 4, 32), dtype=np.int8)
    w = RNG.integers(-127, 128, (32, 6), dtype=np.int8)
    bias = RNG.integers(-5000, 5000, 6).astype(np.int32)
    m, s = im.quantize_multiplier(RNG.uniform(1e-4, 1e-2, 6))
    y = _run("qdense", [x, w, bias], x_zero_point=-3, multiplier=m, shift=s, out_zero_point=5, activation="relu")
    acc = (x.astype(np.int64) + 3) @ w.astype(np.int64) + bias
    ref = np.clip(((acc * m.astype(np.int64) + (1 << (s.astype(np.int64) - 1))) >> s) + 5, -128, 127)
    assert y.dtype == np.int8 and np.array_equal(y, np.maximum(ref, 5))


def test_qdense_float_epilogue_is_dequantized_accumulator():
    x = RNG.integers(-128, 128, (4, 16), dtype=np.int8)
    w = RNG.integers(-127, 128, (16, 3), dtype=np.int8)
    sc = np.array([0.1, 0.2, 0.3], np.float32)
    y = _run("qdense", [x, w], out_dtype="float32", out_scale=sc)
    assert np.array_equal(y, (x.astype(np.int64) @ w.astype(np.int64)).astype(np.float32) * sc)


def test_quantize_dequantize_match_onnx_reference_evaluator():
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator

    x = (RNG.standard_normal((3, 8)) * 4).astype(np.float32)
    x[0, :4] = [0.25, 0.75, -0.25, 1000.0]  # ties round to even; saturation
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"])
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.INT8, [3, 8])],
                          [helper.make_tensor("s", TensorProto.FLOAT, [], [0.5]), helper.make_tensor("z", TensorProto.INT8, [], [3])])
    ref = ReferenceEvaluator(helper.make_model(g)).run(None, {"x": x})[0]
    q = _run("quantize", [x], scale=0.5, zero_point=3, bits=8, signed=1)
    assert q.dtype == np.int8 and np.array_equal(q, ref)
    assert np.array_equal(_run("dequantize", [q], scale=0.5, zero_point=3), (q.astype(np.float32) - 3) * 0.5)


def test_quantize_4bit_saturates_to_int4_range():
    q = _run("quantize", [np.array([-100.0, 0.4, 100.0], np.float32)], scale=1.0, zero_point=0, bits=4, signed=1)
    assert q.tolist() == [-8, 0, 7]


def test_isqrt_is_floor_sqrt():
    n = np.concatenate([np.arange(0, 2000), RNG.integers(0, 2**62, 2000)]).astype(np.int64)
    r = im.isqrt(n)
    assert np.all(r * r <= n) and np.all((r + 1) * (r + 1) > n)


def test_int_softmax_rows_sum_to_one_and_track_float_softmax():
    x = RNG.standard_normal((8, 64)) * 3
    s = 2e-3
    xi = np.rint(x / s).astype(np.int64)
    p = im.int_softmax(xi, *exp_constants(s), prob_bits=16)
    ref = np.exp(x - x.max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    assert np.abs(p / 65536 - ref).max() < 2e-3
    assert np.all(np.abs(p.sum(-1) - 65536) <= 64)


def test_i_exp_small_case_by_hand():
    ln2, b, c = exp_constants(0.1)  # floor(-6.93) = -7, floor(27.07) = 27, floor(279.2) = 279
    assert (ln2, b, c) == (-7, 27, 279)
    x = np.array([0, -3, -7, -10])
    # z = floor(x / -7) = [0, 0, 1, 1]; r = x - z*(-7) = [0, -3, 0, -3]; poly = r*(r+27)+279
    assert im.i_exp(x, ln2, b, c).tolist() == [279, 207, 139, 103]


def test_int_gelu_tracks_erf_gelu():
    s = 0.05
    x = np.linspace(-6, 6, 241)
    b, one, acc_scale = gelu_constants(s)
    y = im.int_gelu(np.rint(x / s).astype(np.int64), b, one) * acc_scale
    assert np.abs(y - x * 0.5 * (1 + erf(x / np.sqrt(2)))).max() < 0.03


def test_int_layer_norm_tracks_float_layer_norm():
    c, s = 384, 2e-3
    x = RNG.standard_normal((4, c)) * 2 + 0.5
    gam, bet = RNG.standard_normal(c), RNG.standard_normal(c) * 0.1
    sg = np.abs(gam).max() / 32767
    unit = np.sqrt(c) * sg / 2**14
    acc = im.int_layer_norm(np.rint(x / s).astype(np.int64), np.rint(gam / sg), np.rint(bet / unit), 0)
    ref = (x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True) * gam + bet
    assert np.abs(acc * unit - ref).max() < 0.01


def test_wdense_int4_group_dequant_matches_numpy():
    w = RNG.standard_normal((96, 10)).astype(np.float32)  # 96 = 1.5 groups of 64: a partial last group
    codes, scale, zero = weight_grouped(w, 4, 64)
    assert codes.max() <= 15 and scale.shape == (2, 10)
    x = RNG.standard_normal((3, 96)).astype(np.float32)
    y = _run("wdense", [x, codes, scale, zero], group_size=64, bits=4)
    idx = np.arange(96) // 64
    wd = (codes.astype(np.float32) - zero[idx]) * scale[idx]
    assert np.allclose(y, x @ wd, rtol=1e-5, atol=1e-5)
    assert np.abs(wd - w).max() <= scale.max() / 2 + 1e-6


def test_per_channel_weights_are_symmetric_within_half_a_step():
    w = RNG.standard_normal((32, 5)).astype(np.float32)
    w[:, 2] = 0
    wq, s = weight_per_channel(w)
    assert wq.dtype == np.int8 and np.abs(wq).max() <= 127 and s[2] == 1.0
    assert np.all(np.abs(wq * s - w) <= s / 2 + 1e-7)


def test_act_qparams_cover_the_range_and_zero_exactly():
    s, zp = act_qparams(-0.17, 20.0)
    assert -128 <= zp <= 127 and abs((-128 - zp) * s + 0.17) < s and abs((127 - zp) * s - 20) < s
    assert act_qparams(-2.0, 1.0, symmetric=True) == (pytest.approx(2.0 / 127), 0)
