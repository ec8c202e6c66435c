"""CUDA ``__device__`` helpers that hwcomp's TensorIR kernels call by name (``T.call_pure_extern``).

TVM 0.27 prints a vector extern call lane by lane (``__hfma2(a.x, b.x, c.x)``), so packed half2 arithmetic
cannot be written in TIR directly. Kernels instead pass the half2 bit patterns as ``uint32`` to these helpers,
and :func:`inject` adds the definitions of the helpers a kernel uses to its generated CUDA source (TVM's
``tvm_callback_cuda_postproc`` hook, registered by ``backends/tvm_cuda/build.py``). Everything here is plain
``cuda_fp16.h`` arithmetic, inlined by nvcc.
"""

from __future__ import annotations

import os
import re

import numpy as np

HELPERS: dict[str, str] = {
    # two 4-bit codes (bits 0..3 and 16..19 of w; other bits ignored) times a half2 of x, added to a half2
    # accumulator: (w & 0x000F000F) | 0x64006400 is the half2 (1024 + code) exactly, and subtracting the
    # half2 (1024 + zero) gives code - zero exactly; only the fused multiply-add rounds.
    "hwcomp_i4x2_fma": """
__device__ __forceinline__ unsigned hwcomp_i4x2_fma(unsigned w, unsigned x2, unsigned z2, unsigned acc) {
  unsigned t = (w & 0x000F000Fu) | 0x64006400u;
  __half2 d = __hsub2(*reinterpret_cast<__half2*>(&t), *reinterpret_cast<__half2*>(&z2));
  __half2 r = __hfma2(*reinterpret_cast<__half2*>(&x2), d, *reinterpret_cast<__half2*>(&acc));
  return *reinterpret_cast<unsigned*>(&r);
}
""",
    # the half2 (1024 + zero, 1024 + zero) for hwcomp_i4x2_fma (zero: an integer 0..15 held in fp16)
    "hwcomp_i4_zero2": """
__device__ __forceinline__ unsigned hwcomp_i4_zero2(half zero) {
  __half2 h = __half2half2(__hadd(zero, __float2half(1024.0f)));
  return *reinterpret_cast<unsigned*>(&h);
}
""",
    # one 16-byte global -> shared copy (cp.async, L2 only), shared address as a 32-bit offset
    "hwcomp_cp_async16": r"""
__device__ __forceinline__ void hwcomp_cp_async16(unsigned dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(dst), "l"(src));
}
""",
    # wgmma's shared-memory matrix descriptor (sm_90a) of a K-major operand in the 128-byte swizzle: start
    # address >> 4, leading offset 16 B (unused when swizzled), stride 1024 B between 8-row groups, layout type 1
    # (SWIZZLE_128B) in bits 62..63 (schedules/dense_wgmma.py, schedules/qdense_wgmma.py)
    "hwcomp_gmma_desc": r"""
__device__ __forceinline__ unsigned long long hwcomp_gmma_desc(unsigned addr) {
  return (unsigned long long)((addr & 0x3FFFFu) >> 4) | (1ull << 16) | (64ull << 32) | (1ull << 62);
}
""",
    # hwcomp/ops/intmath.py's requantize of one int64 accumulator: ((a * m + 2^(s-1)) >> s) + zp, saturated
    "hwcomp_requant": r"""
__device__ __forceinline__ int hwcomp_requant(long long a, int m, int s, int zp, int lo, int hi) {
  long long y = (a * m + (s > 0 ? (1ll << (s - 1)) : 0ll)) >> s;
  y += zp;
  return (int)(y < lo ? (long long)lo : (y > hi ? (long long)hi : y));
}
""",
    # the same requantize of an int32 ``a`` (the epilogues' accumulators, i-GELU's int32 results). With the usual
    # shift s > 32 (quantize_multiplier's m is in [2^30, 2^31), so every multiplier below 1/2), the 64-bit
    # product's low word cannot change the result: 2^(s-1) has a zero low word, and
    # floor((hi * 2^32 + lo + 2^(s-1)) / 2^s) = (hi + 2^(s-33)) >> (s-32) for any lo in [0, 2^32), so one
    # IMAD.HI and 32-bit adds/shifts/clamps replace the int64 multiply, shift and compares. Saturating before
    # adding zp is the same as after (lo - zp, hi - zp are in int32); other shifts take hwcomp_requant.
    "hwcomp_requant32": r"""
__device__ __forceinline__ int hwcomp_requant32(int a, int m, int s, int zp, int lo, int hi) {
  if (s <= 32) return hwcomp_requant((long long)a, m, s, zp, lo, hi);
  const int y = (__mulhi(a, m) + (1 << (s - 33))) >> (s - 32);
  return min(max(y, lo - zp), hi - zp) + zp;
}
""",
    # hwcomp/ops/intmath.py's int_gelu (I-BERT i-GELU) of one integer x at zero point 0, in int32 (callers check
    # |x| (2 one + b^2) < 2^31): x * (sign(x) * (one - (min(|x|, b) - b)^2) + one)
    "hwcomp_igelu": r"""
__device__ __forceinline__ int hwcomp_igelu(int x, int b, int one) {
  const int ax = x < 0 ? -x : x;
  const int t = (ax < b ? ax : b) - b;
  return x * (((x > 0) - (x < 0)) * (one - t * t) + one);
}
""",
    # hwcomp's quantize of one float32 (ONNX QuantizeLinear): clip(rint(v / scale) + zp) with the quotient
    # IEEE-rounded (numpy's). The IEEE division is a long instruction sequence with a branch, so the quotient is
    # taken from the correctly rounded reciprocal y of the scale by Markstein's correction: q1 = v * y (within
    # 1.5 ulp), r = fma(-scale, q1, v) (the exact remainder), q = fma(r, y, q1), which is the IEEE quotient
    # itself (checked in float64 emulation on ties, all-ones significands and random values) wherever r is not
    # subnormal: for every |scale| in [2^-64, 2^64] and |v| >= 2^-100, i.e. wherever rint(q) is not 0 anyway.
    # hwcomp_quantize_rcp(scale) is y, or NaN for scales outside that range (as quantize_reciprocal computes it
    # on the host, so that kernels can take the reciprocals of constant scales from their caller).
    # hwcomp_quantize_fast is that path alone: it sets bit ``bit`` of ``slow`` where q is not finite (an
    # infinite or NaN v, an overflowing quotient, a scale out of range), which the division must decide; a
    # kernel redoes those after its unrolled loop instead of branching for each value in it.
    "hwcomp_quantize_rcp": r"""
__device__ __forceinline__ float hwcomp_quantize_rcp(float scale) {
  return fabsf(scale) > __int_as_float(0x1f800000) && fabsf(scale) < __int_as_float(0x5f800000)  // 2^-64, 2^64
      ? __frcp_rn(scale) : __int_as_float(0x7fffffff);
}
""",
    "hwcomp_quantize_fast": r"""
__device__ __forceinline__ float hwcomp_quantize_fast(float v, float scale, float rcp, int zp, float lo, float hi,
                                                      unsigned& slow, int bit) {
  const float q1 = __fmul_rn(v, rcp);
  const float q = __fmaf_rn(__fmaf_rn(-scale, q1, v), rcp, q1);
  slow |= (unsigned)!(fabsf(q) < __int_as_float(0x7f800000)) << bit;
  return fmaxf(fminf(nearbyintf(q) + (float)zp, hi), lo);
}
""",
    "hwcomp_quantize": r"""
__device__ __forceinline__ float hwcomp_quantize(float v, float scale, int zp, float lo, float hi) {
  unsigned slow = 0;
  const float q = hwcomp_quantize_fast(v, scale, hwcomp_quantize_rcp(scale), zp, lo, hi, slow, 0);
  return slow ? fmaxf(fminf(nearbyintf(__fdiv_rn(v, scale)) + (float)zp, hi), lo) : q;
}
""",    # one mma.sync m16n8k16 (fp16 x fp16 -> fp32 accumulators c[4]; A fragment a[4], B fragment b0, b1)
    "hwcomp_mma16816": r"""
__device__ __forceinline__ void hwcomp_mma16816(float* c, const unsigned* a, unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
               "{%8, %9}, {%0, %1, %2, %3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
""",
    # the sum of a half2's two lanes, in fp32
    "hwcomp_half2_sum": """
__device__ __forceinline__ float hwcomp_half2_sum(unsigned a) {
  float2 f = __half22float2(*reinterpret_cast<__half2*>(&a));
  return f.x + f.y;
}
""",
}


MARKER = "// hwcomp device functions (schedules/cuda_device_functions.py)"


def quantize_reciprocal(scale) -> np.ndarray:
    """hwcomp_quantize_rcp of each float32 scale, on the host: the IEEE-rounded reciprocal (numpy's float32
    division, as __frcp_rn), NaN for scales outside [2^-64, 2^64] in magnitude."""
    s = np.asarray(scale, np.float32)
    ok = (np.abs(s) > np.float32(2.0**-64)) & (np.abs(s) < np.float32(2.0**64))
    with np.errstate(divide="ignore", over="ignore"):
        return np.where(ok, np.float32(1) / np.where(ok, s, np.float32(1)), np.float32(np.nan)).astype(np.float32)


def redo_flagged(count: int, target: str, value: str, scale: str, zp, lo: str, hi: str, indent: str = "    ",
                 cast: str = "") -> str:
    """C statements after a kernel's unrolled loop of ``hwcomp_quantize_fast(..., slow, e)``: for each of the first
    ``count`` bits set in ``slow`` (a non-finite fast quotient), ``target = cast hwcomp_quantize(value, scale, zp,
    lo, hi)``, i.e. the IEEE division decides; ``target``, ``value`` and ``scale`` are C expressions of ``e``."""
    return (f"{indent}if (slow) {{  // non-finite quotients: the IEEE division decides\n#pragma unroll\n"
            f"{indent}  for (int e = 0; e < {count}; ++e)\n"
            f"{indent}    if (slow >> e & 1u) {target} = {cast}hwcomp_quantize({value}, {scale}, {zp}, {lo}, {hi});\n"
            f"{indent}}}\n")


def inject(code: str) -> str:
    """``code`` with the definitions of the helpers it calls inserted before its first kernel (after TVM's
    preamble, which includes cuda_fp16.h). Source that calls none, or already has them, comes back unchanged
    (idempotent: the hook can be registered twice in one process, e.g. when hwcomp's backends are imported
    both as ``hwcomp.backends`` and, from a source checkout, as ``backends``)."""
    if MARKER in code:
        return code
    from . import dense_wgmma, flash_attention, layer_norm, qdense_wgmma, qflash_attention  # generated per variant

    generated = "".join(m.sources_for(code) for m in (dense_wgmma, qdense_wgmma, flash_attention, qflash_attention,
                                                       layer_norm))
    generated += layer_norm.int_sources_for(code)
    called = code + generated
    used = [name for name in HELPERS if name + "(" in called]
    # and the helpers those call (hwcomp_requant32's other shifts: hwcomp_requant; HELPERS is in definition order)
    used = [name for name in HELPERS if name + "(" in called + "".join(HELPERS[u] for u in used)]
    if not used and not generated:
        return code
    code = min_blocks_bounds(code, lambda body: layer_norm.int_min_blocks(body) or qflash_attention.min_blocks(body))
    at = code.find('extern "C" __global__')
    at = at if at >= 0 else len(code)
    block = MARKER + "".join(HELPERS[n] for n in used) + generated
    return code[:at] + block + "\n" + code[at:]


_KERNEL = re.compile(r'extern "C" __global__ void __launch_bounds__\((\d+)\) (\w+)\(')


def min_blocks_bounds(code: str, min_blocks) -> str:
    """``code`` with ``__launch_bounds__(threads, blocks)`` on each kernel whose body ``min_blocks(body)`` asks
    ``blocks`` (> 0) of: the register cap that lets that many thread blocks share an SM. TVM writes only the
    thread count; kernels whose device functions hold more registers than their occupancy needs (the integer
    layer norm, the integer attention) would otherwise run in more waves than their shared memory requires.
    ``HWCOMP_MIN_BLOCKS=0`` in the environment leaves TVM's bounds as they are (for A/B measurements)."""
    if os.environ.get("HWCOMP_MIN_BLOCKS", "1") == "0":
        return code
    found = list(_KERNEL.finditer(code))
    out, pos = [], 0
    for i, m in enumerate(found):
        end = found[i + 1].start() if i + 1 < len(found) else len(code)
        blocks = min_blocks(code[m.end():end])
        if blocks:
            out += [code[pos:m.start()], f'extern "C" __global__ void __launch_bounds__({m.group(1)}, {blocks}) {m.group(2)}(']
            pos = m.end()
    return "".join(out) + code[pos:]


def needs_sm90a(code: str) -> bool:
    """Whether CUDA source uses instructions only the arch-specific sm_90a target has (wgmma)."""
    return "wgmma." in code


def extern_launch(params, fname: str, extra, blocks: int, threads: int, smem_bytes: int = 0):
    """PrimFunc ``(params...)`` whose ``blocks`` x ``threads`` launch calls device function ``fname`` with each
    parameter's pointer, then (when ``smem_bytes``) a ``shared.dyn`` buffer of that many bytes, ``blockIdx.x`` and
    ``extra``. ``params`` lists ``(name, shape, dtype)``. The kernels whose body is a generated device function
    (schedules/dense_wgmma.py, the warp layer norm of schedules/layer_norm.py) are such launches."""
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.tirx.script import builder as T

    with IRBuilder() as ib:
        with T.prim_func(is_private=True):
            T.func_attr({"tirx.noalias": True})
            args = [T.arg(name, T.buffer(shape, dtype)).data for name, shape, dtype in params]
            with T.thread_binding(blocks, thread="blockIdx.x") as bx:
                IRBuilder.name("bx", bx)
                with T.thread_binding(threads, thread="threadIdx.x") as tx:
                    IRBuilder.name("tx", tx)
                    if smem_bytes:
                        ring = T.alloc_buffer((smem_bytes,), "uint8", scope="shared.dyn")
                        IRBuilder.name("ring", ring)
                        args.append(ring.data)
                    T.evaluate(tirx.call_extern("void", fname, *args, bx, *extra))
    return ib.get()
