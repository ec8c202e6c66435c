"""int8 ``qdense`` on Hopper's warpgroup tensor cores (``wgmma m64nNk32.s32.s8.s8``, sm_90a).

The same kernel as schedules/dense_wgmma.py's fp16 GEMM -- its :func:`~.dense_wgmma.mainloop` with int8
operands: a stage row is still 128 bytes of K (128 int8 elements, the same 128-byte swizzle and descriptors),
and each of a K-step's four wgmma instructions takes 32 of them (k32) instead of 16. ``mma.sync m16n8k32``
(schedules/qdense.py) cannot feed the sm_90 tensor cores at int8 rate; this kernel reaches the same time per
K-step as the fp16 wgmma GEMM, i.e. twice its multiply-accumulates.

Operands and semantics are schedules/qdense.py's (:func:`~.qdense.qdense_func` is the definition): x ``[M, K]``
int8, w ``[N, K]`` int8, ``bias`` ``[N]`` int32 with the input zero point folded in, accumulation in int32 with
wrap-around. The epilogue, per output element ``a = acc + bias[n]`` (int32, wrapping):

* ``rq``: ``clamp(((a * m[n] + 2^(s[n]-1)) >> s[n]) + zp, lo, hi)`` in int64 -> int8 / int16, or the int8
  values as float16 (``_f16``: an attention's V, which its PV multiplies on fp16 tensor cores);
* ``dq``: ``__fmul_rn(float(a), scale[n])`` [relu] -> float32 / float16, or (``f32u``) float32 of the first
  ``n_out`` columns only, in rows of ``n_out`` (an LM head's logits as the graph output, without the padding);
* ``rqgelu``: ``rq`` to int8 at zero point 0, then hwcomp's i-GELU (``intmath.int_gelu`` with runtime ``b``,
  ``one``) and its per-channel requantization by ``gmult[n]``/``gshift[n]`` -> int8 / int16: a BERT FFN's
  up-projection and the ``int_gelu`` after it, in the GEMM;
* ``dqq``: ``dq``, then hwcomp's ``quantize`` by ``qscale[n]`` -> int8, or its values as float16 (``_f16``): a
  fused QKV projection quantized per slice for the one-kernel integer attention (GPT-2's c_attn);
* ``dqrq``: ``dq``, then ``+ residual[m, n]`` (float32) and hwcomp's ``quantize`` by ``qscale[n]``
  (``clamp(rint(v / qscale) + zp)``, the division IEEE-rounded) -> int8 / int16: the post-LN residual add and
  the quantize before the integer layer norm, in the GEMM; ``dqrqs`` also writes the float32 sum (``ysum``):
  pre-LN models (GPT-2), whose residual stream reads the sum again;

Float steps use CUDA's IEEE-rounded intrinsics (``__fmul_rn``, ``__fadd_rn``, ``__fdiv_rn``), which neither
``--use_fast_math`` nor FMA contraction changes, so results equal the interpreter's numpy bit for bit.

The accumulators (plus bias) are staged through the idle ring as a ``bm x bn`` int32 tile; each thread then
finishes four consecutive columns of a row (its per-column constants loaded once) and stores them as one
vector, so global reads of the residual and all writes are row-contiguous (``f32u``, whose rows are not
16-byte aligned: consecutive threads store consecutive columns, one float each). ``hwcomp_requant32`` and
``hwcomp_quantize`` are schedules/cuda_device_functions.py's helpers.
"""

from __future__ import annotations

import re

from tvm import tirx

from .cuda_device_functions import extern_launch, redo_flagged
from .dense_wgmma import _PAD, ARCHS, ROW_FIRST, S8, SMALL_M, WgmmaConfig, _fills, _STAGE_PROLOGUE, mainloop, weights_exceed_l2
from .dense_wgmma import pick_config as _pick_f16
from .errors import ScheduleError

BK = S8.bk  # 128 int8 of K per stage
PREFIX = "hwcomp_wgmma_qdense_"
_NAME = re.compile(PREFIX + r"((?:m64)?n\d+s\d+(?:w0)?r?)_(rqgelu|rq|dqq|dqrqs|dqrq|dq)_(i8|i16|f32u|f32|f16)_z(m?\d+)_(none|relu)(?=\()")

__all__ = ["ARCHS", "applicable", "pick_config", "qdense_wgmma", "function_name", "sources_for"]


NARROW = WgmmaConfig(64, 3, inflight=0)


def pick_config(m: int, n: int, k: int, num_sms: int = 132) -> WgmmaConfig:
    """A K-step of int8 (128 of K) takes as long as one of fp16 (same bytes, four instructions). From the H200
    sweeps (bench/gpu/kernels_int8_h200.json, kernels_tiles_s12_h200.json; BERT-base / GPT-2 small, batch 32):

    * weights larger than L2's budget (an LM head, 50304x768 int8 = 38.6 MB): the fp16 GEMM's row-first walk
      (4096x50304x768 with fp32 logits: 552 us, 653 row band first);
    * where 128x128 tiles give fewer than two thread blocks per SM: 128x64 tiles with 3 stages (73 KiB: three
      blocks an SM, each one's fill and epilogue under the others' main loops): 4096x768x768 requant 9.9 us (11.1
      at 128x128), with the residual epilogue 11.0 (14.0 at 128x192, 14.6 at 128x128), 4096x768x3072 with it
      26.7 in BERT-base. One wave of 128x192 tiles (one block an SM) took 22.3 us for the latter in a sweep whose
      inputs sit in L2, but 29.2 in BERT-base (bench/gpu/e2e_bert_profile_s12_h200.json): with HBM latency to
      hide, three blocks an SM win;
    * otherwise the fp16 GEMM's choice for the same number of K-steps (``k / 2`` fp16 elements): 4096x2304 and
      4096x3072 keep 128x128."""
    if not _fills(m, n, num_sms):
        return SMALL_M
    if weights_exceed_l2(n, n * k):
        return ROW_FIRST
    if n % 128 == 0 and (m // 128) * (n // 128) < 2 * num_sms:
        return NARROW
    return _pick_f16(m, n, k // 2, num_sms)


def applicable(m: int, n: int, k: int, num_sms: int = 132) -> bool:
    """Tiles divide the shape (N by 64, K by 128) and either 128-row tiles occupy the GPU or the rows are a
    multiple of the 64-row tile."""
    if n % 64 or k % BK:
        return False
    return _fills(m, n, num_sms) or m % SMALL_M.bm == 0


def _tag(epilogue: str, out_dtype: str, zero_point: int, act: str) -> str:
    return f"{epilogue}_{out_dtype.replace('int', 'i').replace('float', 'f')}_z{zero_point}".replace("-", "m") + f"_{act}"


def function_name(cfg: WgmmaConfig, epilogue: str, out_dtype: str, zero_point: int, act: str) -> str:
    return f"{PREFIX}{cfg}_{_tag(epilogue, out_dtype, zero_point, act)}"


_CTYPE = {"i8": ("signed char", "char4", "-128", "127"), "i16": ("short", "short4", "-32768", "32767"),
          "f32": ("float", "float4", None, None), "f32u": ("float", None, None, None), "f16": ("half", None, None, None)}


def device_function(cfg: WgmmaConfig, epilogue: str, out: str, zero_point: int, act: str) -> str:
    """CUDA source of ``function_name(cfg, epilogue, out, zero_point, act)`` (``out`` as in the name: i8, i16,
    f32, f16; see the module docstring for the epilogues)."""
    if epilogue == "rq" and out not in ("i8", "i16", "f16") or epilogue == "dq" and out not in ("f32", "f32u", "f16") \
            or epilogue in ("dqrq", "dqrqs", "rqgelu") and out not in ("i8", "i16") or epilogue == "dqq" and out not in ("i8", "f16"):
        raise ScheduleError(f"qdense wgmma: no {epilogue!r} epilogue with {out} output")
    bn, bm, threads = cfg.bn, cfg.bm, cfg.threads
    name = f"{PREFIX}{cfg}_{epilogue}_{out}_z{zero_point}".replace("-", "m") + f"_{act}"
    out_t, vec_t, lo, hi = _CTYPE[out]
    relu = act == "relu"
    if epilogue not in ("rq", "dq", "dqq", "dqrq", "dqrqs", "rqgelu") or relu and epilogue == "rqgelu":
        raise ScheduleError(f"qdense wgmma: no {epilogue!r} epilogue with activation {act}")
    sum_pre = ""
    if relu and epilogue == "rq":  # requant's relu: the lower bound becomes the zero point
        lo = str(max(zero_point, int(lo)))
    params = {"rq": "const int* __restrict__ mult, const int* __restrict__ shift, ",
              "rqgelu": "const int* __restrict__ mult, const int* __restrict__ shift, const int* __restrict__ gmult, "
                        "const int* __restrict__ gshift, ",
              "dq": "const float* __restrict__ scale, ",
              "dqrq": "const float* __restrict__ scale, const float* __restrict__ res, const float* __restrict__ qscale, ",
              "dqq": "const float* __restrict__ scale, const float* __restrict__ qscale, ",
              "dqrqs": "const float* __restrict__ scale, const float* __restrict__ res, const float* __restrict__ qscale, "}
    consts = {"rq": ["mult", "shift"], "dq": ["scale"], "dqrq": ["scale", "qscale"], "dqq": ["scale", "qscale"],
              "dqrqs": ["scale", "qscale"],
              "rqgelu": ["mult", "shift", "gmult", "gshift"]}[epilogue]
    ints = ("mult", "shift", "gmult", "gshift")
    load = "".join(f"  const {'int' if c in ints else 'float'}4 {c}4 = "
                   f"*reinterpret_cast<const {'int' if c in ints else 'float'}4*>({c} + col);\n"
                   for c in consts)
    if "qscale" in consts:  # the quantize's reciprocals once a thread (its four columns are the same every row)
        load += ("  float4 qr4;\n#pragma unroll\n"
                 "  for (int e = 0; e < 4; ++e) (&qr4.x)[e] = hwcomp_quantize_rcp((&qscale4.x)[e]);\n")
    fix = ""  # the quantizing epilogues: non-finite quotients the fast quantize flagged, redone with the IEEE division

    def quantized(v: str, lo_: str, hi_: str, cast: str = "") -> tuple[str, str]:
        """The fast quantize of value ``v`` for element e, and the statement redoing the flagged ones."""
        return (f"{cast}hwcomp_quantize_fast({v}, (&qscale4.x)[e], (&qr4.x)[e], {zero_point}, {lo_}, {hi_}, slow, e)",
                redo_flagged(4, "o[e]", v, "(&qscale4.x)[e]", zero_point, lo_, hi_, cast=cast))
    if epilogue == "rq" and out == "f16":  # int8 values as fp16 (exact)
        one = f"(float)hwcomp_requant32(av[e], (&mult4.x)[e], (&shift4.x)[e], {zero_point}, -128, 127)"
    elif epilogue == "rqgelu":  # the GEMM's int8 (zero point 0), i-GELU in int32, its requantization
        one = ("hwcomp_requant32(hwcomp_igelu(hwcomp_requant32(av[e], (&mult4.x)[e], "
               f"(&shift4.x)[e], 0, -128, 127), gelu_b, gelu_one), (&gmult4.x)[e], (&gshift4.x)[e], {zero_point}, "
               f"{lo}, {hi})")
    elif epilogue == "rq":
        one = (f"hwcomp_requant32(av[e], (&mult4.x)[e], (&shift4.x)[e], {zero_point}, {lo}, {hi})")
    elif epilogue == "dqq":
        f = "__fmul_rn((float)av[e], (&scale4.x)[e])"
        if relu:
            f = f"fmaxf({f}, 0.0f)"
        one, fix = quantized(f, "-128.0f", "127.0f", "(signed char)(int)" if out == "i8" else "")
    elif epilogue == "dq":
        one = "__fmul_rn((float)av[e], (&scale4.x)[e])"
        if relu:
            one = f"fmaxf({one}, 0.0f)"
    else:
        f = "__fmul_rn((float)av[e], (&scale4.x)[e])"
        if relu:
            f = f"fmaxf({f}, 0.0f)"
        sum_ = f"__fadd_rn({f}, (&rv.x)[e])"
        if epilogue == "dqrqs":  # the sum once, stored, then quantized
            sum_pre = (f"    float4 sv;\n#pragma unroll\n    for (int e = 0; e < 4; ++e) (&sv.x)[e] = {sum_};\n"
                       "    *reinterpret_cast<float4*>(ysum + (size_t)(m0 + r) * N + col) = sv;\n")
            sum_ = "(&sv.x)[e]"
        one, fix = quantized(sum_, f"{lo}.0f", f"{hi}.0f")
    res_load = ("    const float4 rv = *reinterpret_cast<const float4*>(res + (size_t)(m0 + r) * N + col);\n"
                if epilogue in ("dqrq", "dqrqs") else "") + sum_pre
    if out == "f32u":  # finished below, a column per thread
        store, o_t = "", "float"
    elif out == "f16":
        store = ("    __half2* yp = reinterpret_cast<__half2*>(y + (size_t)(m0 + r) * N + col);\n"
                 "    yp[0] = __floats2half2_rn(o[0], o[1]);\n    yp[1] = __floats2half2_rn(o[2], o[3]);\n")
        o_t = "float"
    else:
        store = f"    *reinterpret_cast<{vec_t}*>(y + (size_t)(m0 + r) * N + col) = make_{vec_t}(o[0], o[1], o[2], o[3]);\n"
        o_t = out_t
    if out == "f32u":  # consecutive threads, consecutive columns of a row (rows unaligned: n_out may be odd)
        v = f"__fmul_rn((float)tile_i[r * {bn + _PAD} + c], scale[n0 + c])"
        finish = (f"  for (int i = tid; i < {bm * bn}; i += {threads}) {{\n    const int r = i / {bn}, c = i % {bn};\n"
                  f"    if (n0 + c < n_out) y[(size_t)(m0 + r) * n_out + n0 + c] = {f'fmaxf({v}, 0.0f)' if relu else v};\n  }}\n")
    else:  # four consecutive columns a thread, the same four for every row it finishes (threads past the last
        # whole row of column groups idle where bn / 4 does not divide the block)
        groups = bn // 4
        finish = (f"  const int c4 = (tid % {groups}) * 4, col = n0 + c4;\n"
                  f"{load}  for (int r = tid / {groups}; r < {bm if threads % groups == 0 else f'(tid < {threads // groups * groups} ? {bm} : 0)'}; r += {threads // groups}) {{\n"
                  f"    const int4 a = *reinterpret_cast<const int4*>(tile_i + r * {bn + _PAD} + c4);\n"
                  f"    const int av[4] = {{a.x, a.y, a.z, a.w}};\n"
                  f"{res_load}    {o_t} o[4];\n{'    unsigned slow = 0;' + chr(10) if fix else ''}"
                  f"#pragma unroll\n    for (int e = 0; e < 4; ++e) o[e] = {one};\n"
                  f"{fix}{store}  }}\n")
    return f"""
__device__ __forceinline__ void {name}(const signed char* __restrict__ x, const signed char* __restrict__ w,
    const int* __restrict__ bias, {params[epilogue]}{out_t}* __restrict__ y, {"float* __restrict__ ysum, " if epilogue == "dqrqs" else ""}unsigned char* smem_raw, int block,
    int M, int N, int K{", int gelu_b, int gelu_one" if epilogue == "rqgelu" else ", int n_out" if out == "f32u" else ""}) {{
{mainloop(cfg, S8)}
  // epilogue: acc + bias (int32, wrapping) staged through the idle ring as a {bm} x {bn} int32 tile; fragment:
  // warp w of a warpgroup holds rows 16w + lane/4 (+8), columns 8j + 2*(lane%4) (+1)
{_STAGE_PROLOGUE.format(t="int", v="tile_i")}#pragma unroll
  for (int j = 0; j < {bn // 8}; ++j) {{
    const int c = j * 8 + (lane & 3) * 2;
#pragma unroll
    for (int h = 0; h < 2; ++h)
      *reinterpret_cast<int2*>(tile_i + (tr + 8 * h) * {bn + _PAD} + c) = make_int2(
          (int)((unsigned)acc[4 * j + 2 * h] + (unsigned)bias[n0 + c]),
          (int)((unsigned)acc[4 * j + 2 * h + 1] + (unsigned)bias[n0 + c + 1]));
  }}
  __syncthreads();
{finish}}}
"""


def sources_for(code: str) -> str:
    """The definitions of every int8 wgmma function ``code`` calls (for the CUDA postproc hook), or ''."""
    names = sorted(set(_NAME.findall(code)))
    if not names:
        return ""
    return "".join(device_function(WgmmaConfig.parse(cfg), epi, out, int(zp.replace("m", "-")), act)
                            for cfg, epi, out, zp, act in names)


def check_gelu(gelu: tuple[int, int], epilogue: str, activation: str, out_bits: int, requant_as_f16: bool) -> None:
    """The fused i-GELU's preconditions: a requantizing GEMM, no other activation, 8/16-bit output, and
    constants that keep i-GELU of any int8 in int32 (``128 * (2 one + b^2) < 2^31``)."""
    b, one = (int(v) for v in gelu)
    if epilogue != "requant" or activation != "none" or requant_as_f16:
        raise ScheduleError("qdense: i-GELU is fused only after the int8 requantization, with no other activation")
    if out_bits not in (8, 16):
        raise ScheduleError(f"qdense i-GELU out_bits {out_bits} is not 8 or 16")
    if b < 0 or one < 0 or 128 * (2 * one + b * b) >= 1 << 31:
        raise ScheduleError(f"qdense i-GELU constants b={b}, one={one} overflow int32 for int8 input "
                            "(the separate int_gelu kernel computes them in int64)")


def qdense_wgmma(m: int, n: int, k: int, epilogue: str = "requant", out_zero_point: int = 0,
                 activation: str = "none", out_bits: int = 8, out_dtype: str = "float16",
                 residual_quant: tuple[int, int] | None = None, config: WgmmaConfig | None = None,
                 requant_as_f16: bool = False, gelu: tuple[int, int] | None = None, n_out: int | None = None,
                 lead: tuple[int, ...] | None = None, quantize: int | None = None,
                 residual_sum: bool = False) -> tirx.PrimFunc:
    """The launch PrimFunc of the int8 wgmma kernel, with :func:`~.qdense.qdense_func`'s parameters and
    parameter order (requant: ``x, w, bias, multiplier, shift, out``; dequant: ``x, w, bias, scale, out``;
    dequant with ``residual_quant=(bits, zero_point)``: ``x, w, bias, scale, residual, qscale, out``; requant
    with ``gelu=(b_int, one_int)``: ``x, w, bias, multiplier, shift, gelu_multiplier, gelu_shift, out``; float32
    dequant with ``n_out``: ``out`` holds the first ``n_out`` columns, shaped ``[*lead, n_out]``; dequant with
    ``quantize=zero_point``: ``x, w, bias, scale, qscale, out`` (int8, or float16 with ``requant_as_f16``);
    ``residual_quant`` with ``residual_sum``: ``..., out, sum`` -- the float32 residual sum as well)."""
    if activation not in ("none", "relu"):
        raise ScheduleError(f"qdense activation {activation!r} is not 'none' or 'relu'")
    cfg = config or pick_config(m, n, k)
    cfg.check(m, n, k, BK)
    params = [("x", (m, k), "int8"), ("w", (n, k), "int8"), ("bias", (n,), "int32")]
    extra = [m, n, k]
    if gelu is not None:
        check_gelu(gelu, epilogue, activation, out_bits, requant_as_f16)
        epi, odt, zp = "rqgelu", f"int{out_bits}", out_zero_point
        params += [("multiplier", (n,), "int32"), ("shift", (n,), "int32"), ("gelu_multiplier", (n,), "int32"),
                   ("gelu_shift", (n,), "int32")]
        extra += [int(gelu[0]), int(gelu[1])]
    elif epilogue == "requant":
        if out_bits not in (8, 16):
            raise ScheduleError(f"qdense out_bits {out_bits} is not 8 or 16")
        if requant_as_f16 and out_bits != 8:
            raise ScheduleError("qdense: only int8 requantized values are written as float16")
        epi, odt, zp = "rq", "float16" if requant_as_f16 else f"int{out_bits}", out_zero_point
        params += [("multiplier", (n,), "int32"), ("shift", (n,), "int32")]
    elif epilogue == "dequant" and quantize is not None:
        if residual_quant is not None or n_out is not None:
            raise ScheduleError("qdense: the per-column quantize epilogue has no residual and writes every column")
        epi, odt, zp = "dqq", "float16" if requant_as_f16 else "int8", int(quantize)
        params += [("scale", (n,), "float32"), ("qscale", (n,), "float32")]
    elif epilogue == "dequant" and residual_quant is None:
        if out_dtype not in ("float16", "float32"):
            raise ScheduleError(f"qdense out_dtype {out_dtype!r} is not float16 or float32")
        epi, odt, zp = "dq", out_dtype, 0
        params += [("scale", (n,), "float32")]
        if n_out is not None:
            if out_dtype != "float32" or not 0 < n_out <= n:
                raise ScheduleError(f"qdense: unpadded output needs float32 and 0 < n_out <= {n}, got {n_out}")
            extra.append(n_out)
    elif epilogue == "dequant":
        bits, zp = residual_quant
        if bits not in (8, 16):
            raise ScheduleError(f"qdense residual quantize to {bits} bits is not 8 or 16")
        epi, odt = "dqrqs" if residual_sum else "dqrq", f"int{bits}"
        params += [("scale", (n,), "float32"), ("residual", (m, n), "float32"), ("qscale", (n,), "float32")]
    else:
        raise ScheduleError(f"qdense epilogue {epilogue!r} is not 'requant' or 'dequant'")
    if n_out is not None and epi != "dq":
        raise ScheduleError("qdense: only the plain dequant epilogue writes an unpadded output")
    params.append(("out", (*(lead or (m,)), n_out) if n_out is not None else (m, n), odt))
    if residual_sum:
        if epi != "dqrqs":
            raise ScheduleError("qdense: the float32 residual sum is an output of the residual-quantize epilogue only")
        params.append(("sum", (m, n), "float32"))
    fname = function_name(cfg, epi, "f32u" if n_out is not None else odt, zp, activation)
    kernel = extern_launch(params, fname, extra, cfg.blocks(m, n), cfg.threads, cfg.smem_bytes)
    return kernel.with_attr("global_symbol", f"qdense_wgmma_{cfg}").with_attr("tirx.is_scheduled", True)
