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

from tvm import s_tir, te, tirx

from ._rows import block_names, place_row_values
from .cuda_device_functions import extern_launch
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
                        exact: bool = False) -> tirx.PrimFunc:
    """``(x, gamma, beta, multiplier, shift, out)`` (requantized ``int<out_bits>``) or, ``dequant``,
    ``(x, gamma, beta, scale, out)`` (float32 ``acc * scale[c]``); gamma/beta/multiplier/shift int32 ``[C]``,
    scale float32 ``[C]``. mean = floor(sum(x) / C), var = sum((x - mean)^2) + eps, std = max(isqrt(var), 1),
    z = ((x - mean) * floor(2^31 / std)) >> (31 - frac_bits), acc = z * gamma + beta."""
    from .qdense import exact_mul, requantize_expr

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
