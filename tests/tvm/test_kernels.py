"""CPU-only checks of hwcomp's TVM CUDA kernels: each scheduled kernel compiles to sm_90 (and sm_80)
machine code, and each kernel *definition* (the unscheduled PrimFunc) matches numpy on llvm."""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

tvm = pytest.importorskip("tvm")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from backends.tvm_cuda.build import build_cpu_reference, build_kernel  # noqa: E402
from backends.tvm_cuda.verify import verify_executable  # noqa: E402
from schedules import attention, dense, gelu, gemv_int4, layer_norm, qattention, qdense  # noqa: E402

pytestmark = [pytest.mark.tvm]
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")


def _t(a):
    return tvm.runtime.tensor(a, tvm.cpu())


def _qattn(b, s, h, d, epilogue=None):
    from hwcomp.ops.quantized import exp_constants

    ln2, eb, ec = exp_constants(8e-4)
    return qattention.qattention(b, s, s, h, d, exp_ln2=ln2, exp_b=eb, exp_c=ec,
                                 epilogue=epilogue or qattention.Epilogue(out_zero_point=3), mask_batch=b)


@needs_nvcc
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
@pytest.mark.parametrize("name,make,mma", [
    ("dense_f16", lambda a: dense.dense_f16(128, 256, 256, "gelu", arch=a), True),
    ("qdense_requant", lambda a: qdense.qdense(128, 256, 256, "requant", arch=a), True),
    ("qdense_dequant", lambda a: qdense.qdense(128, 256, 256, "dequant", arch=a), True),
    ("layer_norm", lambda a: layer_norm.layer_norm(64, 768, residual=True), False),  # a warp per row
    ("layer_norm_block_rows", lambda a: layer_norm.layer_norm(64, 640, residual=True), False),
    ("gelu", lambda a: gelu.gelu((64, 3072)), False),
    ("gemv_int4", lambda a: gemv_int4.gemv_int4(1, 1024, 768, 128, arch=a), False),
    ("gemv_int4_ragged_m4_gelu", lambda a: gemv_int4.gemv_int4(4, 1000, 1088, 64, arch=a, act="gelu"), False),
    ("gemv_int4_dlight", lambda a: gemv_int4.gemv_int4(1, 1024, 768, 128, arch=a, schedule="dlight"), False),
    ("attn_scores", lambda a: attention.attention(1, 128, 128, 2, 64).scores, True),
    ("attn_pv", lambda a: attention.attention(1, 128, 128, 2, 64).pv, True),
    ("qdense_resq", lambda a: qdense.qdense(128, 256, 256, "dequant", arch=a, out_dtype="float32", exact=True,
                                           residual_quant=(16, 0)), True),
    ("qattn_scores_d32", lambda a: _qattn(1, 128, 2, 32).scores, True),
    ("qattn_softmax", lambda a: _qattn(1, 128, 2, 64).softmax, False),
    ("qattn_pv", lambda a: _qattn(1, 128, 2, 64).pv, True),
    ("int_layer_norm", lambda a: layer_norm.int_layer_norm(64, 768, "int16", 5, dequant=True, exact=True), False),
])
def test_kernel_builds_machine_code_for_arch(name, make, mma, arch):
    report = verify_executable(build_kernel(make(arch), name, arch), arch)
    assert any(e.kind == "elf" and e.arch == int(arch[3:]) for e in report.entries)
    assert (report.mma_instructions > 0) == mma


def test_dense_f16_definition_matches_numpy():
    rng = np.random.default_rng(0)
    m, n, k = 32, 48, 64
    x, w, b = (rng.standard_normal(s).astype(np.float16) for s in ((m, k), (k, n), (n,)))
    y = _t(np.zeros((m, n), np.float16))
    build_cpu_reference(dense.dense_f16_func(m, n, k, "gelu"))["main"](_t(x), _t(w), _t(b), y)
    z = x.astype(np.float64) @ w.astype(np.float64) + b
    ref = 0.5 * z * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-2, atol=1e-2)


def test_qdense_requant_definition_is_bit_exact_with_intmath():
    from hwcomp.ops.intmath import int_matmul, quantize_multiplier, requantize

    rng = np.random.default_rng(1)
    m, n, k, x_zp, out_zp = 16, 32, 64, 5, -3
    x = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w_kn = rng.integers(-127, 128, (k, n), dtype=np.int8)
    bias = rng.integers(-3000, 3000, n).astype(np.int32)
    mult, shift = quantize_multiplier(rng.uniform(1e-4, 1e-2, n))
    y = _t(np.zeros((m, n), np.int8))
    f = qdense.qdense_func(m, n, k, "requant", out_zero_point=out_zp)
    folded = qdense.fold_input_zero_point(w_kn, bias, x_zp)
    build_cpu_reference(f)["main"](_t(x), _t(np.ascontiguousarray(w_kn.T)), _t(folded), _t(mult), _t(shift), y)
    acc = int_matmul(x, w_kn, x_zp) + bias.astype(np.int64)
    np.testing.assert_array_equal(y.numpy(), requantize(acc, mult, shift, out_zp))


@pytest.mark.parametrize("act", ["none", "gelu_tanh"])
def test_gemv_int4_definition_matches_unpacked_weight(act):
    rng = np.random.default_rng(2)
    n, k, g = 64, 256, 128
    packed, scale, zero = gemv_int4.pack_int4(rng.standard_normal((k, n)).astype(np.float32), g)
    x = rng.standard_normal((1, k)).astype(np.float16)
    bias = rng.standard_normal(n).astype(np.float16)
    y = _t(np.zeros((1, n), np.float16))
    build_cpu_reference(gemv_int4.gemv_int4_func(1, n, k, g, act=act))["main"](
        _t(x), _t(packed), _t(scale), _t(zero), _t(bias), y)
    ref = x.astype(np.float64) @ gemv_int4.unpack_int4(packed, scale, zero, g).T + bias
    if act == "gelu_tanh":
        ref = 0.5 * ref * (1 + np.tanh(math.sqrt(2 / math.pi) * (ref + 0.044715 * ref**3)))
    np.testing.assert_allclose(y.numpy(), ref, rtol=2e-2, atol=2e-2)


def test_gemv_int4_packing_puts_code_pairs_in_half2_lanes():
    """The kernel's layout contract: (word >> 4j) & 0x000F000F holds codes 8u+2j and 8u+2j+1 of word u in
    its low and high 16 bits, and unpacking inverts packing."""
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 16, (3, 64)).astype(np.uint8)
    packed = gemv_int4.pack_codes(codes)
    assert packed.shape == (3, 32) and packed.dtype == np.uint8
    np.testing.assert_array_equal(gemv_int4.unpack_codes(packed), codes)
    words = packed.view("<u4")  # [3, 8]
    for j in range(4):
        pair = (words >> np.uint32(4 * j)) & np.uint32(0x000F000F)
        np.testing.assert_array_equal(pair & 0xFFFF, codes[:, 2 * j::8])
        np.testing.assert_array_equal(pair >> 16, codes[:, 2 * j + 1::8])


def test_device_functions_are_injected_only_where_called():
    from schedules import cuda_device_functions as dev

    plain = '#include <cuda_fp16.h>\nextern "C" __global__ void k(float* y) { y[0] = 1.0f; }\n'
    assert dev.inject(plain) == plain
    calls = plain.replace("y[0] = 1.0f", "y[0] = hwcomp_half2_sum(7u)")
    out = dev.inject(calls)
    assert out.index("__device__ __forceinline__ float hwcomp_half2_sum") < out.index('extern "C" __global__')
    assert "hwcomp_i4x2_fma" not in out and dev.inject(calls) == out  # only what is called; deterministic
    assert dev.inject(out) == out  # idempotent: a second hook in the chain adds nothing


def test_generated_device_functions_are_injected_once_per_variant():
    """wgmma dense and warp layer-norm functions are generated from the called name: each variant once, after
    the shared PTX wrappers, the same bytes every time."""
    from schedules import cuda_device_functions as dev

    body = ("hwcomp_wgmma_dense_f16_n128s3w0_gelu_b(x, w, b, y, r, 0, 128, 128, 64, 128); "
            "hwcomp_wgmma_dense_f16_n256s4_none_o32(x, w, y, r, 0, 128, 256, 64, 200); "
            "hwcomp_layer_norm_f16_c768_r(x, r, g, b, y, s, 0, 1e-5f);")
    src = '#include <cuda_fp16.h>\nextern "C" __global__ void k() { ' + body + " }\n"
    out = dev.inject(src)
    assert dev.needs_sm90a(out) and dev.inject(src) == out and dev.inject(out) == out
    for name in ("hwcomp_wgmma_dense_f16_n128s3w0_gelu_b(", "hwcomp_wgmma_dense_f16_n256s4_none_o32(",
                 "hwcomp_layer_norm_f16_c768_r("):
        assert out.count("void " + name) == 1, name
    assert out.count("hwcomp_gmma_desc(unsigned addr)") == 1
    assert "m64n128k16" in out and "m64n256k16" in out
    assert not dev.needs_sm90a(dev.inject(src.replace(body, "hwcomp_layer_norm_f16_c256(x, g, b, y, 0, 1e-5f);")))


@needs_nvcc
@pytest.mark.slow
def test_wgmma_dense_builds_sm90a_machine_code_deterministically():
    from schedules import dense_wgmma

    def source():
        ex = build_kernel(dense_wgmma.dense_f16_wgmma(256, 256, 128, "gelu_tanh", True,
                                                     dense_wgmma.WgmmaConfig(128, 3, 0)), "wg", "sm_90")
        return ex

    report = verify_executable(source(), "sm_90")
    assert any(e.kind == "elf" and e.arch == 90 for e in report.entries)
    assert report.wgmma_instructions > 0 and report.mma_instructions == 0
    from backends.tvm_cuda.verify import cuda_source
    assert cuda_source(source()) == cuda_source(source())
    explicit = build_kernel(dense_wgmma.dense_f16_wgmma(256, 256, 128), "wg_a", "sm_90a")  # --arch sm_90a
    assert verify_executable(explicit, "sm_90a").wgmma_instructions > 0
    with pytest.raises(Exception, match="multiple of the wgmma tile"):
        dense_wgmma.dense_f16_wgmma(200, 256, 128)
    # one warpgroup, 64-row tiles (few-row GEMMs): a 128-thread launch
    small = dense_wgmma.dense_f16_wgmma(64, 128, 128, "none", False, dense_wgmma.WgmmaConfig.parse("m64n64s6"))
    assert 'T.thread_binding(128, thread="threadIdx.x")' in small.script()
    assert verify_executable(build_kernel(small, "wg_s", "sm_90"), "sm_90").wgmma_instructions > 0
    assert str(dense_wgmma.WgmmaConfig.parse("m64n64s6")) == "m64n64s6" and dense_wgmma.pick_config(128, 768, 768).bm == 64
    with pytest.raises(Exception, match="multiple of the wgmma tile 64"):
        dense_wgmma.dense_f16_wgmma(96, 128, 128, config=dense_wgmma.WgmmaConfig.parse("m64n64s6"))


@needs_nvcc
def test_gemv_int4_kernel_source_uses_packed_half2_decode():
    """The CUDA that TVM generates for the GEMV carries hwcomp's half2 helpers (added by the codegen hook), and
    nvcc turns them into packed f16x2 arithmetic: the build succeeds only if the definitions were injected."""
    import backends.tvm_cuda.build as build_a
    import hwcomp.backends.tvm_cuda.build as build_b
    from backends.tvm_cuda.verify import cuda_source

    build_a.pass_context(), build_b.pass_context()  # two copies of the module: the hook registered twice
    ex = build_kernel(gemv_int4.gemv_int4(1, 512, 1024, 128), "gemv_int4", "sm_90")
    src = cuda_source(ex)
    assert "unsigned hwcomp_i4x2_fma(" in src and "hwcomp_i4x2_fma(" in src.split('extern "C" __global__')[-1]
    assert any(e.kind == "elf" and e.arch == 90 for e in verify_executable(ex, "sm_90").entries)


def test_add_layer_norm_definition_matches_numpy():
    rng = np.random.default_rng(3)
    m, c = 8, 96
    x, r = (rng.standard_normal((m, c)).astype(np.float16) for _ in range(2))
    g, b = (rng.standard_normal(c).astype(np.float16) for _ in range(2))
    y, s = _t(np.zeros((m, c), np.float16)), _t(np.zeros((m, c), np.float16))
    build_cpu_reference(layer_norm.layer_norm_func(m, c, 1e-5, True))["main"](_t(x), _t(r), _t(g), _t(b), y, s)
    s16 = (x + r).astype(np.float64)
    mu = s16.mean(-1, keepdims=True)
    ref = (s16 - mu) / np.sqrt(((s16 - mu) ** 2).mean(-1, keepdims=True) + 1e-5) * g + b
    np.testing.assert_array_equal(s.numpy(), x + r)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-2, atol=2e-2)


@pytest.mark.parametrize("d", [32, 64])
def test_qattention_definitions_are_bit_exact_with_intmath(d):
    """int8-mma scores (+ mask), the I-BERT integer softmax (written as float16 integers) and the fp16-mma PV
    with per-channel requantization give hwcomp's integer attention exactly (head size 32: one K fragment)."""
    from hwcomp.ops import intmath
    from hwcomp.ops.quantized import exp_constants

    b, s, h = 2, 32, 2
    ln2, eb, ec = exp_constants(8e-4)
    rng = np.random.default_rng(d)
    q, k, v = (rng.integers(-128, 128, (b, s, h * d)).astype(np.int8) for _ in range(3))
    mask = np.zeros((b, 1, s), np.int32)
    mask[1, 0, s // 2:] = -(1 << 30)
    mult = rng.integers(1 << 30, 1 << 31, h * d).astype(np.int32)
    shift = rng.integers(36, 42, h * d).astype(np.int32)
    scores = _t(np.zeros((b, h, s, s), np.int32))
    build_cpu_reference(qattention.qscores_func(b, s, s, h, d, False, True, b, 1))["main"](_t(q), _t(k), _t(mask), scores)
    split = lambda x: x.astype(np.int64).reshape(b, s, h, d).transpose(0, 2, 1, 3)  # noqa: E731
    ref = split(q) @ split(k).transpose(0, 1, 3, 2) + mask[:, None]
    np.testing.assert_array_equal(scores.numpy(), ref)
    probs = _t(np.zeros((b * h * s, s), np.float16))
    build_cpu_reference(qattention.int_softmax_func(b * h * s, s, ln2, eb, ec, 8))["main"](_t(ref.reshape(-1, s).astype(np.int32)), probs)
    p = intmath.int_softmax(ref.reshape(-1, s), ln2, eb, ec, 8)
    np.testing.assert_array_equal(probs.numpy().astype(np.int64), p)
    out = _t(np.zeros((b, s, h * d), np.int8))
    build_cpu_reference(qattention.qpv_func(b, s, s, h, d, qattention.Epilogue(out_zero_point=-2)))["main"](
        _t(probs.numpy().reshape(b, h, s, s)), _t(v.astype(np.float16)), _t(mult), _t(shift), out)
    acc = (p.reshape(b, h, s, s) @ split(v)).transpose(0, 2, 1, 3).reshape(b, s, h * d)
    np.testing.assert_array_equal(out.numpy(), intmath.requantize(acc, mult, shift, -2))


def test_qattention_refuses_shapes_fp32_cannot_hold_exactly():
    from schedules.errors import ScheduleError

    with pytest.raises(ScheduleError, match="2\\^24"):
        qattention.check_exact(1024, 8)


def test_int_layer_norm_definition_is_bit_exact_with_intmath():
    """Integer statistics, the float64-sqrt isqrt with its correction steps, and both epilogues."""
    from hwcomp.ops import intmath

    rng = np.random.default_rng(0)
    m, c = 16, 96
    x = rng.integers(-30000, 30000, (m, c)).astype(np.int16)
    x[0] = 7  # zero variance: std clamps to 1
    gamma = rng.integers(-32767, 32767, c).astype(np.int32)
    beta = rng.integers(-1 << 20, 1 << 20, c).astype(np.int32)
    acc = intmath.int_layer_norm(x, gamma, beta, 3, 14)
    mult = np.full(c, 1 << 30, np.int32)
    shift = np.full(c, 52, np.int32)
    y = _t(np.zeros((m, c), np.int8))
    build_cpu_reference(layer_norm.int_layer_norm_func(m, c, "int16", 3, 14))["main"](
        _t(x), _t(gamma), _t(beta), _t(mult), _t(shift), y)
    np.testing.assert_array_equal(y.numpy(), intmath.requantize(acc, mult, shift, 0))
    scale = rng.uniform(1e-6, 1e-4, c).astype(np.float32)
    yf = _t(np.zeros((m, c), np.float32))
    build_cpu_reference(layer_norm.int_layer_norm_func(m, c, "int16", 3, 14, dequant=True))["main"](
        _t(x), _t(gamma), _t(beta), _t(scale), yf)
    np.testing.assert_array_equal(yf.numpy(), acc.astype(np.float32) * scale)


def test_isqrt_by_float64_sqrt_is_exact():
    """floor(sqrt(v)) for v up to 2^62, around perfect squares and at random, as intmath.isqrt."""
    from tvm import te

    from hwcomp.ops import intmath

    rng = np.random.default_rng(1)
    r = rng.integers(1, 1 << 31, 2000).astype(np.int64)
    v = np.concatenate([r * r - 1, r * r, r * r + 1, rng.integers(0, 1 << 62, 2000), [0, 1, 2, 3, (1 << 62) - 1]])
    v = np.clip(v, 0, (1 << 62) - 1).astype(np.int64)
    x = te.placeholder((v.size,), "int64", name="v")
    y = te.compute((v.size,), lambda i: layer_norm._isqrt64(x[i]), name="y")
    out = _t(np.zeros(v.size, np.int64))
    build_cpu_reference(te.create_prim_func([x, y]))["main"](_t(v), out)
    np.testing.assert_array_equal(out.numpy(), intmath.isqrt(v))


def test_flash_attention_functions_are_injected_once_per_variant():
    """A fused-QKV flash variant calls its plain variant: both are defined once, with the mma wrapper and the
    swizzle macro of each head size once, even when the plain variant is also called on its own."""
    from schedules import cuda_device_functions as dev

    body = ("hwcomp_flash_attn_d64w4_m_f(qkv, m, o, r, 0, 2, 12, 128, 128, 0.125f, 0, 128); "
            "hwcomp_flash_attn_d64w4_m(q, k, v, m, o, r, 0, 2, 12, 128, 128, 768, 0.125f, 0, 128); "
            "hwcomp_flash_attn_d32w1_c(q, k, v, o, r, 0, 2, 12, 128, 128, 384, 0.125f);")
    src = '#include <cuda_fp16.h>\nextern "C" __global__ void k() { ' + body + " }\n"
    out = dev.inject(src)
    assert dev.inject(src) == out and dev.inject(out) == out and not dev.needs_sm90a(out)
    for name in ("hwcomp_flash_attn_d64w4_m_f(", "hwcomp_flash_attn_d64w4_m(", "hwcomp_flash_attn_d32w1_c("):
        assert out.count("void " + name) == 1, name
    assert out.count("void hwcomp_mma16816(") == 1 and out.count("void hwcomp_cp_async16(") == 1
    assert out.count("#define HWCOMP_FA_SW_D64(") == 1 and out.count("#define HWCOMP_FA_SW_D32(") == 1


def _numpy_attention(q, k, v, h, scale, mask=None, causal=False):
    b, s_q, hd = q.shape
    s_k, d = k.shape[1], hd // h
    split = lambda x, s: x.astype(np.float64).reshape(b, s, h, d).transpose(0, 2, 1, 3)  # noqa: E731
    s = split(q, s_q) @ split(k, s_k).transpose(0, 1, 3, 2) * scale
    if mask is not None:
        s = s + mask[:, None]
    if causal:
        s = np.where(np.arange(s_k)[None] > np.arange(s_q)[:, None] + (s_k - s_q), -3.4e38, s)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return (p @ split(v, s_k)).transpose(0, 2, 1, 3).reshape(b, s_q, hd)


@pytest.mark.parametrize("fused,causal", [(True, False), (False, True)])
def test_flash_attention_definition_matches_numpy(fused, causal):
    """The flash kernel's definition (what tuning and the CPU see): heads read at their offsets in a fused QKV
    projection, per-row mask broadcast over heads, causal fill."""
    import tvm
    from schedules import flash_attention as fa

    b, s, h, d = 2, 64, 2, 32
    rng = np.random.default_rng(0)
    qkv = rng.standard_normal((b, s, 3 * h * d)).astype(np.float16)
    q, k, v = (np.ascontiguousarray(qkv[..., i * h * d:(i + 1) * h * d]) for i in range(3))
    mask = np.zeros((b, s, s), np.float32)
    mask[1, :, s // 2:] = -3.4e38
    f = fa.attention_func(b, s, s, h, d, 0.2, causal, True, b, s, fused)
    ex = tvm.compile(tvm.IRModule({"main": f}), "llvm")
    out = tvm.runtime.tensor(np.zeros((b, s, h * d), np.float16))
    ex["main"](*[tvm.runtime.tensor(x) for x in ([qkv] if fused else [q, k, v])], tvm.runtime.tensor(mask), out)
    ref = _numpy_attention(q, k, v, h, 0.2, mask, causal)
    assert float(np.abs(out.numpy() - ref).max()) < 5e-3


@needs_nvcc
@pytest.mark.slow
@pytest.mark.parametrize("d,causal,mask,fused,seq", [(64, False, True, True, 128), (32, True, False, False, 128),
                                                     (128, False, True, False, 128), (64, True, True, True, 77)])
def test_flash_attention_builds_mma_machine_code_deterministically(d, causal, mask, fused, seq):
    from schedules import flash_attention as fa
    from backends.tvm_cuda.verify import cuda_source

    def build(arch="sm_90"):
        return build_kernel(fa.attention_flash(2, seq, seq, 4, d, d ** -0.5, causal, mask, 2, 1, fused), "fa", arch)

    ex = build()
    report = verify_executable(ex, "sm_90")
    assert any(e.kind == "elf" and e.arch == 90 for e in report.entries)
    assert report.mma_instructions > 0 and report.wgmma_instructions == 0
    assert cuda_source(ex) == cuda_source(build())
    assert verify_executable(build("sm_80"), "sm_80").mma_instructions > 0


def test_flash_attention_covers_partial_tiles_with_its_tail_variant():
    """Any sequence lengths: a partial last query or key tile takes the bounds-checked ``_t`` variant (the
    variants without it are what the common multiples of 64 build); head dims other than 32/64/128 are refused."""
    from schedules import flash_attention as fa
    from schedules.errors import ScheduleError

    assert fa.applicable(100, 100, 64) and fa.applicable(1, 130, 32) and not fa.applicable(128, 128, 48)
    assert not fa.has_tail(128, 128, fa.FlashConfig(4)) and fa.has_tail(100, 100, fa.FlashConfig(1))
    assert fa.has_tail(64, 100, fa.FlashConfig(4)) and fa.has_tail(48, 128, fa.FlashConfig(4))
    f = fa.attention_flash(2, 100, 100, 4, 64, 0.125, False, True, 2, 1, fused=True)
    # 2 x 4 heads of 100 rows: 2 warps (32 rows) a block, 4 query tiles a head, the last one partial
    assert "hwcomp_flash_attn_d64w2_m_t_f" in f.script() and 'T.thread_binding(32, thread="blockIdx.x")' in f.script()
    src = fa.sources_for("hwcomp_flash_attn_d64w1_m_t_f(); hwcomp_flash_attn_d64w1_m(); ")
    assert src.count("void hwcomp_flash_attn_d64w1_m_t(") == 1 and src.count("void hwcomp_flash_attn_d64w1_m(") == 1
    assert "key < Sk ?" in src and "if (qrow0 < Sq)" in src
    with pytest.raises(ScheduleError, match="head dim 48"):
        fa.attention_flash(1, 128, 128, 12, 48, 0.125)
    with pytest.raises(ScheduleError, match="Sq = Sk"):
        fa.attention_flash(1, 64, 128, 12, 64, 0.125, fused=True)


# ---- int8 on sm_90: wgmma GEMM, warp-per-row integer layer norm, one-kernel integer attention ----------------

_QWGMMA_VARIANTS = {  # (m, n, k, keyword arguments of qdense_wgmma)
    "rq8": (128, 256, 256, {}),
    "rq8_relu_zp": (128, 256, 256, {"out_zero_point": -5, "activation": "relu"}),
    "rq16": (128, 128, 384, {"out_bits": 16}),
    "rq8_as_f16": (128, 256, 256, {"requant_as_f16": True}),
    "dq_f32": (64, 128, 256, {"epilogue": "dequant", "out_dtype": "float32"}),
    "dq_f16_relu": (128, 256, 128, {"epilogue": "dequant", "out_dtype": "float16", "activation": "relu"}),
    "dqrq16": (128, 256, 256, {"epilogue": "dequant", "residual_quant": (16, 0)}),
    "rq8_igelu": (128, 256, 256, {"gelu": (320, 113781), "out_zero_point": -60}),
    "dq_f32_unpadded": (128, 256, 256, {"epilogue": "dequant", "out_dtype": "float32", "n_out": 251, "lead": (2, 64)}),
    "dqq_f16": (128, 384, 256, {"epilogue": "dequant", "quantize": 0, "requant_as_f16": True}),
    "dqrq16_sum": (128, 256, 256, {"epilogue": "dequant", "residual_quant": (16, 0), "residual_sum": True}),
}


@needs_nvcc
@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(_QWGMMA_VARIANTS))
def test_qdense_wgmma_builds_s8_machine_code(variant):
    """Every epilogue of the int8 wgmma GEMM compiles to sm_90a machine code issuing s8 x s8 -> s32 warpgroup
    MMAs (no mma.sync), the generated function's name says what it computes, and the source is deterministic."""
    from backends.tvm_cuda.verify import cuda_source
    from schedules import qdense_wgmma

    m, n, k, kw = _QWGMMA_VARIANTS[variant]
    f = qdense_wgmma.qdense_wgmma(m, n, k, **kw)
    ex = build_kernel(f, "qwg_" + variant, "sm_90")
    report = verify_executable(ex, "sm_90")
    assert any(e.kind == "elf" and e.arch == 90 for e in report.entries)
    assert report.wgmma_instructions > 0 and report.mma_instructions == 0
    src = cuda_source(ex)
    assert "wgmma.mma_async.sync.aligned.m64n" in src and ".s32.s8.s8" in src and ".f16.f16" not in src
    epi = {"rq8_as_f16": "_rq_f16_", "dq_f32": "_dq_f32_", "dq_f16_relu": "_dq_f16_", "dqrq16": "_dqrq_i16_",
           "rq16": "_rq_i16_", "rq8_relu_zp": "_rq_i8_zm5_relu", "rq8_igelu": "_rqgelu_i8_zm60_none",
           "dq_f32_unpadded": "_dq_f32u_z0_none", "dqq_f16": "_dqq_f16_z0_none", "dqrq16_sum": "_dqrqs_i16_z0_none"
           }.get(variant, "_rq_i8_z0_none")
    assert epi in src.split('extern "C" __global__')[-1]
    assert cuda_source(build_kernel(qdense_wgmma.qdense_wgmma(m, n, k, **kw), "qwg_" + variant, "sm_90")) == src


def test_qdense_wgmma_refuses_bad_tiles_and_epilogues():
    from schedules import qdense_wgmma
    from schedules.errors import ScheduleError

    assert qdense_wgmma.applicable(4096, 768, 768) and qdense_wgmma.applicable(128, 768, 3072)
    assert not qdense_wgmma.applicable(128, 768, 200) and not qdense_wgmma.applicable(128, 100, 256)
    # an int8 K-step holds 128 elements: the fp16 GEMM's tile choice for half as many K elements, unless
    # 128x128 tiles leave SMs with fewer than two blocks (N=768 at 4096 rows): then 128x64 tiles, three an SM;
    # an LM head's 38.6 MB of weights walks down the rows first; fp16's long K (FFN-down) one wave of 128x192
    from schedules import dense_wgmma
    assert qdense_wgmma.pick_config(4096, 2304, 768) == dense_wgmma.pick_config(4096, 2304, 384)
    assert qdense_wgmma.pick_config(4096, 3072, 768) == dense_wgmma.pick_config(4096, 3072, 384)
    assert str(qdense_wgmma.pick_config(4096, 768, 768)) == str(qdense_wgmma.pick_config(4096, 768, 3072)) == "n64s3w0"
    assert str(qdense_wgmma.pick_config(4096, 50304, 768)) == str(dense_wgmma.pick_config(4096, 50304, 768)) == "n128s3w0r"
    assert str(dense_wgmma.pick_config(4096, 768, 3072)) == "n192s4"
    assert str(dense_wgmma.pick_config(4096, 768, 768)) == "n128s3w0"
    # MiniLM's FFN-down (64 tiles of 128x192 would leave half the SMs idle) keeps 128x128
    assert str(dense_wgmma.pick_config(4096, 384, 1536)) == "n128s3w0"
    assert qdense_wgmma.NARROW.smem_bytes * 3 <= 228 * 1024
    assert qdense_wgmma.pick_config(128, 768, 768).bm == 64
    with pytest.raises(ScheduleError, match="multiple of the wgmma tile"):
        qdense_wgmma.qdense_wgmma(128, 256, 200)
    with pytest.raises(ScheduleError, match="epilogue 'gelu'"):
        qdense_wgmma.qdense_wgmma(128, 256, 256, epilogue="gelu")
    with pytest.raises(ScheduleError, match="out_bits 4"):
        qdense_wgmma.qdense_wgmma(128, 256, 256, out_bits=4)
    with pytest.raises(ScheduleError, match="only int8"):
        qdense_wgmma.qdense_wgmma(128, 256, 256, out_bits=16, requant_as_f16=True)
    with pytest.raises(ScheduleError, match="activation"):
        qdense_wgmma.qdense_wgmma(128, 256, 256, activation="gelu")
    with pytest.raises(ScheduleError, match="overflow int32"):
        qdense_wgmma.qdense_wgmma(128, 256, 256, gelu=(4000, 1 << 20))
    with pytest.raises(ScheduleError, match="only after the int8 requantization"):
        qdense_wgmma.qdense_wgmma(128, 256, 256, epilogue="dequant", gelu=(320, 113781))
    with pytest.raises(ScheduleError, match="no 'dq' epilogue with i8"):
        qdense_wgmma.device_function(qdense_wgmma.SMALL_M, "dq", "i8", 0, "none")


def test_qdense_requant_as_f16_definition_gives_the_int8_values():
    """An attention operand written by the int8 GEMM as float16: the same requantized integers, exactly."""
    from hwcomp.ops.intmath import int_matmul, quantize_multiplier, requantize

    rng = np.random.default_rng(4)
    m, n, k = 16, 32, 64
    x, w = rng.integers(-128, 128, (m, k)).astype(np.int8), rng.integers(-128, 128, (n, k)).astype(np.int8)
    bias = rng.integers(-4000, 4000, n).astype(np.int32)
    mult, shift = quantize_multiplier(rng.uniform(2e-4, 1e-3, n))
    y = _t(np.zeros((m, n), np.float16))
    build_cpu_reference(qdense.qdense_func(m, n, k, "requant", 3, requant_as_f16=True))["main"](
        _t(x), _t(w), _t(bias), _t(mult.astype(np.int32)), _t(shift.astype(np.int32)), y)
    ref = requantize(int_matmul(x, w.T) + bias, mult, shift, 3)
    assert ref.min() < -20 and ref.max() > 20  # not all clamped
    np.testing.assert_array_equal(y.numpy(), ref.astype(np.float16))


def test_qdense_unpadded_output_definition_takes_the_first_columns_in_the_output_shape():
    """An int8 LM head's logits: the dequantized GEMM's first ``n_out`` columns, written as the graph output
    ``[B, S, n_out]`` -- the padded GEMM's result without a copy."""
    from schedules import qdense_wgmma
    from schedules.errors import ScheduleError

    rng = np.random.default_rng(2)
    m, n, k, n_out = 32, 64, 64, 61
    x, w = rng.integers(-128, 128, (m, k)).astype(np.int8), rng.integers(-128, 128, (n, k)).astype(np.int8)
    bias = rng.integers(-4000, 4000, n).astype(np.int32)
    scale = rng.uniform(1e-4, 1e-3, n).astype(np.float32)
    y = _t(np.zeros((2, 16, n_out), np.float32))
    build_cpu_reference(qdense.qdense_func(m, n, k, "dequant", out_dtype="float32", n_out=n_out, lead=(2, 16)))["main"](
        _t(x), _t(w), _t(bias), _t(scale), y)
    full = (x.astype(np.int64) @ w.T.astype(np.int64) + bias).astype(np.float32) * scale
    np.testing.assert_array_equal(y.numpy(), full[:, :n_out].reshape(2, 16, n_out))
    with pytest.raises(ScheduleError, match="unpadded"):
        qdense_wgmma.qdense_wgmma(128, 256, 256, epilogue="dequant", out_dtype="float16", n_out=200)
    with pytest.raises(ScheduleError, match="unpadded"):
        qdense_wgmma.qdense_wgmma(128, 256, 256, n_out=200)


def test_qdense_per_column_quantize_definition_matches_dequant_then_quantize():
    """A fused QKV projection's epilogue: dequantized, then hwcomp's quantize by each column's part scale, the
    int8 values written as fp16 -- the interpreter's qdense, Split and per-part quantize, exactly."""
    from hwcomp.ir.graph import Node
    from hwcomp.ops.quantized import quantize

    rng = np.random.default_rng(11)
    m, n, k = 32, 96, 64
    x, w = rng.integers(-128, 128, (m, k)).astype(np.int8), rng.integers(-128, 128, (n, k)).astype(np.int8)
    bias = rng.integers(-4000, 4000, n).astype(np.int32)
    scale = rng.uniform(1e-4, 1e-3, n).astype(np.float32)
    parts = np.array([0.02, 0.03, 0.05], np.float32)
    y = _t(np.zeros((m, n), np.float16))
    build_cpu_reference(qdense.qdense_func(m, n, k, "dequant", requant_as_f16=True, quantize=0))["main"](
        _t(x), _t(w), _t(bias), _t(scale), _t(np.repeat(parts, n // 3)), y)
    f = (x.astype(np.int64) @ w.T.astype(np.int64) + bias).astype(np.float32) * scale
    ref = np.concatenate([quantize(Node("quantize", ["v"], ["q"], {"scale": float(sc), "bits": 8}, "q"), part)
                          for sc, part in zip(parts, np.split(f, 3, axis=-1))], -1)
    assert len(np.unique(ref)) > 50
    np.testing.assert_array_equal(y.numpy(), ref.astype(np.float16))


def test_qdense_residual_quantize_definition_can_keep_the_float32_sum():
    """Pre-LN residual: dequantized GEMM + residual, written as float32 (the stream goes on) and quantized to int16
    for the next integer layer norm -- numpy's float32 add and hwcomp's quantize, exactly."""
    from hwcomp.ir.graph import Node
    from hwcomp.ops.quantized import quantize

    rng = np.random.default_rng(12)
    m, n, k = 32, 64, 64
    x, w = rng.integers(-128, 128, (m, k)).astype(np.int8), rng.integers(-128, 128, (n, k)).astype(np.int8)
    bias = rng.integers(-4000, 4000, n).astype(np.int32)
    scale = rng.uniform(1e-4, 1e-3, n).astype(np.float32)
    res = rng.standard_normal((m, n)).astype(np.float32)
    qscale = rng.uniform(1e-4, 3e-4, n).astype(np.float32)
    yq, ys = _t(np.zeros((m, n), np.int16)), _t(np.zeros((m, n), np.float32))
    build_cpu_reference(qdense.qdense_func(m, n, k, "dequant", out_dtype="float32", residual_quant=(16, 0),
                                           residual_sum=True))["main"](
        _t(x), _t(w), _t(bias), _t(scale), _t(res), _t(qscale), yq, ys)
    total = (x.astype(np.int64) @ w.T.astype(np.int64) + bias).astype(np.float32) * scale + res
    np.testing.assert_array_equal(ys.numpy(), total)
    ref = quantize(Node("quantize", ["v"], ["q"], {"scale": qscale, "bits": 16}, "q"), total)
    assert len(np.unique(ref)) > 500
    np.testing.assert_array_equal(yq.numpy(), ref)


def test_qdense_igelu_definition_is_bit_exact_with_the_interpreter_ops():
    """The FFN up-projection with i-GELU fused: GEMM requantized to int8, ``intmath.int_gelu``, requantized again
    -- the interpreter's qdense then int_gelu, exactly, with constants from ``gelu_constants``."""
    from hwcomp.ops.intmath import int_gelu, int_matmul, quantize_multiplier, requantize
    from hwcomp.ops.quantized import gelu_constants

    rng = np.random.default_rng(9)
    m, n, k = 32, 64, 128
    x, w = rng.integers(-128, 128, (m, k)).astype(np.int8), rng.integers(-128, 128, (n, k)).astype(np.int8)
    bias = rng.integers(-4000, 4000, n).astype(np.int32)
    mult, shift = (a.astype(np.int32) for a in quantize_multiplier(rng.uniform(1e-4, 4e-4, n)))
    s_in = 0.03
    b_int, one_int, acc_scale = gelu_constants(s_in)
    gm, gs = (a.astype(np.int32) for a in quantize_multiplier(np.full(n, acc_scale / 0.01)))
    y = _t(np.zeros((m, n), np.int8))
    build_cpu_reference(qdense.qdense_func(m, n, k, "requant", -40, gelu=(b_int, one_int)))["main"](
        _t(x), _t(w), _t(bias), _t(mult), _t(shift), _t(gm), _t(gs), y)
    h = requantize(int_matmul(x, w.T) + bias, mult, shift, 0)
    ref = requantize(int_gelu(h, b_int, one_int), gm, gs, -40)
    assert (h < 0).mean() > 0.2 and len(np.unique(ref)) > 30
    np.testing.assert_array_equal(y.numpy(), ref)


def test_int8_generated_functions_are_injected_once_with_their_helpers():
    """int8 wgmma GEMMs, warp integer layer norms and integer flash attention named in a kernel are generated
    once each, with the shared helpers (descriptor, requantize, quantize, mma) once; the module then needs sm_90a."""
    from schedules import cuda_device_functions as dev

    body = ("hwcomp_wgmma_qdense_n128s4_rq_i8_z0_none(x, w, b, m, s, y, r, 0, 128, 256, 256); "
            "hwcomp_wgmma_qdense_m64n64s6_dqrq_i16_z0_none(x, w, b, s, r, q, y, r, 0, 64, 256, 256); "
            "hwcomp_wgmma_qdense_n128s4_rq_i8_z0_none(x, w, b, m, s, y, r, 1, 128, 256, 256); "
            "hwcomp_int_layer_norm_i16_c768_f14_dq_q8(x, g, b, s, q, y, yq, 5ll, 0, 0); "
            "hwcomp_wgmma_qdense_n128s4_rqgelu_i8_zm60_none(x, w, b, m, s, gm, gs, y, r, 0, 128, 256, 256, 320, 9); "
            "hwcomp_qflash_attn_d64k128w4_em1_b2_c3_p8_m_rq8(q, k, v, m, mu, s, o, r, 0, 2, 12, 128, 0, 128, 0); "
            "hwcomp_qflash_attn_d64k128w4_em1_b2_c3_p8_c_m_f_rq8(qkv, m, mu, s, o, r, 0, 2, 12, 128, 0, 128, 0);")
    src = '#include <cuda_fp16.h>\nextern "C" __global__ void k() { ' + body + " }\n"
    out = dev.inject(src)
    assert dev.needs_sm90a(out) and dev.inject(src) == out and dev.inject(out) == out
    for name in ("hwcomp_wgmma_qdense_n128s4_rq_i8_z0_none(", "hwcomp_wgmma_qdense_m64n64s6_dqrq_i16_z0_none(",
                 "hwcomp_wgmma_qdense_n128s4_rqgelu_i8_zm60_none(",
                 "hwcomp_int_layer_norm_i16_c768_f14_dq_q8(", "hwcomp_qflash_attn_d64k128w4_em1_b2_c3_p8_m_rq8(",
                 "hwcomp_qflash_attn_d64k128w4_em1_b2_c3_p8_c_m_f_rq8("):
        assert out.count("void " + name) == 1, name
    # every caller here requantizes int32 (hwcomp_requant32), whose shifts <= 32 call hwcomp_requant: defined first
    assert out.index("int hwcomp_requant(long long") < out.index("int hwcomp_requant32(int")
    for helper in ("hwcomp_gmma_desc(unsigned", "hwcomp_requant(long long", "hwcomp_requant32(int", "hwcomp_quantize(float",
                   "hwcomp_igelu(int", "hwcomp_mma16816(float*"):
        assert out.count(helper) == 1, helper
    assert out.count("#define HWCOMP_QFA_SW_D64(") == 1
    assert ".s32.s8.s8" in out and "m64n128k32" in out and "m64n64k32" in out


def test_register_hungry_kernels_get_min_blocks_launch_bounds(monkeypatch):
    """The integer layer norm's and the integer attention's launches ask for the registers that let their shared
    memory's worth of blocks share an SM (8 layer-norm blocks; 5 attention blocks of 40 KiB at d64/k128; longer
    rows left alone); other kernels keep TVM's bounds; HWCOMP_MIN_BLOCKS=0 turns it off."""
    from schedules import cuda_device_functions as dev

    kern = 'extern "C" __global__ void __launch_bounds__({t}) {n}(int* a) {{ {call}(a); }}\n'
    src = ("#include <cuda_fp16.h>\n"
           + kern.format(t=128, n="ln_kernel", call="hwcomp_int_layer_norm_i16_c768_f14_dq_q8")
           + kern.format(t=128, n="attn_kernel", call="hwcomp_qflash_attn_d64k128w4_em1_b2_c3_p8_m_rq8")
           + kern.format(t=128, n="attn_long_kernel", call="hwcomp_qflash_attn_d64k256w4_em1_b2_c3_p8_m_rq8")
           + kern.format(t=256, n="gemm_kernel", call="hwcomp_wgmma_qdense_n128s4_rq_i8_z0_none"))
    out = dev.inject(src)
    assert "__launch_bounds__(128, 8) ln_kernel(" in out and "__launch_bounds__(128, 5) attn_kernel(" in out
    assert "__launch_bounds__(128) attn_long_kernel(" in out and "__launch_bounds__(256) gemm_kernel(" in out
    monkeypatch.setenv("HWCOMP_MIN_BLOCKS", "0")
    assert "__launch_bounds__(128) ln_kernel(" in dev.inject(src)


def _rn32_sum(a, b):
    """float32 round-to-nearest-even of the exact sum of float64 ``a`` and ``b`` (TwoSum: the float64 sum s and
    its exact error e; s + e crosses a float32 rounding boundary only when s is that midpoint itself)."""
    f32, f64 = np.float32, np.float64
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    m = s.astype(f32)
    lo = np.where(m.astype(f64) <= s, m, np.nextafter(m, f32(-np.inf)))
    hi = np.where(m.astype(f64) >= s, m, np.nextafter(m, f32(np.inf)))
    tie = ((lo.astype(f64) + hi.astype(f64)) / 2 == s) & (m.astype(f64) != s) & (e != 0)
    return np.where(tie, np.where(e > 0, hi, lo), m)


def test_fast_quantize_quotient_is_the_ieee_quotient():
    """hwcomp_quantize_fast's quotient (Markstein's correction from the correctly rounded reciprocal:
    q1 = v * y, r = fma(-s, q1, v), q = fma(r, y, q1)), emulated exactly in float64, equals numpy's IEEE float32
    v / s bit for bit wherever |v| >= 2^-100 (and rounds to the same integer everywhere), on random values, exact
    .5 ties of the quotient and their neighbours, near-integers, and scales with all-ones significands; scales
    outside [2^-64, 2^64] get a NaN reciprocal (the kernel's division path)."""
    from schedules.cuda_device_functions import quantize_reciprocal

    rng = np.random.default_rng(7)
    f32, f64 = np.float32, np.float64
    checked = 0
    for it in range(16):
        n = 100000
        s = (rng.uniform(1, 2, n) * 2.0 ** rng.integers(-62, 62, n)).astype(f32)
        if it % 3 == 0:
            s = (f32(2 - 2**-23) * 2.0 ** rng.integers(-62, 62, n) * rng.choice([-1, 1], n)).astype(f32)
        kind = it % 4
        if kind == 0:
            v = (rng.standard_normal(n) * 2.0 ** rng.integers(-20, 20, n) * s).astype(f32)
        elif kind == 1:  # quotients at k + 1/2 and one ulp either side
            v = ((rng.integers(-40000, 40000, n) + 0.5) * s.astype(f64)).astype(f32)
            v = np.where(rng.random(n) < .3, np.nextafter(v, f32(np.inf)),
                         np.where(rng.random(n) < .5, np.nextafter(v, f32(-np.inf)), v))
        elif kind == 2:
            v = ((rng.integers(-40000, 40000, n) + rng.uniform(-1e-4, 1e-4, n)) * s.astype(f64)).astype(f32)
        else:
            v = ((rng.uniform(1, 2, n) * 2.0 ** rng.integers(-60, 60, n)).astype(f32) * s).astype(f32)
        y = quantize_reciprocal(s)
        with np.errstate(all="ignore"):
            q1 = v * y
            r = (v.astype(f64) - s.astype(f64) * q1.astype(f64)).astype(f32)  # exact in float64 (Sterbenz)
            q = _rn32_sum(q1.astype(f64), r.astype(f64) * y.astype(f64))
            ref = v / s
        ok = np.isfinite(ref)
        np.testing.assert_array_equal(np.rint(q[ok]), np.rint(ref[ok]))
        normal = ok & (np.abs(v) >= 2.0**-100)
        np.testing.assert_array_equal(q[normal], ref[normal])
        checked += int(normal.sum())
    assert checked > 1_500_000
    odd = np.array([3e-38, 2.0**-64, 2.0**64, 7e29, np.inf, 0.0], f32)
    assert np.isnan(quantize_reciprocal(odd)).all()
    assert quantize_reciprocal(np.float32(0.1)) == np.float32(1) / np.float32(0.1)


def test_int32_requantize_fast_path_equals_the_int64_requantize():
    """hwcomp_requant32's path for shifts above 32 (the high word of a * m, rounded and shifted in 32 bits; CUDA's
    __mulhi is the floor of the product / 2^32) emulated in numpy equals intmath.requantize (int64) for every
    int32 accumulator -- the extremes, values next to each rounding boundary, random ones -- at every shift
    quantize_multiplier gives above 32 and at multipliers it flushes towards zero."""
    from hwcomp.ops.intmath import quantize_multiplier, requantize

    rng = np.random.default_rng(11)
    mult, shift = quantize_multiplier(np.concatenate([10.0 ** rng.uniform(-18, -0.4, 400), 2.0 ** -np.arange(2, 31),
                                                      [1e-19, 3e-18, 2.0 ** -31 * 0.75]]))
    fast = shift > 32
    assert fast.sum() > 300 and shift[fast].min() == 33 and shift.max() == 62
    i32 = np.iinfo(np.int32)
    for m, s in zip(mult[fast].astype(np.int64), shift[fast].astype(np.int64)):
        near = (np.arange(-50, 50, dtype=np.int64) * 2 + 1) << (s - 1)  # products at .5 of a step, +-1
        a = np.concatenate([near // m, near // m + 1, rng.integers(i32.min, i32.max, 200, dtype=np.int64, endpoint=True),
                            [i32.min, i32.min + 1, -1, 0, 1, i32.max]])
        a = np.clip(a, i32.min, i32.max)
        for zp, lo, hi in ((0, -128, 127), (-3, -128, 127), (5, -32768, 32767)):
            y = (((a * m) >> 32) + (1 << (s - 33))) >> (s - 32)  # int32-exact: |a * m| < 2^62
            got = np.minimum(np.maximum(y, lo - zp), hi - zp) + zp
            np.testing.assert_array_equal(got, requantize(a, m, s, zp, lo, hi).astype(np.int64), err_msg=f"m={m} s={s}")


def test_int_layer_norm_fused_quantize_definition_is_bit_exact():
    """The integer layer norm's float32 output and, fused, hwcomp's quantize of it (the next GEMM's input)."""
    from hwcomp.ir.graph import Node
    from hwcomp.ops import intmath
    from hwcomp.ops.quantized import quantize

    rng = np.random.default_rng(5)
    m, c = 8, 256
    x = rng.integers(-30000, 30000, (m, c)).astype(np.int16)
    gamma = rng.integers(-32767, 32767, c).astype(np.int32)
    beta = rng.integers(-1 << 20, 1 << 20, c).astype(np.int32)
    scale = rng.uniform(1e-6, 1e-5, c).astype(np.float32)
    qscale = rng.uniform(0.02, 0.05, c).astype(np.float32)
    y, yq = _t(np.zeros((m, c), np.float32)), _t(np.zeros((m, c), np.int8))
    build_cpu_reference(layer_norm.int_layer_norm_func(m, c, "int16", 3, 14, dequant=True, quant_out=(8, -2)))["main"](
        _t(x), _t(gamma), _t(beta), _t(scale), _t(qscale), _t(np.full(c, np.nan, np.float32)), y, yq)  # qrcp unread
    ref = intmath.int_layer_norm(x, gamma, beta, 3, 14).astype(np.float32) * scale
    np.testing.assert_array_equal(y.numpy(), ref)
    node = Node("quantize", ["v"], ["q"], {"scale": qscale, "zero_point": -2, "bits": 8}, "q")
    refq = quantize(node, ref)
    assert len(np.unique(refq)) > 50
    np.testing.assert_array_equal(yq.numpy(), refq)


def test_int_layer_norm_narrow_bound_holds_at_the_extremes():
    """int_narrow_ok's bound |z| <= 2^frac_bits (z the normalized value before gamma) holds on the rows that push
    it: a lone spike (|x - mean| = std), two-valued rows, constant rows (variance eps only), full-range noise; and
    int_narrow_ok admits exactly the constants whose worst case z * gamma + beta fits int32."""
    from hwcomp.ops import intmath

    rng = np.random.default_rng(3)
    c, fb = 768, 14
    rows = [np.full(c, -32768), np.full(c, 517), rng.integers(-32768, 32768, c), np.tile([-32768, 32767], c // 2)]
    for eps in (0, 1, 5, 10**6):
        for r in rows + [np.where(np.arange(c) == j, 32767, -32768) for j in (0, 100)]:
            x = np.asarray(r, np.int64)[None]
            one = np.ones(c, np.int32)
            z = intmath.int_layer_norm(x, one, np.zeros(c, np.int32), eps, fb)  # gamma 1, beta 0: z itself
            assert np.abs(z).max() <= 1 << fb
    spike = np.where(np.arange(c) == 0, 32767, -32768)[None]
    assert np.abs(intmath.int_layer_norm(spike, np.ones(c, np.int32), np.zeros(c, np.int32), 0, fb)).max() > 0.99 * (1 << fb)
    g = np.full(c, 32767, np.int32)
    edge = 2**31 - 1 - (32767 << fb)
    assert layer_norm.int_narrow_ok(g, np.full(c, edge, np.int32), fb)
    assert not layer_norm.int_narrow_ok(g, np.full(c, edge + 1, np.int32), fb)
    assert not layer_norm.int_narrow_ok(g, np.full(c, -edge - 1, np.int32), fb)
    acc = intmath.int_layer_norm(np.concatenate([spike, -spike]), g, np.full(c, edge, np.int32), 0, fb)
    assert acc.max() <= 2**31 - 1 and acc.min() >= -2**31


@needs_nvcc
@pytest.mark.slow
@pytest.mark.parametrize("in_dtype,c,kw", [("int16", 768, {"dequant": True, "quant_out": (8, 0)}),
                                           ("int16", 768, {"dequant": True, "quant_out": (8, 0), "narrow": True}),
                                           ("int16", 768, {"dequant": True}),
                                           ("int8", 384, {"out_bits": 8, "out_zero_point": -3}),
                                           ("int8", 384, {"out_bits": 8, "out_zero_point": -3, "narrow": True}),
                                           ("int16", 1152, {"out_bits": 16})])
def test_int_layer_norm_warp_builds_machine_code(in_dtype, c, kw):
    """The warp-per-row integer layer norm (8 or 4 elements a lane) compiles for sm_90 and sm_80 (no tensor
    cores); its generated function carries the fused quantize (with the caller's reciprocals) only when asked
    for, and normalizes in int32 only when asked for."""
    from backends.tvm_cuda.verify import cuda_source
    from schedules.errors import ScheduleError

    f = layer_norm.int_layer_norm_warp(64, c, in_dtype, 5, **kw)
    for arch in ("sm_90", "sm_80"):
        ex = build_kernel(f, "iln", arch)
        report = verify_executable(ex, arch)
        assert any(e.kind == "elf" and e.arch == int(arch[3:]) for e in report.entries)
        assert report.mma_instructions == 0
    src = cuda_source(ex)
    assert (src.count("hwcomp_quantize_fast(f[e], qv[p], qr[p]") > 0) == ("quant_out" in kw)
    assert ("const int a = (int)" in src) == kw.get("narrow", False)
    assert ("const long long a = " in src) != kw.get("narrow", False)
    assert ("hwcomp_requant32(a" in src) == (kw.get("narrow", False) and "out_bits" in kw)
    assert layer_norm.int_warp_vec(64, c, in_dtype) == (8 if c % 256 == 0 else 4)
    with pytest.raises(ScheduleError, match="C % 128"):
        layer_norm.int_layer_norm_warp(64, 200, in_dtype, 5)
    with pytest.raises(ScheduleError, match="float32 \\(dequant\\) output"):
        layer_norm.int_layer_norm_warp(64, c, in_dtype, 5, quant_out=(8, 0))


def _qattention_node(h, ss, causal, pb, epi_attrs):
    from hwcomp.ir.graph import Node
    from hwcomp.ops.quantized import exp_constants

    ln2, eb, ec = exp_constants(ss)
    attrs = {"num_heads": h, "score_scale": ss, "exp_ln2": ln2, "exp_b": eb, "exp_c": ec, "prob_bits": pb,
             "causal": int(causal), "softmax": "int", **epi_attrs}
    return Node("qattention", ["q", "k", "v", "mask"], ["y"], attrs, "attn"), (ln2, eb, ec)


@pytest.mark.parametrize("d,causal,dequant,fused", [(32, False, False, False), (64, True, False, True),
                                                    (32, False, True, False)])
def test_qflash_attention_definition_is_bit_exact_with_the_interpreter(d, causal, dequant, fused):
    """The one-kernel integer attention's definition (fp16-carried int8 q/k/v, or their fused [B, S, 3*H*D]
    projection, int32 mask, causal fill, I-BERT softmax, requantized or dequantized PV) against hwcomp's
    interpreter op."""
    from hwcomp.ops.quantized import qattention as interp_qattention
    from schedules import qflash_attention as qf

    b, s, h, ss = 2, 32, 2, 6e-4
    rng = np.random.default_rng(d + causal)
    q, k, v = (rng.integers(-128, 128, (b, s, h * d)).astype(np.int8) for _ in range(3))
    mask = np.zeros((b, 1, s), np.float32)
    mask[1, 0, s // 2:] = -1e4  # padded keys: the interpreter converts to score units, as the lowering does
    mask_int = np.clip(np.rint(mask.astype(np.float64) / ss), -(1 << 30), 1 << 30).astype(np.int32)
    if dequant:
        scale = rng.uniform(1e-4, 1e-3, h * d).astype(np.float32)
        epi, consts, attrs = qattention.Epilogue(dequant=True, exact=False), [scale], {"out_dtype": "float32",
                                                                                       "out_scale": scale}
    else:
        mult = rng.integers(1 << 30, 1 << 31, h * d).astype(np.int32)
        shift = rng.integers(36, 40, h * d).astype(np.int32)
        epi, consts = qattention.Epilogue(out_zero_point=2), [mult, shift]
        attrs = {"multiplier": mult, "shift": shift, "out_zero_point": 2}
    node, (ln2, eb, ec) = _qattention_node(h, ss, causal, 8, attrs)
    f = qf.qattention_func(b, s, s, h, d, exp_ln2=ln2, exp_b=eb, exp_c=ec, epilogue=epi, causal=causal,
                           has_mask=True, mask_batch=b, mask_rows=1, fused=fused)
    out = _t(np.zeros((b, s, h * d), np.float32 if dequant else np.int8))
    qkv = [np.concatenate([q, k, v], -1)] if fused else [q, k, v]
    build_cpu_reference(f)["main"](*[_t(a.astype(np.float16)) for a in qkv], _t(mask_int),
                                   *[_t(c) for c in consts], out)
    ref = interp_qattention(node, q, k, v, mask[:, :, None, :])
    if not dequant:
        assert len(np.unique(ref)) > 20
    np.testing.assert_array_equal(out.numpy(), ref)


def test_qflash_int32_exponentials_equal_i_exp_where_the_bounds_allow():
    """exp_int32's promise, checked by emulation: where it says int32 suffices, every intermediate of i_exp (clamped
    argument, quotient, remainder, r + b, r (r + b), the polynomial) stays in int32 for every argument, the result
    equals intmath.i_exp (int64), and the kernel's clamp -- ``x < rowmax + 30 ln2`` -- picks the same argument
    as int64 ``max(x - rowmax, 30 ln2)`` without overflowing, even at the int32 extremes of scores and row max.
    Where the constants are too wide (small score scales) it says so."""
    from hwcomp.ops.intmath import i_exp
    from hwcomp.ops.quantized import exp_constants
    from schedules import qflash_attention as qf

    i32 = np.iinfo(np.int32)
    fits32 = lambda a: bool(np.all((a >= i32.min) & (a <= i32.max)))  # noqa: E731
    assert qf.exp_int32(*exp_constants(1e-5), 128) == (False, False)
    assert qf.exp_int32(*exp_constants(3e-4), 128) == (True, False)
    assert qf.exp_int32(*exp_constants(8e-4), 256) == (True, True)
    rng = np.random.default_rng(3)
    for sc in (1e-4, 3e-4, 8e-4, 5e-3, 0.1):
        ln2, b, c = exp_constants(sc)
        assert qf.exp_int32(ln2, b, c, 128)[0]
        lb = qf.MAX_SHIFT * ln2
        x = np.arange(lb - 50, 1, dtype=np.int64)  # every argument the clamp passes, and a few below it
        v = np.maximum(x, lb)
        z = v // ln2  # v <= 0, ln2 < 0: a non-negative quotient, so floor = C's truncation
        r = v - z * ln2
        steps = [v, z, r, r + b, r * (r + b), r * (r + b) + c]
        assert all(fits32(t) for t in steps), sc
        e = np.maximum(r * (r + b) + c, 0) >> z
        np.testing.assert_array_equal(e, i_exp(x, ln2, b, c, qf.MAX_SHIFT))
        lo, hi = qf.exp_range(ln2, b, c)
        assert lo <= (r * (r + b)).min() and hi >= (r * (r + b) + c).max()
        xs = np.concatenate([rng.integers(i32.min, i32.max, 2000), [i32.min, i32.max, 0, lb, lb - 1]]).astype(np.int64)
        for mx in (i32.min, i32.max, 0, 12345, -(1 << 30)):
            xv = np.minimum(xs, mx)  # a row's scores never exceed its max
            thr = max(mx + lb, i32.min)
            picked = np.where(xv < thr, lb, xv - mx)
            assert fits32(xv[xv >= thr] - mx)
            np.testing.assert_array_equal(picked, np.maximum(xv - mx, lb))


@needs_nvcc
@pytest.mark.slow
@pytest.mark.parametrize("d,s,causal,mask,epi,fused,sc", [(64, 128, False, True, "rq8", False, 8e-4),
                                                          (32, 128, True, False, "rq16", False, 3e-4),
                                                          (128, 256, False, True, "dq", False, 8e-4),
                                                          (64, 128, True, True, "rq8", True, 1e-5)])
def test_qflash_attention_builds_mma_machine_code_and_refuses_what_it_cannot_hold(d, s, causal, mask, epi, fused, sc):
    """Builds for sm_90 and sm_80 with int32 exponentials (int32 or int64 row sums) or, for a small score scale,
    the int64 ones; refuses shapes it cannot hold."""
    from backends.tvm_cuda.verify import cuda_source
    from hwcomp.ops.quantized import exp_constants
    from schedules import qflash_attention as qf
    from schedules.errors import ScheduleError

    ln2, eb, ec = exp_constants(sc)
    e = qattention.Epilogue(dequant=True, exact=True) if epi == "dq" else qattention.Epilogue(out_bits=int(epi[2:]))
    kw = dict(exp_ln2=ln2, exp_b=eb, exp_c=ec, epilogue=e, causal=causal, has_mask=mask, mask_batch=2, fused=fused)

    def build(arch="sm_90"):
        return build_kernel(qf.qattention_flash(2, s, s, 4, d, **kw), "qfa", arch)

    ex = build()
    report = verify_executable(ex, "sm_90")
    assert any(el.kind == "elf" and el.arch == 90 for el in report.entries)
    assert report.mma_instructions > 0 and report.wgmma_instructions == 0
    src = cuda_source(ex)
    assert f"_{epi}(" in src and ("_c_" in src) == causal and cuda_source(build()) == src
    assert ("_f_" + epi + "(" in src) == fused and ("ld = 3 * H" in src) == fused
    exp32, sum32 = qf.exp_int32(ln2, eb, ec, s)
    assert ("exponentials once, int32" in src) == exp32 == (sc > 1e-4) and ("  int sum0 = 0" in src) == sum32
    assert verify_executable(build("sm_80"), "sm_80").mma_instructions > 0
    cfg = qf.pick_config(2, 4, s)
    assert not qf.applicable(s, 512, d, cfg) and not qf.applicable(s, s, 48, cfg) and not qf.applicable(s, 100, d, cfg)
    with pytest.raises(ScheduleError, match="three-kernel"):
        qf.qattention_flash(2, 512, 512, 4, d, **kw)
    with pytest.raises(ScheduleError, match="Sq = Sk"):
        qf.qattention_flash(2, 64, 128, 4, d, **{**kw, "fused": True})
    with pytest.raises(ScheduleError, match="exp_ln2"):
        qf.qattention_flash(2, s, s, 4, d, **{**kw, "exp_ln2": 3})


def _walk_c(expr: str, env: dict) -> int:
    """Evaluate a generated C integer expression (``/`` and ``%`` on non-negative ints, ``?:``) in Python."""
    import re as _re
    py = _re.sub(r"\(([^()?]+) \? ([^():]+) : ([^()]+)\)", r"((\2) if (\1) else (\3))", expr.replace("/", "//"))
    return int(eval(py, {}, dict(env)))  # noqa: S307 - our own generated expressions


@pytest.mark.parametrize("cfg", ["n128s3w0", "n128s3w0r", "n192s4", "n96s4", "m64n96s4", "m64n192s4", "n256s4"])
def test_wgmma_tile_walks_cover_every_output_once(cfg):
    """Each launch's thread blocks map to distinct tiles covering the output (row-first order too), and each
    epilogue walk -- fp16 pairs, fp32 columns, int8's four-column groups with threads idle where the groups do
    not divide the block -- finishes every element of its tile exactly once."""
    import re as _re

    from schedules import dense_wgmma, qdense_wgmma

    c = dense_wgmma.WgmmaConfig.parse(cfg)
    m, n = 4 * c.bm, 6 * c.bn
    src = dense_wgmma.device_function(c, "none", True)
    m0, n0 = _re.search(r"const int m0 = (.+?), n0 = (.+?);\n", src).groups()
    origins = {(_walk_c(m0, dict(block=b, M=m, N=n)), _walk_c(n0, dict(block=b, M=m, N=n))) for b in range(c.blocks(m, n))}
    assert origins == {(i * c.bm, j * c.bn) for i in range(4) for j in range(6)}
    if c.mfirst:  # consecutive blocks walk down the rows of one column band
        assert _walk_c(n0, dict(block=1, M=m, N=n)) == 0 and _walk_c(m0, dict(block=1, M=m, N=n)) == c.bm
    for text, per in ((src, 2), (dense_wgmma.device_function(c, "none", False, True), 1)):
        total, step = map(int, _re.search(r"for \(int i = tid; i < (\d+); i \+= (\d+)\)", text).groups())
        assert total * per == c.bm * c.bn and step == c.threads
    q = qdense_wgmma.device_function(c, "rq", "i8", 0, "none")
    c4 = _re.search(r"const int c4 = (.+?), col", q).group(1)
    start, stop, inc = _re.search(r"for \(int r = (.+?); r < (.+?); r \+= (\d+)\)", q).groups()
    seen = []
    for tid in range(c.threads):
        env = dict(tid=tid)
        r, col = _walk_c(start, env), _walk_c(c4, env)
        while r < _walk_c(stop, env):
            seen.append((r, col))
            r += int(inc)
    assert sorted(seen) == [(r, col) for r in range(c.bm) for col in range(0, c.bn, 4)]
