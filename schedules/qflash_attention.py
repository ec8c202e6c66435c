"""``qattention`` (integer attention, I-BERT softmax) as one kernel, bit-exact with ``hwcomp/ops/quantized.py``.

The three-kernel integer path (schedules/qattention.py) writes every head's int32 scores and probabilities to
global memory and back (at BERT-base batch 32, seq 128: 25 MB of scores and 12.6 MB of probabilities a layer,
about 52 us). Here a thread block keeps a query tile's whole score rows on chip. The integer softmax needs a
row's maximum before any exponential and its sum before any probability (no online rescaling: the result must be
the interpreter's integers), so the kernel holds full rows: Sk up to :data:`MAX_KEYS`.

Operands are the int8 values carried in fp16 (exact for |v| <= 2048): q, k, v ``[B, S, H*D]``, heads in place,
written so by the int8 GEMMs that produce them (schedules/qdense_wgmma.py ``requant_as_f16``). Products of two
int8 are below 2^14 and a head's dot product below 2^21, so fp16 ``mma.sync m16n8k16`` with fp32 accumulation
gives the int32 scores exactly; likewise ``P V`` (schedules/qattention.py ``check_exact``). Mask ``[Bm, Sqm, Sk]``
int32 in score units (converted by the lowering, as for the three-kernel path), causal positions -2^30.

Per thread block (``warps`` warps, 16 query rows each, one (batch, head)):

* Q, all of K (one ``cp.async`` group) and all of V (a second group, landing under the QKᵀ math) go to shared
  memory, XOR-swizzled as in schedules/flash_attention.py;
* each warp computes its 16 rows of ``S = Q Kᵀ`` over all keys (``ldmatrix`` + mma), converts them to int32, adds
  the mask / causal fill, and runs ``intmath.int_softmax`` on the rows in registers: row max (quad shuffles),
  ``i_exp`` (once, in int32, in place of the scores where :func:`exp_int32` proves it fits; else in int64,
  recomputed rather than held), the row sum, one ``2^62 // sum`` per row,
  ``min((e * factor) >> (62 - prob_bits), 2^prob_bits - 1)`` packed straight into fp16 A fragments;
* ``O = P V`` (``ldmatrix.trans`` of V), then the requantization (``hwcomp_requant32``) or exact float32 dequant
  epilogue per channel, heads merged on store.
"""

from __future__ import annotations

import re

from tvm import te, tirx

from .attention import mask_batch_of, pv_compute, scores_compute
from .cuda_device_functions import extern_launch
from .errors import ScheduleError
from .flash_attention import FlashConfig, _swizzle_c, pick_config
from .qattention import CAUSAL_FILL, Epilogue, check_exact, int_softmax_compute

HEAD_DIMS = (32, 64, 128)
MAX_KEYS = 256  # a thread's share of a score row: Sk / 8 n-tiles x 4 int32 registers
MAX_SHIFT = 30

PREFIX = "hwcomp_qflash_attn_"
_NAME = re.compile(PREFIX + r"d(\d+)k(\d+)w(\d)_e(m?\d+)_b(m?\d+)_c(\d+)_p(\d+)(_c)?(_m)?(_f)?_(rq8|rq16|dq)(?=\()")


def applicable(s_q: int, s_k: int, d: int, cfg: FlashConfig) -> bool:
    """Head dims of :data:`HEAD_DIMS`, Sk a multiple of 16 up to :data:`MAX_KEYS`, whole query tiles."""
    return d in HEAD_DIMS and s_k % 16 == 0 and 0 < s_k <= MAX_KEYS and s_q % cfg.rows == 0


def smem_bytes(s_k: int, d: int, cfg: FlashConfig) -> int:
    return (cfg.rows + 2 * s_k) * d * 2


def _c(v: int) -> str:
    return str(v).replace("-", "m")


def function_name(d: int, s_k: int, cfg: FlashConfig, exp_ln2: int, exp_b: int, exp_c: int, prob_bits: int,
                  causal: bool, has_mask: bool, epi: str, fused: bool = False) -> str:
    return (f"{PREFIX}d{d}k{s_k}w{cfg.warps}_e{_c(exp_ln2)}_b{_c(exp_b)}_c{exp_c}_p{prob_bits}"
            f"{'_c' if causal else ''}{'_m' if has_mask else ''}{'_f' if fused else ''}_{epi}")


def exp_range(exp_ln2: int, exp_b: int, exp_c: int) -> tuple[int, int]:
    """Exact (min, max) over i_exp's remainders r in (ln2, 0] of ``r * (r + b)`` and of ``poly = r * (r + b) + c``
    together (the int32 path needs both in range): a quadratic in r, extreme at the interval's ends or next to
    its vertex -b/2."""
    lo_r, hi_r = exp_ln2 + 1, 0
    cands = {lo_r, hi_r} | {min(max(v, lo_r), hi_r) for v in (-exp_b // 2, -(-exp_b // 2))}
    vals = [r * (r + exp_b) for r in cands] + [r * (r + exp_b) + exp_c for r in cands]
    return min(vals), max(vals)


def exp_int32(exp_ln2: int, exp_b: int, exp_c: int, s_k: int) -> tuple[bool, bool]:
    """(exponentials in int32, row sums in int32): whether ``i_exp``'s every step fits int32 for these constants
    -- the clamped argument (>= 30 ln2), ``r + b``, ``r * (r + b)`` and the polynomial -- and whether ``s_k`` of
    its results (each <= the polynomial's maximum) sum below 2^31."""
    lo, hi = exp_range(exp_ln2, exp_b, exp_c)
    fits = MAX_SHIFT * -exp_ln2 < 2**31 and abs(exp_b) - exp_ln2 < 2**31 and -2**31 <= lo and hi < 2**31
    return fits, fits and s_k * max(hi, 0) < 2**31


def _epi_tag(epilogue: Epilogue) -> str:
    return "dq" if epilogue.dequant else f"rq{epilogue.out_bits}"


def device_function(d: int, s_k: int, cfg: FlashConfig, exp_ln2: int, exp_b: int, exp_c: int, prob_bits: int,
                    causal: bool, has_mask: bool, epi: str, fused: bool = False) -> str:
    """CUDA source of :func:`function_name` (module docstring). Runtime parameters: ``block``, ``B, H, Sq``,
    with a mask its batch and row strides, and the requantization's output zero point."""
    name = function_name(d, s_k, cfg, exp_ln2, exp_b, exp_c, prob_bits, causal, has_mask, epi, fused)
    # fused: q, k, v are the three thirds of one [B, S, 3*H*D] projection (a fused QKV GEMM's output), read in place
    qkv_params = ("const half* __restrict__ qkv, " if fused else
                  "const half* __restrict__ q, const half* __restrict__ k,\n    const half* __restrict__ v, ")
    qkv_split = (f"  const half* q = qkv;\n  const half* k = qkv + H * {d};\n  const half* v = qkv + 2 * H * {d};\n"
                 if fused else "")
    rows, warps = cfg.rows, cfg.warps
    ch, ks, nt, dt = d // 8, d // 16, s_k // 8, d // 8
    q_bytes, kv_bytes = rows * d * 2, s_k * d * 2
    sw = f"HWCOMP_QFA_SW_D{d}"
    narrow = MAX_SHIFT * -exp_ln2 < 2**31
    exp32, sum32 = exp_int32(exp_ln2, exp_b, exp_c, s_k)
    t = "int" if narrow else "long long"
    pt, ps = ("int", "") if exp32 else ("long long", "ll")
    pmax = (1 << prob_bits) - 1
    mask_param = "const int* __restrict__ mask, " if has_mask else ""
    mask_strides = ", int mask_bs, int mask_rs" if has_mask else ""
    mask_row = ("  const int* mrow0 = mask + (size_t)b * mask_bs + (size_t)qrow0 * mask_rs;\n"
                "  const int* mrow1 = mrow0 + (size_t)8 * mask_rs;\n") if has_mask else ""
    mask_add = ("      const int2 m0 = *reinterpret_cast<const int2*>(mrow0 + key);\n"
                "      const int2 m1 = *reinterpret_cast<const int2*>(mrow1 + key);\n"
                "      x[j][0] += m0.x; x[j][1] += m0.y; x[j][2] += m1.x; x[j][3] += m1.y;\n") if has_mask else ""
    causal_fill = ("      if (key > qrow0 + diag) x[j][0] = FILL;\n"
                   "      if (key + 1 > qrow0 + diag) x[j][1] = FILL;\n"
                   "      if (key > qrow0 + 8 + diag) x[j][2] = FILL;\n"
                   "      if (key + 1 > qrow0 + 8 + diag) x[j][3] = FILL;\n") if causal else ""
    if epi == "dq":
        out_t, epi_params = "float", "const float* __restrict__ scale, "
        store = ("    *reinterpret_cast<float2*>(og + {off}) = make_float2(__fmul_rn((float)(int)o[j][{a}], scale[col]), "
                 "__fmul_rn((float)(int)o[j][{b}], scale[col + 1]));\n")
    else:
        bits = int(epi[2:])
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        out_t = "signed char" if bits == 8 else "short"
        vec = "char2" if bits == 8 else "short2"
        epi_params = "const int* __restrict__ mult, const int* __restrict__ shift, "
        store = (f"    *reinterpret_cast<{vec}*>(og + {{off}}) = make_{vec}("
                 f"hwcomp_requant32((int)o[j][{{a}}], mult[col], shift[col], out_zp, {lo}, {hi}), "
                 f"hwcomp_requant32((int)o[j][{{b}}], mult[col + 1], shift[col + 1], out_zp, {lo}, {hi}));\n")
    store0 = store.format(off="j * 8", a=0, b=1)
    store1 = store.format(off=f"(size_t)8 * H * {d} + j * 8", a=2, b=3)
    softmax = _softmax(name, nt, exp_ln2, prob_bits, pmax, exp32, sum32)
    return f"""
__device__ __forceinline__ {"int" if exp32 else "long long"} {name}_exp({"int" if exp32 else "long long"} xm) {{  // intmath.i_exp of x - rowmax (<= 0)
  const {t} v = ({t})(xm > {MAX_SHIFT * exp_ln2}{ps} ? xm : {MAX_SHIFT * exp_ln2}{ps});
  const {t} z = v / ({t})({exp_ln2});  // v <= 0 and ln2 < 0: a non-negative quotient, truncation = floor
  const {pt} r = ({pt})(v - z * ({t})({exp_ln2}));
  const {pt} poly = r * (r + {exp_b}{ps}) + {exp_c}{ps};
  return (poly > 0 ? poly : 0) >> z;
}}
__device__ __forceinline__ void {name}({qkv_params}{mask_param}{epi_params}{out_t}* __restrict__ out, unsigned char* smem_raw,
    int block, int B, int H, int Sq, int out_zp{mask_strides}) {{
  const int FILL = {CAUSAL_FILL};
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int q_tiles = Sq / {rows};
  const int qt = block % q_tiles, h = (block / q_tiles) % H, b = block / (q_tiles * H);
{qkv_split}  const int q0 = qt * {rows}, ld = {3 if fused else 1} * H * {d};
  const unsigned sq = (unsigned)__cvta_generic_to_shared(smem_raw);
  const unsigned sk = sq + {q_bytes}u, sv = sk + {kv_bytes}u;
  const half* qg = q + ((size_t)b * Sq + q0) * ld + h * {d};
  const half* kg = k + (size_t)b * {s_k} * ld + h * {d};
  const half* vg = v + (size_t)b * {s_k} * ld + h * {d};
  for (int i = tid; i < {rows * ch}; i += {32 * warps}) {{
    const int r = i / {ch}, c = i % {ch};
    hwcomp_cp_async16(sq + {sw}(r, c), qg + (size_t)r * ld + c * 8);
  }}
  for (int i = tid; i < {s_k * ch}; i += {32 * warps}) {{
    const int r = i / {ch}, c = i % {ch};
    hwcomp_cp_async16(sk + {sw}(r, c), kg + (size_t)r * ld + c * 8);
  }}
  asm volatile("cp.async.commit_group;\\n" ::);
  for (int i = tid; i < {s_k * ch}; i += {32 * warps}) {{
    const int r = i / {ch}, c = i % {ch};
    hwcomp_cp_async16(sv + {sw}(r, c), vg + (size_t)r * ld + c * 8);
  }}
  asm volatile("cp.async.commit_group;\\n" ::);
  asm volatile("cp.async.wait_group 1;\\n" ::: "memory");
  __syncthreads();

  const int qrow0 = q0 + warp * 16 + (lane >> 2);  // this thread's rows: qrow0 and qrow0 + 8
  const int diag = {s_k} - Sq;
{mask_row}  unsigned qa[{ks}][4];
#pragma unroll
  for (int kk = 0; kk < {ks}; ++kk) {{
    const int r = warp * 16 + (lane & 15), c = kk * 2 + (lane >> 4);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{%0, %1, %2, %3}}, [%4];\\n"
                 : "=r"(qa[kk][0]), "=r"(qa[kk][1]), "=r"(qa[kk][2]), "=r"(qa[kk][3]) : "r"(sq + {sw}(r, c)));
  }}
  int x[{nt}][4];  // integer scores of rows qrow0 (x[j][0..1]) and qrow0 + 8 (x[j][2..3])
#pragma unroll
  for (int jp = 0; jp < {nt // 2}; ++jp) {{  // n-tiles 2jp, 2jp+1 (keys 16jp .. 16jp+15)
    float s0[4] = {{0.0f, 0.0f, 0.0f, 0.0f}}, s1[4] = {{0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
    for (int kk = 0; kk < {ks}; ++kk) {{
      unsigned b0, b1, b2, b3;
      const int r = jp * 16 + (lane & 7) + ((lane >> 4) << 3), c = kk * 2 + ((lane >> 3) & 1);
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{%0, %1, %2, %3}}, [%4];\\n"
                   : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3) : "r"(sk + {sw}(r, c)));
      hwcomp_mma16816(s0, qa[kk], b0, b1);
      hwcomp_mma16816(s1, qa[kk], b2, b3);
    }}
#pragma unroll
    for (int e = 0; e < 4; ++e) {{ x[2 * jp][e] = (int)s0[e]; x[2 * jp + 1][e] = (int)s1[e]; }}  // exact integers
  }}
  int mx0 = -2147483647 - 1, mx1 = -2147483647 - 1;
#pragma unroll
  for (int j = 0; j < {nt}; ++j) {{
    const int key = j * 8 + (lane & 3) * 2;
{mask_add}{causal_fill}    mx0 = max(mx0, max(x[j][0], x[j][1]));
    mx1 = max(mx1, max(x[j][2], x[j][3]));
  }}
  mx0 = max(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1)); mx0 = max(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
  mx1 = max(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1)); mx1 = max(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
{softmax}  asm volatile("cp.async.wait_group 0;\\n" ::: "memory");
  __syncthreads();  // V landed
  float o[{dt}][4];
#pragma unroll
  for (int j = 0; j < {dt}; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
#pragma unroll
  for (int u = 0; u < {nt // 2}; ++u) {{
#pragma unroll
    for (int jd = 0; jd < {dt // 2}; ++jd) {{  // O n-tiles 2jd, 2jd+1 (columns 16jd .. 16jd+15)
      unsigned b0, b1, b2, b3;
      const int r = u * 16 + (lane & 15), c = jd * 2 + (lane >> 4);
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {{%0, %1, %2, %3}}, [%4];\\n"
                   : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3) : "r"(sv + {sw}(r, c)));
      hwcomp_mma16816(o[2 * jd], pa[u], b0, b1);
      hwcomp_mma16816(o[2 * jd + 1], pa[u], b2, b3);
    }}
  }}
  // epilogue per channel h*{d} + col, heads merged: out[b, row, h*{d} + col]
  {out_t}* og = out + ((size_t)b * Sq + qrow0) * (H * {d}) + h * {d} + (lane & 3) * 2;
#pragma unroll
  for (int j = 0; j < {dt}; ++j) {{
    const int col = h * {d} + j * 8 + (lane & 3) * 2;
{store0}{store1}  }}
}}
"""


def _softmax(name: str, nt: int, exp_ln2: int, prob_bits: int, pmax: int, exp32: bool, sum32: bool) -> str:
    """The integer softmax of a thread's score rows, from the row maxima to the probabilities packed as fp16 A
    fragments. ``exp32`` (:func:`exp_int32` holds): each exponential computed once, in int32, in place of its
    score (the argument clamped without int32 overflow: ``x < rowmax + 30 ln2`` is the clamp), row sums in int32
    (``sum32``) or int64, then ``(e * factor) >> (62 - prob_bits)`` with e >= 0 (one 32 x 64-bit multiply).
    Otherwise i_exp in int64, twice (for the sums, then for the probabilities) rather than held in registers."""
    shift = 62 - prob_bits
    if exp32:
        st, lb = "int" if sum32 else "long long", MAX_SHIFT * exp_ln2
        sums = f"""  // exponentials once, int32, in place of the scores (schedules/qflash_attention.py exp_int32)
  const int thr0 = (int)max((long long)mx0 + ({lb}ll), -2147483648ll), thr1 = (int)max((long long)mx1 + ({lb}ll), -2147483648ll);
  {st} sum0 = 0, sum1 = 0;
#pragma unroll
  for (int j = 0; j < {nt}; ++j) {{
    x[j][0] = {name}_exp(x[j][0] < thr0 ? {lb} : x[j][0] - mx0);
    x[j][1] = {name}_exp(x[j][1] < thr0 ? {lb} : x[j][1] - mx0);
    x[j][2] = {name}_exp(x[j][2] < thr1 ? {lb} : x[j][2] - mx1);
    x[j][3] = {name}_exp(x[j][3] < thr1 ? {lb} : x[j][3] - mx1);
    sum0 += ({st})x[j][0] + ({st})x[j][1];
    sum1 += ({st})x[j][2] + ({st})x[j][3];
  }}
"""
        factors = """  const unsigned long long f0 = (unsigned long long)((1ll << 62) / (sum0 > 1 ? (long long)sum0 : 1ll));
  const unsigned long long f1 = (unsigned long long)((1ll << 62) / (sum1 > 1 ? (long long)sum1 : 1ll));
"""
        prob = f"""      const unsigned pe = (unsigned)(((unsigned long long)(unsigned)x[j][e] * (e < 2 ? f0 : f1)) >> {shift});
      p[e] = (float)(pe < {pmax}u ? pe : {pmax}u);
"""
    else:
        sums = f"""  long long sum0 = 0, sum1 = 0;
#pragma unroll
  for (int j = 0; j < {nt}; ++j) {{
    sum0 += {name}_exp((long long)x[j][0] - mx0) + {name}_exp((long long)x[j][1] - mx0);
    sum1 += {name}_exp((long long)x[j][2] - mx1) + {name}_exp((long long)x[j][3] - mx1);
  }}
"""
        factors = "  const long long f0 = (1ll << 62) / (sum0 > 1 ? sum0 : 1ll), f1 = (1ll << 62) / (sum1 > 1 ? sum1 : 1ll);\n"
        prob = f"""      const long long pe = ({name}_exp((long long)x[j][e] - (e < 2 ? mx0 : mx1)) * (e < 2 ? f0 : f1)) >> {shift};
      p[e] = (float)(pe < {pmax} ? pe : {pmax}ll);
"""
    return sums + """  sum0 += __shfl_xor_sync(0xffffffffu, sum0, 1); sum0 += __shfl_xor_sync(0xffffffffu, sum0, 2);
  sum1 += __shfl_xor_sync(0xffffffffu, sum1, 1); sum1 += __shfl_xor_sync(0xffffffffu, sum1, 2);
""" + factors + f"""  unsigned pa[{nt // 2}][4];  // probabilities (integers 0 .. {pmax}) as fp16 A fragments: k-step u = n-tiles 2u, 2u+1
#pragma unroll
  for (int j = 0; j < {nt}; ++j) {{
    float p[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {{
""" + prob + """    }
    __half2 h01 = __floats2half2_rn(p[0], p[1]), h23 = __floats2half2_rn(p[2], p[3]);
    pa[j >> 1][(j & 1) * 2] = *reinterpret_cast<unsigned*>(&h01);
    pa[j >> 1][(j & 1) * 2 + 1] = *reinterpret_cast<unsigned*>(&h23);
  }
"""


def min_blocks(kernel_body: str) -> int | None:
    """Thread blocks an SM that an integer-attention launch asks registers for (see
    cuda_device_functions.min_blocks_bounds): as many as its shared memory allows, up to 5, for Sk <= 128 -- 111
    registers a thread would otherwise leave 4 blocks of 4 warps an SM where 5 fit (BERT-base batch 32: 768
    blocks, 1.45 waves against 1.16). Longer rows hold twice the scores: left as they are."""
    m = _NAME.search(kernel_body)
    if not m or int(m.group(2)) > 128:
        return None
    d, s_k, warps = int(m.group(1)), int(m.group(2)), int(m.group(3))
    per_sm = (228 * 1024) // (smem_bytes(s_k, d, FlashConfig(warps)) + 1024)
    return min(per_sm, 5) if per_sm >= 2 else None


def sources_for(code: str) -> str:
    """The definitions of every integer flash-attention function ``code`` calls (for the CUDA postproc hook)."""
    called = sorted(set(_NAME.findall(code)))
    if not called:
        return ""
    dims = sorted({int(c[0]) for c in called})
    out = [f"#define HWCOMP_QFA_SW_D{d}(r, c) {_swizzle_c(d)}\n" for d in dims if d in HEAD_DIMS]
    for d, kk, w, e, bb, cc, p, causal, mask, fused, epi in called:
        out.append(device_function(int(d), int(kk), FlashConfig(int(w)), int(e.replace("m", "-")),
                                   int(bb.replace("m", "-")), int(cc), int(p), bool(causal), bool(mask), epi,
                                   bool(fused)))
    return "".join(out)


def qattention_func(b: int, s_q: int, s_k: int, h: int, d: int, *, exp_ln2: int, exp_b: int, exp_c: int,
                    prob_bits: int = 8, epilogue: Epilogue = Epilogue(), causal: bool = False, has_mask: bool = True,
                    mask_batch: int | None = None, mask_rows: int = 1, fused: bool = False) -> tirx.PrimFunc:
    """Unscheduled definition: schedules/qattention.py's scores, integer softmax and PV composed, with q, k, v
    as fp16 holding int8 values. ``(q, k, v, [mask,] multiplier, shift, out)`` or, dequant,
    ``(q, k, v, [mask,] scale, out)``; ``fused`` (Sq = Sk): one ``qkv [B, S, 3*H*D]`` in place of q, k, v."""
    hd = h * d
    if fused:
        if s_q != s_k:
            raise ScheduleError(f"fused-QKV integer attention needs Sq = Sk, got {s_q}, {s_k}")
        qkv = te.placeholder((b, s_q, 3 * hd), "float16", name="qkv")

        def part(t: int, name: str) -> te.Tensor:
            return te.compute((b, s_q, hd), lambda i, j, c: qkv[i, j, t * hd + c], name=name)

        q, k, v = part(0, "q"), part(1, "k"), part(2, "v")
    else:
        q = te.placeholder((b, s_q, hd), "float16", name="q")
        k = te.placeholder((b, s_k, hd), "float16", name="k")
        v = te.placeholder((b, s_k, hd), "float16", name="v")
    mb = mask_batch_of(b, s_q, s_k, mask_batch, mask_rows) if has_mask else b
    mask = te.placeholder((mb, mask_rows, s_k), "int32", name="mask")
    sc = scores_compute(q, k, mask, h, d, "int32", None, CAUSAL_FILL, causal, has_mask, names=("scores_acc", "scores"))
    p = int_softmax_compute(sc, exp_ln2, exp_b, exp_c, prob_bits, MAX_SHIFT)
    if epilogue.dequant:
        extra = [te.placeholder((hd,), "float32", name="scale")]
        out = pv_compute(p, v, h, d, lambda acc, c: epilogue.scale(acc, extra[0][c]), names=("pv_acc", "pv", "merge_heads"))
    else:
        extra = [te.placeholder((hd,), "int32", name="multiplier"), te.placeholder((hd,), "int32", name="shift")]
        out = pv_compute(p, v, h, d, lambda acc, c: epilogue.requant(acc, extra[0][c], extra[1][c]),
                         names=("pv_acc", "pv", "merge_heads"))
    args = ([qkv] if fused else [q, k, v]) + ([mask] if has_mask else []) + extra + [out]
    return te.create_prim_func(args).with_attr("global_symbol", "qattention")


def qattention_flash(b: int, s_q: int, s_k: int, h: int, d: int, *, exp_ln2: int, exp_b: int, exp_c: int,
                     prob_bits: int = 8, epilogue: Epilogue = Epilogue(), causal: bool = False,
                     has_mask: bool = True, mask_batch: int | None = None, mask_rows: int = 1,
                     config: FlashConfig | None = None, fused: bool = False) -> tirx.PrimFunc:
    """The launch PrimFunc, with :func:`qattention_func`'s parameters."""
    if fused and s_q != s_k:
        raise ScheduleError(f"fused-QKV integer attention needs Sq = Sk, got {s_q}, {s_k}")
    cfg = config or pick_config(b, h, s_q)
    if not applicable(s_q, s_k, d, cfg):
        raise ScheduleError(f"integer flash attention covers head dims {HEAD_DIMS}, Sk % 16 == 0 up to {MAX_KEYS} "
                            f"and Sq a multiple of {cfg.rows}; got Sq={s_q}, Sk={s_k}, D={d} (the three-kernel "
                            "integer attention covers it)")
    check_exact(s_k, prob_bits)
    if exp_ln2 >= 0:
        raise ScheduleError(f"exp_ln2 {exp_ln2} must be negative (floor(-ln2 / S))")
    if not epilogue.dequant and epilogue.out_bits not in (8, 16):
        raise ScheduleError(f"qattention out_bits {epilogue.out_bits} is not 8 or 16")
    mb = mask_batch_of(b, s_q, s_k, mask_batch, mask_rows) if has_mask else b
    hd = h * d
    params = [("qkv", (b, s_q, 3 * hd), "float16")] if fused else \
        [("q", (b, s_q, hd), "float16"), ("k", (b, s_k, hd), "float16"), ("v", (b, s_k, hd), "float16")]
    if has_mask:
        params.append(("mask", (mb, mask_rows, s_k), "int32"))
    if epilogue.dequant:
        params.append(("scale", (hd,), "float32"))
    else:
        params += [("multiplier", (hd,), "int32"), ("shift", (hd,), "int32")]
    params.append(("out", (b, s_q, hd), epilogue.dtype))
    extra = [b, h, s_q, 0 if epilogue.dequant else epilogue.out_zero_point]
    if has_mask:
        extra += [mask_rows * s_k if mb > 1 else 0, s_k if mask_rows > 1 else 0]
    fname = function_name(d, s_k, cfg, exp_ln2, exp_b, exp_c, prob_bits, causal, has_mask, _epi_tag(epilogue), fused)
    kernel = extern_launch(params, fname, extra, b * h * (s_q // cfg.rows), 32 * cfg.warps, smem_bytes(s_k, d, cfg))
    return kernel.with_attr("global_symbol", f"qattention_flash_d{d}w{cfg.warps}").with_attr("tirx.is_scheduled", True)
