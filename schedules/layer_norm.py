"""``layer_norm`` and ``add_layer_norm`` over the last axis, fp16 in/out, fp32 statistics.

Layouts: x (and residual) ``[M, C]`` fp16 (flatten leading axes), gamma/beta ``[C]`` fp16.
``layer_norm_f16`` -> ``y``; ``add_layer_norm_f16`` -> ``(y, s)`` with ``s = x + residual`` rounded to fp16
(hwcomp's second output, written by the same kernel before the statistics, which read it back) and
``y = layer_norm(s)``. Two-pass statistics (mean, then mean of squared
deviations) as ONNX's reference computes them.

Kernels: where C % 256 == 0 (BERT/GPT-2: 768), a warp per row, a generated CUDA device function (see the end of
this module); otherwise one thread block per row, ``threads`` threads, each statistic a cross-thread reduction
(warp shuffles + shared memory, TVM's allreduce lowering), rows re-read from L1/L2, not DRAM. The integer layer
norm (``int_layer_norm``) always uses the block-per-row schedule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tvm import s_tir, te, tirx

from ._rows import block_names, place_row_values
from .cuda_device_functions import extern_launch, redo_flagged
from .errors import ScheduleError


def layer_norm_func(m: int, c: int, eps: float = 1e-5, residual: bool = False) -> tirx.PrimFunc:
    x = te.placeholder((m, c), "float16", name="x")
    res = te.placeholder((m, c), "float16", name="residual")
    gamma = te.placeholder((c,), "float16", name="gamma")
    beta = te.placeholder((c,), "float16", name="beta")

    # the residual sum rounded to fp16: what the statistics read (normalized as rounded), and hwcomp's second
    # output (a copy of it, so that the schedule can stage the row in shared memory)
    s_row = te.compute((m, c), lambda i, j: x[i, j] + res[i, j], name="residual_row") if residual else None

    def inp(i, j):
        return (s_row[i, j] if residual else x[i, j]).astype("float32")

    k1 = te.reduce_axis((0, c), name="k1")
    total = te.compute((m,), lambda i: te.sum(inp(i, k1), axis=k1), name="row_sum")
    k2 = te.reduce_axis((0, c), name="k2")
    sq = te.compute((m,), lambda i: te.sum((inp(i, k2) - total[i] / c) * (inp(i, k2) - total[i] / c), axis=k2),
                    name="row_sq")
    y = te.compute((m, c), lambda i, j: ((inp(i, j) - total[i] / c) * tirx.rsqrt(sq[i] / c + eps)
                                         * gamma[j].astype("float32") + beta[j].astype("float32")).astype("float16"),
                   name="normalize")
    if residual:
        s_out = te.compute((m, c), lambda i, j: s_row[i, j], name="residual_sum")
        return te.create_prim_func([x, res, gamma, beta, y, s_out]).with_attr("global_symbol", "add_layer_norm_f16")
    return te.create_prim_func([x, gamma, beta, y]).with_attr("global_symbol", "layer_norm_f16")


@dataclass(frozen=True)
class LayerNormRule:
    threads: int = 256

    def apply(self, func: tirx.PrimFunc) -> tirx.PrimFunc:
        sch = s_tir.Schedule(func)
        c = int(func.params[0].shape[1])
        if c % self.threads and c < self.threads:
            raise ScheduleError(f"layer_norm width C={c} is below threads={self.threads}; use fewer threads")
        if "residual_row" in block_names(sch):
            return self._apply_residual(sch)
        out = sch.get_sblock("normalize")
        row, col = sch.get_loops(out)
        sch.bind(row, "blockIdx.x")
        _, tx = sch.split(col, [None, self.threads])
        sch.bind(tx, "threadIdx.x")
        # block-wide reductions (warp shuffles + shared memory): their results in shared memory. (Staging the row
        # of x in shared memory, as add_layer_norm does, made the integer layer norm 5% slower on an H100: it is
        # bound by its 64-bit arithmetic, and L1 already serves the re-reads.)
        place_row_values(sch, row, self.threads, "shared")
        return sch.mod["main"].with_attr("tirx.is_scheduled", True)

    def _apply_residual(self, sch: s_tir.Schedule) -> tirx.PrimFunc:
        """add_layer_norm: x + residual computed once per row into shared memory; the statistics, the
        normalization and the copy to the second output all read the row there (x and residual are read once,
        not three times, and the second output needs no kernel of its own)."""
        srow = sch.get_sblock("residual_row")
        row, col = sch.get_loops(srow)
        sch.bind(row, "blockIdx.x")
        _, tx = sch.split(col, [None, self.threads])
        sch.bind(tx, "threadIdx.x")
        sch.set_scope(srow, 0, "shared")
        for name in ("row_sum", "row_sq", "normalize", "residual_sum"):
            blk = sch.get_sblock(name)
            sch.reverse_compute_at(blk, row)
            _, tx = sch.split(sch.get_loops(blk)[-1], [None, self.threads])
            sch.bind(tx, "threadIdx.x")
            if name.startswith("row_"):  # block-wide reductions (warp shuffles + shared memory)
                sch.set_scope(blk, 0, "shared")
        return sch.mod["main"].with_attr("tirx.is_scheduled", True)


def layer_norm(m: int, c: int, eps: float = 1e-5, residual: bool = False, threads: int = 256) -> tirx.PrimFunc:
    """Scheduled PrimFunc: ``layer_norm_f16(x, gamma, beta, y)`` or
    ``add_layer_norm_f16(x, residual, gamma, beta, y, s)``: a warp per row where :func:`warp_kernel_supports`
    the shape, else a thread block of ``threads`` per row."""
    if warp_kernel_supports(m, c):
        return layer_norm_warp(m, c, eps, residual)
    return LayerNormRule(threads).apply(layer_norm_func(m, c, eps, residual))


# ---- int_layer_norm (I-BERT, bit-exact with hwcomp/ops/intmath.py::int_layer_norm) -----------------------------

def _isqrt64(v: tirx.PrimExpr) -> tirx.PrimExpr:
    """floor(sqrt(v)) of int64 v in [0, 2^62): s = floor(sqrt(float64(v))) is within one of it (v's rounding to
    53 bits and sqrt's half-ulp error move sqrt(v) by far less than one below 2^31), and one correction step each
    way makes it exact. (A fixed chain of Newton steps is exact too, but its expression doubles with every step
    once a GPU schedule inlines it.) Also the generic Relax lowering's isqrt."""
    i64 = "int64"
    s = tirx.floor(tirx.sqrt(v.astype("float64"))).astype(i64)
    s = s - (s * s > v).astype(i64)
    return s + ((s + 1) * (s + 1) <= v).astype(i64)


def int_layer_norm_func(m: int, c: int, in_dtype: str, eps_int: int, frac_bits: int = 14,
                        dequant: bool = False, out_zero_point: int = 0, out_bits: int = 8,
                        exact: bool = False, quant_out: tuple[int, int] | None = None) -> tirx.PrimFunc:
    """``(x, gamma, beta, multiplier, shift, out)`` (requantized ``int<out_bits>``) or, ``dequant``,
    ``(x, gamma, beta, scale, out)`` (float32 ``acc * scale[c]``); gamma/beta/multiplier/shift int32 ``[C]``,
    scale float32 ``[C]``. mean = floor(sum(x) / C), var = sum((x - mean)^2) + eps, std = max(isqrt(var), 1),
    z = ((x - mean) * floor(2^31 / std)) >> (31 - frac_bits), acc = z * gamma + beta. ``dequant`` with
    ``quant_out=(bits, zero_point)``: also hwcomp's ``quantize`` of the float32 output by ``qscale`` [C] (the
    quantize before the next int8 GEMM, fused): ``(x, gamma, beta, scale, qscale, qrcp, out, out_q)``, where
    ``qrcp`` [C] holds the reciprocals of ``qscale`` (cuda_device_functions.quantize_reciprocal) for the CUDA
    kernel's fast quantize, and this definition does not read it."""
    from .qdense import exact_mul, quantize_expr, requantize_expr

    i64 = "int64"
    x = te.placeholder((m, c), in_dtype, name="x")
    gamma = te.placeholder((c,), "int32", name="gamma")
    beta = te.placeholder((c,), "int32", name="beta")
    k1 = te.reduce_axis((0, c), name="k1")
    total = te.compute((m,), lambda i: te.sum(x[i, k1].astype(i64), axis=k1), name="row_sum")

    # Per-row values once per row (the schedule keeps them in registers), not per element: the 64-bit
    # divisions and the float64 square root dominated the kernel (17 us for 4096x768 on an H100).
    mean = te.compute((m,), lambda i: tirx.floordiv(total[i], tirx.const(c, i64)), name="row_mean")

    def centered(i, j):
        return x[i, j].astype(i64) - mean[i]

    k2 = te.reduce_axis((0, c), name="k2")
    sq = te.compute((m,), lambda i: te.sum(centered(i, k2) * centered(i, k2), axis=k2), name="row_sq")

    def row_factor(i):
        std = tirx.max(_isqrt64(sq[i] + tirx.const(eps_int, i64)), tirx.const(1, i64))
        return tirx.floordiv(tirx.const(1 << 31, i64), std)

    factor = te.compute((m,), row_factor, name="row_factor")

    def acc(i, j):
        z = tirx.shift_right(centered(i, j) * factor[i], tirx.const(31 - frac_bits, i64))
        return z * gamma[j].astype(i64) + beta[j].astype(i64)

    if dequant:
        scale = te.placeholder((c,), "float32", name="scale")
        out = te.compute((m, c), lambda i, j: exact_mul(acc(i, j).astype("float32"), scale[j], exact),
                         name="normalize")
        args = [x, gamma, beta, scale, out]
        if quant_out is not None:
            qscale = te.placeholder((c,), "float32", name="qscale")
            qrcp = te.placeholder((c,), "float32", name="qrcp")
            out_q = te.compute((m, c), lambda i, j: quantize_expr(out[i, j], qscale[j], quant_out[1], quant_out[0],
                                                                  exact), name="quantize")
            args = [x, gamma, beta, scale, qscale, qrcp, out, out_q]
    else:
        mult = te.placeholder((c,), "int32", name="multiplier")
        shift = te.placeholder((c,), "int32", name="shift")
        lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1

        odt = f"int{out_bits}"
        out = te.compute((m, c), lambda i, j: requantize_expr(acc(i, j), mult[j], shift[j], out_zero_point,
                                                              lo, hi, odt), name="normalize")
        args = [x, gamma, beta, mult, shift, out]
    return te.create_prim_func(args).with_attr("global_symbol", "int_layer_norm")


def int_layer_norm(m: int, c: int, in_dtype: str, eps_int: int, frac_bits: int = 14, dequant: bool = False,
                   out_zero_point: int = 0, out_bits: int = 8, exact: bool = False, threads: int = 256
                   ) -> tirx.PrimFunc:
    """Scheduled ``int_layer_norm`` (one thread block per row, like the float layer norm)."""
    return LayerNormRule(threads).apply(int_layer_norm_func(m, c, in_dtype, eps_int, frac_bits, dequant,
                                                            out_zero_point, out_bits, exact))


# ---- a warp per row (CUDA device function) ---------------------------------------------------------------------
# The block-per-row schedule above spends its time in two block-wide reductions (shared memory and barriers) for
# rows of only 768 elements: 11.7 us for add_layer_norm at 4096x768 on an H200, twice the time its 24 MB of
# traffic take. With a warp per row, each lane holds C/32 elements in registers (16-byte loads and stores),
# and both statistics are warp-shuffle reductions. Same arithmetic as the definition: the residual sum rounded to
# fp16, two-pass fp32 statistics, one rounding of the output.

WARP_ROWS = 4  # rows (warps) per thread block
WARP_PREFIX = "hwcomp_layer_norm_f16_"
_WARP_NAME = re.compile(WARP_PREFIX + r"c(\d+)(_r)?(?=\()")


def warp_kernel_supports(m: int, c: int) -> bool:
    return c % 256 == 0 and c <= 4096 and m % WARP_ROWS == 0


def warp_function_name(c: int, residual: bool) -> str:
    return f"{WARP_PREFIX}c{c}{'_r' if residual else ''}"


def _warp_function(c: int, residual: bool) -> str:
    name = warp_function_name(c, residual)
    v = c // 256  # 8-element (16-byte) chunks per lane
    res_param = "const half* __restrict__ res, " if residual else ""
    s_param = ", half* __restrict__ s" if residual else ""
    add = ("""    { const uint4 b = *reinterpret_cast<const uint4*>(res + base + col);
      const __half2* bh = reinterpret_cast<const __half2*>(&b);
      __half2* ah = reinterpret_cast<__half2*>(&a);
#pragma unroll
      for (int q = 0; q < 4; ++q) ah[q] = __hadd2(ah[q], bh[q]);
      *reinterpret_cast<uint4*>(s + base + col) = a; }
""" if residual else "")
    return f"""
__device__ __forceinline__ void {name}(const half* __restrict__ x, {res_param}const half* __restrict__ gamma,
    const half* __restrict__ beta, half* __restrict__ y{s_param}, int block, float eps) {{
  const int lane = threadIdx.x & 31;
  const size_t base = (size_t)(block * {WARP_ROWS} + (threadIdx.x >> 5)) * {c};
  float v[{8 * v}];
#pragma unroll
  for (int i = 0; i < {v}; ++i) {{
    const int col = (i * 32 + lane) * 8;
    uint4 a = *reinterpret_cast<const uint4*>(x + base + col);
{add}    const __half2* h = reinterpret_cast<const __half2*>(&a);
#pragma unroll
    for (int q = 0; q < 4; ++q) {{
      const float2 f = __half22float2(h[q]);
      v[i * 8 + 2 * q] = f.x; v[i * 8 + 2 * q + 1] = f.y;
    }}
  }}
  float sum = 0.0f;
#pragma unroll
  for (int j = 0; j < {8 * v}; ++j) sum += v[j];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const float mean = sum / {c}.0f;
  float sq = 0.0f;
#pragma unroll
  for (int j = 0; j < {8 * v}; ++j) {{ const float d = v[j] - mean; sq += d * d; }}
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
  const float rstd = rsqrtf(sq / {c}.0f + eps);
#pragma unroll
  for (int i = 0; i < {v}; ++i) {{
    const int col = (i * 32 + lane) * 8;
    const uint4 g = *reinterpret_cast<const uint4*>(gamma + col);
    const uint4 b = *reinterpret_cast<const uint4*>(beta + col);
    const __half2* gh = reinterpret_cast<const __half2*>(&g);
    const __half2* bh = reinterpret_cast<const __half2*>(&b);
    uint4 o;
    __half2* oh = reinterpret_cast<__half2*>(&o);
#pragma unroll
    for (int q = 0; q < 4; ++q) {{
      const float2 gf = __half22float2(gh[q]), bf = __half22float2(bh[q]);
      oh[q] = __floats2half2_rn((v[i * 8 + 2 * q] - mean) * rstd * gf.x + bf.x,
                                (v[i * 8 + 2 * q + 1] - mean) * rstd * gf.y + bf.y);
    }}
    *reinterpret_cast<uint4*>(y + base + col) = o;
  }}
}}
"""


def sources_for(code: str) -> str:
    """Definitions of the warp-per-row layer norm functions ``code`` calls (for the CUDA postproc hook)."""
    return "".join(_warp_function(int(c), bool(r)) for c, r in sorted(set(_WARP_NAME.findall(code))))


def layer_norm_warp(m: int, c: int, eps: float = 1e-5, residual: bool = False) -> tirx.PrimFunc:
    """Launch PrimFunc of the warp-per-row layer norm; the parameters of :func:`layer_norm_func`."""
    if not warp_kernel_supports(m, c):
        raise ScheduleError(f"warp-per-row layer norm needs C % 256 == 0 (C <= 4096) and M % {WARP_ROWS} == 0, "
                            f"got {m}x{c}")
    rows, vec = (m, c), (c,)
    params = ([("x", rows, "float16")] + ([("res", rows, "float16")] if residual else [])
              + [("gamma", vec, "float16"), ("beta", vec, "float16"), ("y", rows, "float16")]
              + ([("s", rows, "float16")] if residual else []))
    kernel = extern_launch(params, warp_function_name(c, residual), [tirx.const(eps, "float32")],
                           m // WARP_ROWS, 32 * WARP_ROWS)
    return kernel.with_attr("tirx.is_scheduled", True)



# ---- int_layer_norm, a warp per row (CUDA device function) ---------------------------------------------------
# The block-per-row schedule of int_layer_norm_func took 14.6 us for 4096x768 int16 -> float32 on an H200 (three
# block-wide reductions of 64-bit values), three times its traffic. Here a warp holds a row in registers
# (``vec``-element loads and stores), the sum is an int32 and the squared deviations an int64 warp-shuffle
# reduction, and the arithmetic is the definition's: floor mean, isqrt through float64 with one correction each
# way, 64-bit normalize (32-bit with ``_n32``, where int_narrow_ok bounds it), the float32 output through
# __fmul_rn, and optionally (``_q<bits>``) the quantize that follows it as a second output (hwcomp_quantize_fast
# with the caller's reciprocals; the IEEE division only for non-finite quotients, after the unrolled loop).
# Measured on an H200 at 4096x768 (kernels_int_ln_s11_h200.json): about 9-10 us, issue-bound (one wave, one row
# a warp: loads and arithmetic do not overlap).

INT_PREFIX = "hwcomp_int_layer_norm_"
_INT_NAME = re.compile(INT_PREFIX + r"(i8|i16)_c(\d+)_f(\d+)_(dq|rq8|rq16)(?:_q(8|16))?(_n32)?(?=\()")
_INT_C = {"i8": ("signed char", 1), "i16": ("short", 2)}


def int_warp_vec(m: int, c: int, in_dtype: str) -> int | None:
    """Elements a lane loads at once (8, else 4) where the warp-per-row integer layer norm covers the shape."""
    if in_dtype not in ("int8", "int16") or m % WARP_ROWS or c > 4096:
        return None
    return 8 if c % 256 == 0 else 4 if c % 128 == 0 else None


def int_function_name(c: int, in_dtype: str, frac_bits: int, dequant: bool, out_bits: int = 8,
                      quant_bits: int | None = None, narrow: bool = False) -> str:
    epi = "dq" if dequant else f"rq{out_bits}"
    return (f"{INT_PREFIX}{in_dtype.replace('int', 'i')}_c{c}_f{frac_bits}_{epi}" + (f"_q{quant_bits}" if quant_bits else "")
            + ("_n32" if narrow else ""))


def int_narrow_ok(gamma_int, beta_int, frac_bits: int) -> bool:
    """Whether every ``z * gamma + beta`` of :func:`int_layer_norm_func` fits int32 for these constants: |x - mean|
    is an integer at most isqrt(var) = std, so |(x - mean) * floor(2^31 / std)| <= 2^31 and |z| <= 2^frac_bits."""
    g = int(np.abs(np.asarray(gamma_int, np.int64)).max(initial=0))
    b = int(np.abs(np.asarray(beta_int, np.int64)).max(initial=0))
    return (g << frac_bits) + b < 2 ** 31


def _unpack(ctype: str, size: int, vec: int, src: str, dst: str) -> str:
    """Statements filling ints ``dst[0..vec)`` from the words of ``src`` (``vec`` packed ``ctype`` values)."""
    per = 4 // size
    return "".join(f"      {dst}[{e}] = (int)({ctype})({src}[{e // per}] >> {8 * size * (e % per)});\n"
                   for e in range(vec))


def _pack(size: int, vec: int, vals: str, mask: str) -> list[str]:
    """C expressions of the ``vec * size / 4`` words packing ``vals[0..vec)`` (``size``-byte integers)."""
    per = 4 // size
    return [" | ".join(f"((unsigned)((int){vals}[{w * per + k}]) & {mask}) << {8 * size * k}" for k in range(per))
            for w in range(vec * size // 4)]


def _words_t(n: int) -> str:
    return {1: "unsigned", 2: "uint2", 4: "uint4"}[n]


def _int_warp_function(in_t: str, c: int, frac_bits: int, epi: str, quant_bits: int | None, narrow: bool) -> str:
    ctype, size = _INT_C[in_t]
    vec = 8 if c % 256 == 0 else 4
    chunks = c // (32 * vec)
    name = int_function_name(c, "int" + in_t[1:], frac_bits, epi == "dq", 8 if epi == "dq" else int(epi[2:]),
                             quant_bits, narrow)
    in_words = vec * size // 4
    load_t = _words_t(in_words)
    params = "const float* __restrict__ scale, " if epi == "dq" else "const int* __restrict__ mult, const int* __restrict__ shift, "
    out_t = "float" if epi == "dq" else {"rq8": "signed char", "rq16": "short"}[epi]
    q_in, q_out = "", ""
    if quant_bits:
        q_in = "const float* __restrict__ qscale, const float* __restrict__ qrcp, "
        q_out = f", {'signed char' if quant_bits == 8 else 'short'}* __restrict__ yq"
    words = lambda n: [f"w.x", "w.y", "w.z", "w.w"][:n] if n > 1 else ["w"]  # noqa: E731
    if epi == "dq":
        store = "".join(f"      *reinterpret_cast<float4*>(y + base + col + {4 * i}) = make_float4("
                        + ", ".join(f"f[{4 * i + k}]" for k in range(4)) + ");\n" for i in range(vec // 4))
    else:
        bits = int(epi[2:])
        ob = bits // 8
        packed = _pack(ob, vec, "o", "0xFFu" if ob == 1 else "0xFFFFu")
        store = (f"      {_words_t(len(packed))} w;\n" + "".join(f"      {t} = {e};\n" for t, e in zip(words(len(packed)), packed))
                 + f"      *reinterpret_cast<{_words_t(len(packed))}*>(y + base + col) = w;\n")
    def vec4(src: str, dst: str, t: str) -> str:
        return (f"        {{ const {t}4 t4 = *reinterpret_cast<const {t}4*>({src} + col + 4 * u);\n"
                f"          {dst}[0] = t4.x; {dst}[1] = t4.y; {dst}[2] = t4.z; {dst}[3] = t4.w; }}\n")

    if epi == "dq":
        param_loads = vec4("scale", "sv", "float")
        elem = "        f[e] = __fmul_rn((float)a, sv[p]);\n"
    else:
        bits = int(epi[2:])
        param_loads = vec4("mult", "gq", "int") + vec4("shift", "sq_", "int")
        elem = (f"        o[e] = hwcomp_requant{'32' if narrow else ''}(a, gq[p], sq_[p], out_zp, {-(1 << (bits - 1))}, "
                f"{(1 << (bits - 1)) - 1});\n")
    if quant_bits:
        param_loads += vec4("qscale", "qv", "float") + vec4("qrcp", "qr", "float")
    q_store = ""
    if quant_bits:
        qb = quant_bits // 8
        lim = 1 << (quant_bits - 1)
        elem += f"        q[e] = hwcomp_quantize_fast(f[e], qv[p], qr[p], q_zp, {-lim}.0f, {lim - 1}.0f, slow, e);\n"
        packed = _pack(qb, vec, "q", "0xFFu" if qb == 1 else "0xFFFFu")
        q_store = (redo_flagged(vec, "q[e]", "f[e]", "qscale[col + e]", "q_zp", f"{-lim}.0f", f"{lim - 1}.0f", "      ")
                   + f"      {{ {_words_t(len(packed))} w;\n" + "".join(f"      {t} = {e};\n" for t, e in zip(words(len(packed)), packed))
                   + f"      *reinterpret_cast<{_words_t(len(packed))}*>(yq + base + col) = w; }}\n")
    decl = ("      float f[" + str(vec) + "];\n" if epi == "dq" else f"      int o[{vec}];\n") + \
           (f"      float q[{vec}];\n      unsigned slow = 0;\n" if quant_bits else "")
    in_words_list = ["x.x", "x.y", "x.z", "x.w"][:in_words] if in_words > 1 else ["x"]
    # narrow (int_narrow_ok): |z| <= 2^frac_bits and z * gamma + beta fit int32
    a_t, z_cast = ("int", "(int)") if narrow else ("long long", "")
    acc = (f"        const {a_t} a = {z_cast}(((long long)(v[i * {vec} + e] - mean) * factor) >> {31 - frac_bits})"
           f" * gv[p] + bv[p];\n")
    return f"""
__device__ __forceinline__ void {name}(const {ctype}* __restrict__ xin, const int* __restrict__ gamma,
    const int* __restrict__ beta, {params}{q_in}{out_t}* __restrict__ y{q_out}, int block, long long eps, int out_zp,
    int q_zp) {{
  const int lane = threadIdx.x & 31;
  const size_t base = (size_t)(block * {WARP_ROWS} + (threadIdx.x >> 5)) * {c};
  int v[{chunks * vec}];
#pragma unroll
  for (int i = 0; i < {chunks}; ++i) {{
    const int col = (i * 32 + lane) * {vec};
    const {load_t} x = *reinterpret_cast<const {load_t}*>(xin + base + col);
    const unsigned xw[{in_words}] = {{{", ".join(in_words_list)}}};
    int* d = v + i * {vec};
{_unpack(ctype, size, vec, "xw", "d")}  }}
  int sum = 0;  // |x| < 2^15 and C <= 4096: no overflow
#pragma unroll
  for (int j = 0; j < {chunks * vec}; ++j) sum += v[j];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const int mean = sum >= 0 ? sum / {c} : -((-sum + {c - 1}) / {c});  // floor division
  long long sq = 0;  // |x - mean| < 2^16: each square fits 32 unsigned bits
#pragma unroll
  for (int j = 0; j < {chunks * vec}; ++j) {{ const unsigned d = (unsigned)(v[j] - mean); sq += d * d; }}
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
  const long long var = sq + eps;
  long long sd = (long long)floor(sqrt((double)var));  // isqrt: within one, then exact
  sd -= (sd * sd > var);
  sd += ((sd + 1) * (sd + 1) <= var);
  const unsigned factor = 2147483648u / (unsigned)(sd > 1 ? sd : 1ll);  // sd < 2^23: 32-bit division
#pragma unroll
  for (int i = 0; i < {chunks}; ++i) {{
    const int col = (i * 32 + lane) * {vec};
    {{
{decl}#pragma unroll
      for (int u = 0; u < {vec // 4}; ++u) {{  // four columns at a time: their per-channel constants, 16 bytes a load
        int gv[4], bv[4];
        float sv[4]{", qv[4], qr[4]" if quant_bits else ""};{"" if epi == "dq" else " int gq[4], sq_[4];"}
        const int4 g4 = *reinterpret_cast<const int4*>(gamma + col + 4 * u);
        const int4 b4 = *reinterpret_cast<const int4*>(beta + col + 4 * u);
        gv[0] = g4.x; gv[1] = g4.y; gv[2] = g4.z; gv[3] = g4.w;
        bv[0] = b4.x; bv[1] = b4.y; bv[2] = b4.z; bv[3] = b4.w;
{param_loads}#pragma unroll
        for (int p = 0; p < 4; ++p) {{
          const int e = 4 * u + p;
{acc}{elem}        }}
      }}
{store}{q_store}    }}
  }}
}}
"""


def int_min_blocks(kernel_body: str) -> int | None:
    """Thread blocks an SM that the warp-per-row integer layer norm's launch asks registers for (see
    cuda_device_functions.min_blocks_bounds), or None when ``kernel_body`` does not call it: 8 blocks of
    4 rows (64 registers a thread), so that BERT-base batch 32's 1024 blocks run in one wave, not 6 an SM in two."""
    return 65536 // (32 * WARP_ROWS * 64) if INT_PREFIX in kernel_body else None


def int_sources_for(code: str) -> str:
    """Definitions of the warp-per-row integer layer norm functions ``code`` calls."""
    return "".join(_int_warp_function(t, int(c), int(f), e, int(q) if q else None, bool(n))
                   for t, c, f, e, q, n in sorted(set(_INT_NAME.findall(code))))


def int_layer_norm_warp(m: int, c: int, in_dtype: str, eps_int: int, frac_bits: int = 14, dequant: bool = False,
                        out_zero_point: int = 0, out_bits: int = 8, quant_out: tuple[int, int] | None = None,
                        narrow: bool = False) -> tirx.PrimFunc:
    """Launch PrimFunc of the warp-per-row integer layer norm, :func:`int_layer_norm_func`'s parameters (its
    float steps always IEEE-rounded, i.e. ``exact``). With ``quant_out`` the quantize's scales come with their
    reciprocals (``qrcp``, cuda_device_functions.quantize_reciprocal of ``qscale``). ``narrow``: the caller's
    gamma and beta pass :func:`int_narrow_ok`, and the normalize runs in int32."""
    if int_warp_vec(m, c, in_dtype) is None:
        raise ScheduleError(f"warp-per-row int layer norm needs int8/int16 input, C % 128 == 0 (C <= 4096) and "
                            f"M % {WARP_ROWS} == 0, got {in_dtype} {m}x{c}")
    if quant_out is not None and (not dequant or quant_out[0] not in (8, 16)):
        raise ScheduleError("int layer norm: a fused quantize output needs the float32 (dequant) output and 8 or 16 bits")
    if not dequant and out_bits not in (8, 16):
        raise ScheduleError(f"int layer norm out_bits {out_bits} is not 8 or 16")
    rows, vec = (m, c), (c,)
    params = [("x", rows, in_dtype), ("gamma", vec, "int32"), ("beta", vec, "int32")]
    params += [("scale", vec, "float32")] if dequant else [("multiplier", vec, "int32"), ("shift", vec, "int32")]
    if quant_out is not None:
        params += [("qscale", vec, "float32"), ("qrcp", vec, "float32")]
    params += [("out", rows, "float32" if dequant else f"int{out_bits}")]
    if quant_out is not None:
        params += [("out_q", rows, f"int{quant_out[0]}")]
    fname = int_function_name(c, in_dtype, frac_bits, dequant, out_bits, quant_out[0] if quant_out else None,
                              narrow)
    extra = [tirx.const(eps_int, "int64"), tirx.const(0 if dequant else out_zero_point, "int32"),
             tirx.const(quant_out[1] if quant_out else 0, "int32")]
    kernel = extern_launch(params, fname, extra, m // WARP_ROWS, 32 * WARP_ROWS)
    return kernel.with_attr("tirx.is_scheduled", True)
