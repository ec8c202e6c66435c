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
from schedules import attention, dense, gelu, gemv_int4, layer_norm, qdense  # noqa: E402

pytestmark = [pytest.mark.tvm]
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")


def _t(a):
    return tvm.runtime.tensor(a, tvm.cpu())


@needs_nvcc
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
@pytest.mark.parametrize("name,make,mma", [
    ("dense_f16", lambda a: dense.dense_f16(128, 256, 256, "gelu", arch=a), True),
    ("qdense_requant", lambda a: qdense.qdense(128, 256, 256, "requant", arch=a), True),
    ("qdense_dequant", lambda a: qdense.qdense(128, 256, 256, "dequant", arch=a), True),
    ("layer_norm", lambda a: layer_norm.layer_norm(64, 768, residual=True), False),
    ("gelu", lambda a: gelu.gelu((64, 3072)), False),
    ("gemv_int4", lambda a: gemv_int4.gemv_int4(1, 1024, 768, 128, arch=a), False),
    ("attn_scores", lambda a: attention.attention(1, 128, 128, 2, 64).scores, True),
    ("attn_pv", lambda a: attention.attention(1, 128, 128, 2, 64).pv, True),
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


def test_gemv_int4_definition_matches_unpacked_weight():
    rng = np.random.default_rng(2)
    n, k, g = 64, 256, 128
    packed, scale, zero = gemv_int4.pack_int4(rng.standard_normal((k, n)).astype(np.float32), g)
    x = rng.standard_normal((1, k)).astype(np.float16)
    y = _t(np.zeros((1, n), np.float16))
    build_cpu_reference(gemv_int4.gemv_int4_func(1, n, k, g))["main"](_t(x), _t(packed), _t(scale), _t(zero), y)
    ref = x.astype(np.float64) @ gemv_int4.unpack_int4(packed, scale, zero, g).T
    np.testing.assert_allclose(y.numpy(), ref, rtol=2e-2, atol=2e-2)


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
