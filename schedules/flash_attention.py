"""``attention`` fp16 as one FlashAttention-2-style kernel: scores, online softmax and PV on chip.

The three-kernel path (schedules/attention.py) writes fp32 scores and fp16 probabilities of every head to
global memory and back: at BERT-base batch 32, seq 128, 25 MB of scores and probabilities per layer, and three
launches. This kernel keeps a query tile's scores in registers and never writes them.

Layouts: q, k, v ``[B, S, ld]`` fp16, head ``h`` of q at columns ``q_off + h*D`` (likewise k, v): either three
``[B, S, H*D]`` tensors (``ld = H*D``, offsets 0) or one fused projection ``[B, S, 3*H*D]`` read in place
(``ld = 3*H*D``, offsets 0, H*D, 2*H*D: no split copies). Optional additive mask ``[Bm, Sqm, Sk]`` float32 as in
schedules/attention.py (``Bm`` 1 or B, ``Sqm`` 1 or Sq), ``causal`` fills scores above the diagonal (offset by
``Sk - Sq``) with ``-3.4e38``. Out ``[B, Sq, H*D]`` fp16, heads merged.

Per thread block (``warps`` warps, ``16 * warps`` query rows of one (batch, head)):

* the query tile and then 64-key tiles of K and V go to shared memory by ``cp.async`` (K/V double-buffered:
  the next tile loads while this one is used), 16-byte chunks XOR-swizzled so that ``ldmatrix`` is
  conflict-free;
* each warp owns 16 query rows: ``S = Q Kᵀ`` by ``mma.sync m16n8k16`` (fp32 accumulation, fragments from
  ``ldmatrix``), then ``s * scale + mask`` (and the causal fill), the running row max and sum (online softmax:
  earlier partial outputs rescaled by ``exp(m_old - m_new)``), ``P`` rounded to fp16 straight from the score
  accumulators into A fragments, and ``O += P V`` (``ldmatrix.trans`` of V);
* at the end ``O / rowsum`` is rounded to fp16 and stored with the heads merged.

The probabilities multiply V unnormalized (divided at the end) and rounded to fp16, where the three-kernel
path rounds the normalized ones: both are within fp16 tolerance of the interpreter.

Any sequence lengths: when the last query tile or 64-key tile is partial, the ``_t`` variant zero-fills the rows
and keys past the ends in shared memory, scores such keys -inf and stores only rows below Sq.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tvm import te, tirx

from .attention import NEG_INF, mask_batch_of, pv_compute, scores_compute
from .cuda_device_functions import extern_launch
from .errors import ScheduleError

BKV = 64  # keys per K/V tile
HEAD_DIMS = (32, 64, 128)

PREFIX = "hwcomp_flash_attn_"
_NAME = re.compile(PREFIX + r"d(\d+)w(\d)(_c)?(_m)?(_t)?(_f)?(?=\()")


@dataclass(frozen=True)
class FlashConfig:
    warps: int = 4  # query rows per thread block = 16 * warps

    @property
    def rows(self) -> int:
        return 16 * self.warps


def smem_bytes(d: int, cfg: FlashConfig) -> int:
    """Query tile + two stages of a K tile and a V tile, fp16."""
    return (cfg.rows * d + 2 * 2 * BKV * d) * 2


def applicable(s_q: int, s_k: int, d: int) -> bool:
    """Whether the kernel covers the shape (otherwise the three-kernel path runs): any sequence lengths (a
    partial last query or key tile takes the ``_t`` variant), head dims of :data:`HEAD_DIMS`."""
    return d in HEAD_DIMS and s_q >= 1 and s_k >= 1


def has_tail(s_q: int, s_k: int, cfg: "FlashConfig") -> bool:
    """Whether the last query tile or key tile is partial (the ``_t`` variant: bounds-checked loads and stores)."""
    return s_q % cfg.rows != 0 or s_k % BKV != 0


def pick_config(b: int, h: int, s_q: int, num_sms: int = 132) -> FlashConfig:
    """4 warps (64 query rows) a block when that still gives a block per SM, else 2 (32 rows: small batches
    spread over more SMs, each block re-reading its head's K/V from L2). One warp a block is never faster on the
    H200 (bench/gpu/attn_flash_s12_h200.json: BERT-base batch 1 4.1 us at 2 warps, 5.0 at 1; GPT-2 small 5.6,
    5.9; MiniLM 4.0, 4.6; and at seq 50, 77 and 7); 8 warps are slower at every shape measured (BERT-base batch
    32 18.1 us against 15.1 at 4)."""
    return FlashConfig(4) if b * h * -(-s_q // 64) >= num_sms else FlashConfig(2)


def function_name(d: int, cfg: FlashConfig, causal: bool, has_mask: bool, fused: bool, tail: bool = False) -> str:
    return (f"{PREFIX}d{d}w{cfg.warps}{'_c' if causal else ''}{'_m' if has_mask else ''}{'_t' if tail else ''}"
            f"{'_f' if fused else ''}")


def _swizzle_c(d: int) -> str:
    """C expression: byte offset of 16-byte chunk ``c`` of row ``r`` in a tile of rows of ``d`` fp16 (rows of
    ``2d`` bytes), XOR-swizzled so that the 8 rows one ``ldmatrix`` phase reads at one chunk hit 8 different
    16-byte bank groups."""
    if d >= 64:  # 8+ chunks a row: chunk bits 0..2 ^ row % 8
        return f"((r) * {2 * d} + ((((c) & ~7) | (((c) & 7) ^ ((r) & 7))) << 4))"
    return f"((r) * {2 * d} + ((((c) ^ (((r) >> 1) & 3))) << 4))"  # d = 32: 4 chunks, two rows a 128-byte line


def device_function(d: int, cfg: FlashConfig, causal: bool, has_mask: bool, tail: bool = False) -> str:
    """CUDA source of ``function_name(d, cfg, causal, has_mask, False, tail)``: see the module docstring. Runtime
    parameters: ``block`` (the thread block's index), ``B, H, Sq, Sk``, ``ld`` (row stride of q/k/v in
    elements), ``scale``, and, with a mask, its batch and row strides in elements (0 where it broadcasts).
    ``tail``: Sq or Sk is not a multiple of the tiles; rows past Sq and keys past Sk are zero-filled on load, such
    keys score -inf (their probability is exactly 0), rows past Sq are not stored."""
    name = function_name(d, cfg, causal, has_mask, False, tail)
    rows, warps = cfg.rows, cfg.warps
    ch = d // 8  # 16-byte chunks per row
    ks = d // 16  # k-steps of QKᵀ
    nt = BKV // 8  # n-tiles of S per warp
    dt = d // 8  # n-tiles of O per warp
    q_bytes, kv_bytes = rows * d * 2, BKV * d * 2
    mask_param = "const float* __restrict__ mask, " if has_mask else ""
    mask_strides = ", int mask_bs, int mask_rs" if has_mask else ""
    if has_mask and tail:
        mask_row = ("  const float* mrow0 = mask + (size_t)b * mask_bs + (size_t)min(qrow0, Sq - 1) * mask_rs;\n"
                    "  const float* mrow1 = mask + (size_t)b * mask_bs + (size_t)min(qrow0 + 8, Sq - 1) * mask_rs;\n")
        mask_add = ("        s[j][0] = key < Sk ? fmaf(s[j][0], scale, mrow0[key]) : -INFINITY;\n"
                    "        s[j][1] = key + 1 < Sk ? fmaf(s[j][1], scale, mrow0[key + 1]) : -INFINITY;\n"
                    "        s[j][2] = key < Sk ? fmaf(s[j][2], scale, mrow1[key]) : -INFINITY;\n"
                    "        s[j][3] = key + 1 < Sk ? fmaf(s[j][3], scale, mrow1[key + 1]) : -INFINITY;\n")
    elif has_mask:
        mask_row = ("  const float* mrow0 = mask + (size_t)b * mask_bs + (size_t)qrow0 * mask_rs;\n"
                    "  const float* mrow1 = mrow0 + (size_t)8 * mask_rs;\n")
        mask_add = ("        const float2 m0 = *reinterpret_cast<const float2*>(mrow0 + key);\n"
                    "        const float2 m1 = *reinterpret_cast<const float2*>(mrow1 + key);\n"
                    "        s[j][0] = fmaf(s[j][0], scale, m0.x); s[j][1] = fmaf(s[j][1], scale, m0.y);\n"
                    "        s[j][2] = fmaf(s[j][2], scale, m1.x); s[j][3] = fmaf(s[j][3], scale, m1.y);\n")
    elif tail:
        mask_row = ""
        mask_add = ("        s[j][0] = key < Sk ? s[j][0] * scale : -INFINITY;\n"
                    "        s[j][1] = key + 1 < Sk ? s[j][1] * scale : -INFINITY;\n"
                    "        s[j][2] = key < Sk ? s[j][2] * scale : -INFINITY;\n"
                    "        s[j][3] = key + 1 < Sk ? s[j][3] * scale : -INFINITY;\n")
    else:
        mask_row = ""
        mask_add = ("        s[j][0] *= scale; s[j][1] *= scale; s[j][2] *= scale; s[j][3] *= scale;\n")
    # keys past Sk (tail) stay -inf: past the diagonal too, but they are not keys
    lim = "key < Sk && " if tail else ""
    lim1 = "key + 1 < Sk && " if tail else ""
    causal_fill = (f"        if ({lim}key > qrow0 + diag) s[j][0] = NEGF;\n"
                   f"        if ({lim1}key + 1 > qrow0 + diag) s[j][1] = NEGF;\n"
                   f"        if ({lim}key > qrow0 + 8 + diag) s[j][2] = NEGF;\n"
                   f"        if ({lim1}key + 1 > qrow0 + 8 + diag) s[j][3] = NEGF;\n") if causal else ""
    q_load = f"    hwcomp_cp_async16(sq + HWCOMP_FA_SW_D{d}(r, c), qg + (size_t)r * ld + c * 8);"
    kv_load = (f"      hwcomp_cp_async16(sk + (stage) * {kv_bytes}u + HWCOMP_FA_SW_D{d}(r, c), kg + g);          \\\n"
               f"      hwcomp_cp_async16(sv + (stage) * {kv_bytes}u + HWCOMP_FA_SW_D{d}(r, c), vg + g);          \\")
    store0 = "    *reinterpret_cast<__half2*>(og + j * 8) = "
    store1 = "    *reinterpret_cast<__half2*>(og + (size_t)8 * H * {d} + j * 8) =".format(d=d)
    if tail:  # rows past Sq / keys past Sk: zeros in shared memory (V's must be 0: 0 * garbage could be NaN)
        zero = "*reinterpret_cast<uint4*>(smem_raw + {off}) = make_uint4(0u, 0u, 0u, 0u)"
        q_load = (f"    if (q0 + r < Sq) hwcomp_cp_async16(sq + HWCOMP_FA_SW_D{d}(r, c), qg + (size_t)r * ld + c * 8);\n"
                  f"    else {zero.format(off=f'HWCOMP_FA_SW_D{d}(r, c)')};")
        kv_load = (f"      if ((tile) * {BKV} + r < Sk) {{                                                        \\\n"
                   f"        hwcomp_cp_async16(sk + (stage) * {kv_bytes}u + HWCOMP_FA_SW_D{d}(r, c), kg + g);      \\\n"
                   f"        hwcomp_cp_async16(sv + (stage) * {kv_bytes}u + HWCOMP_FA_SW_D{d}(r, c), vg + g);      \\\n"
                   f"      }} else {{                                                                              \\\n"
                   f"        {zero.format(off=f'{q_bytes} + (stage) * {kv_bytes} + HWCOMP_FA_SW_D{d}(r, c)')};  \\\n"
                   f"        {zero.format(off=f'{q_bytes + 2 * kv_bytes} + (stage) * {kv_bytes} + HWCOMP_FA_SW_D{d}(r, c)')};  \\\n"
                   f"      }}                                                                                     \\")
        store0 = "    if (qrow0 < Sq) " + store0.lstrip()
        store1 = "    if (qrow0 + 8 < Sq) " + store1.lstrip()
    return f"""
__device__ __forceinline__ void {name}(const half* __restrict__ q, const half* __restrict__ k,
    const half* __restrict__ v, {mask_param}half* __restrict__ out, unsigned char* smem_raw, int block,
    int B, int H, int Sq, int Sk, int ld, float scale{mask_strides}) {{
  const float NEGF = {NEG_INF:.7g}f;
  const float LOG2E = 1.4426950408889634f;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int q_tiles = {"(Sq + " + str(rows - 1) + ") / " + str(rows) if tail else "Sq / " + str(rows)};
  const int qt = block % q_tiles, h = (block / q_tiles) % H, b = block / (q_tiles * H);
  const int q0 = qt * {rows};
  const unsigned sq = (unsigned)__cvta_generic_to_shared(smem_raw);
  const unsigned sk = sq + {q_bytes}u, sv = sk + {2 * kv_bytes}u;  // two stages each of K and V
  const half* qg = q + ((size_t)b * Sq + q0) * ld + h * {d};
  const half* kg = k + (size_t)b * Sk * ld + h * {d};
  const half* vg = v + (size_t)b * Sk * ld + h * {d};

  // query tile: {rows} x {d}
  for (int i = tid; i < {rows * ch}; i += {32 * warps}) {{
    const int r = i / {ch}, c = i % {ch};
{q_load}
  }}
#define HWCOMP_FA_LOAD_KV(tile, stage)                                                           \\
  do {{                                                                                         \\
    for (int i = tid; i < {BKV * ch}; i += {32 * warps}) {{                                     \\
      const int r = i / {ch}, c = i % {ch};                                                     \\
      const size_t g = (size_t)((tile) * {BKV} + r) * ld + c * 8;                               \\
{kv_load}
    }}                                                                                          \\
  }} while (0)
  HWCOMP_FA_LOAD_KV(0, 0);
  asm volatile("cp.async.commit_group;\\n" ::);

  const int qrow0 = q0 + warp * 16 + (lane >> 2);  // this thread's rows: qrow0 and qrow0 + 8
  const int diag = Sk - Sq;
{mask_row}  float m_run[2] = {{-INFINITY, -INFINITY}}, l_run[2] = {{0.0f, 0.0f}};
  float o[{dt}][4];
#pragma unroll
  for (int j = 0; j < {dt}; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  unsigned qa[{ks}][4];
  const int kv_tiles = {"(Sk + " + str(BKV - 1) + ") / " + str(BKV) if tail else "Sk / " + str(BKV)};
  for (int t = 0; t < kv_tiles; ++t) {{
    if (t + 1 < kv_tiles) HWCOMP_FA_LOAD_KV(t + 1, (t + 1) & 1);
    asm volatile("cp.async.commit_group;\\n" ::);
    asm volatile("cp.async.wait_group 1;\\n" ::: "memory");
    __syncthreads();
    if (t == 0) {{  // Q fragments, kept in registers for every tile
#pragma unroll
      for (int kk = 0; kk < {ks}; ++kk) {{
        const int r = warp * 16 + (lane & 15), c = kk * 2 + (lane >> 4);
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{%0, %1, %2, %3}}, [%4];\\n"
                     : "=r"(qa[kk][0]), "=r"(qa[kk][1]), "=r"(qa[kk][2]), "=r"(qa[kk][3])
                     : "r"(sq + HWCOMP_FA_SW_D{d}(r, c)));
      }}
    }}
    const unsigned kt = sk + (t & 1) * {kv_bytes}u, vt = sv + (t & 1) * {kv_bytes}u;
    float s[{nt}][4];
#pragma unroll
    for (int j = 0; j < {nt}; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < {ks}; ++kk) {{
#pragma unroll
      for (int jp = 0; jp < {nt // 2}; ++jp) {{  // n-tiles 2jp, 2jp+1 (keys 16jp .. 16jp+15)
        unsigned b0, b1, b2, b3;
        const int r = jp * 16 + (lane & 7) + ((lane >> 4) << 3), c = kk * 2 + ((lane >> 3) & 1);
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{%0, %1, %2, %3}}, [%4];\\n"
                     : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3) : "r"(kt + HWCOMP_FA_SW_D{d}(r, c)));
        hwcomp_mma16816(s[2 * jp], qa[kk], b0, b1);
        hwcomp_mma16816(s[2 * jp + 1], qa[kk], b2, b3);
      }}
    }}
    // scale, mask, causal fill; running max
    float mx[2] = {{m_run[0], m_run[1]}};
#pragma unroll
    for (int j = 0; j < {nt}; ++j) {{
      const int key = t * {BKV} + j * 8 + (lane & 3) * 2;
{mask_add}{causal_fill}      mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
      mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
    }}
#pragma unroll
    for (int i = 0; i < 2; ++i) {{
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      const float alpha = exp2f((m_run[i] - mx[i]) * LOG2E);
      m_run[i] = mx[i];
      l_run[i] *= alpha;
#pragma unroll
      for (int j = 0; j < {dt}; ++j) {{ o[j][2 * i] *= alpha; o[j][2 * i + 1] *= alpha; }}
    }}
    // probabilities (unnormalized) as fp16 A fragments: S n-tiles 2u, 2u+1 are the k-step u of PV
    unsigned pa[{nt // 2}][4];
#pragma unroll
    for (int j = 0; j < {nt}; ++j) {{
      const float p0 = exp2f((s[j][0] - mx[0]) * LOG2E), p1 = exp2f((s[j][1] - mx[0]) * LOG2E);
      const float p2 = exp2f((s[j][2] - mx[1]) * LOG2E), p3 = exp2f((s[j][3] - mx[1]) * LOG2E);
      l_run[0] += p0 + p1;
      l_run[1] += p2 + p3;
      __half2 h01 = __floats2half2_rn(p0, p1), h23 = __floats2half2_rn(p2, p3);
      pa[j >> 1][(j & 1) * 2] = *reinterpret_cast<unsigned*>(&h01);
      pa[j >> 1][(j & 1) * 2 + 1] = *reinterpret_cast<unsigned*>(&h23);
    }}
#pragma unroll
    for (int u = 0; u < {nt // 2}; ++u) {{
#pragma unroll
      for (int jd = 0; jd < {dt // 2}; ++jd) {{  // O n-tiles 2jd, 2jd+1 (columns 16jd .. 16jd+15)
        unsigned b0, b1, b2, b3;
        const int r = u * 16 + (lane & 15), c = jd * 2 + (lane >> 4);
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {{%0, %1, %2, %3}}, [%4];\\n"
                     : "=r"(b0), "=r"(b1), "=r"(b2), "=r"(b3) : "r"(vt + HWCOMP_FA_SW_D{d}(r, c)));
        hwcomp_mma16816(o[2 * jd], pa[u], b0, b1);
        hwcomp_mma16816(o[2 * jd + 1], pa[u], b2, b3);
      }}
    }}
    __syncthreads();  // every warp is done with this stage before it is refilled
  }}
#undef HWCOMP_FA_LOAD_KV
  // row sums over the quad, normalize, store (heads merged: out[b, row, h*{d} + col])
#pragma unroll
  for (int i = 0; i < 2; ++i) {{
    l_run[i] += __shfl_xor_sync(0xffffffffu, l_run[i], 1);
    l_run[i] += __shfl_xor_sync(0xffffffffu, l_run[i], 2);
    l_run[i] = 1.0f / l_run[i];
  }}
  half* og = out + ((size_t)b * Sq + qrow0) * (H * {d}) + h * {d} + (lane & 3) * 2;
#pragma unroll
  for (int j = 0; j < {dt}; ++j) {{
{store0}__floats2half2_rn(o[j][0] * l_run[0], o[j][1] * l_run[0]);
{store1}
        __floats2half2_rn(o[j][2] * l_run[1], o[j][3] * l_run[1]);
  }}
}}
"""


def fused_wrapper(d: int, cfg: FlashConfig, causal: bool, has_mask: bool, tail: bool = False) -> str:
    """The ``_f`` variant: q, k and v are column blocks of one ``[B, S, 3*H*D]`` projection."""
    mask_param = "const float* __restrict__ mask, " if has_mask else ""
    mask_strides = ", int mask_bs, int mask_rs" if has_mask else ""
    return f"""
__device__ __forceinline__ void {function_name(d, cfg, causal, has_mask, True, tail)}(const half* __restrict__ qkv,
    {mask_param}half* __restrict__ out, unsigned char* smem_raw, int block, int B, int H, int Sq, int Sk,
    float scale{mask_strides}) {{
  {function_name(d, cfg, causal, has_mask, False, tail)}(qkv, qkv + H * {d}, qkv + 2 * H * {d}, {"mask, " if has_mask else ""}out,
      smem_raw, block, B, H, Sq, Sk, 3 * H * {d}, scale{", mask_bs, mask_rs" if has_mask else ""});
}}
"""


def sources_for(code: str) -> str:
    """The definitions of every flash-attention function ``code`` calls (for the CUDA postproc hook), or ''."""
    called = {(int(d), int(w), bool(c), bool(m), bool(t), bool(f)) for d, w, c, m, t, f in _NAME.findall(code)}
    called = {v for v in called if v[0] in HEAD_DIMS and v[1] in (1, 2, 4, 8)}
    if not called:
        return ""
    out = [f"#define HWCOMP_FA_SW_D{d}(r, c) {_swizzle_c(d)}\n" for d in sorted({v[0] for v in called})]
    # a fused variant calls the plain one: each plain function once, then the wrappers
    for d, w, c, m, t in sorted({v[:5] for v in called}):
        out.append(device_function(d, FlashConfig(w), c, m, t))
    for d, w, c, m, t, _ in sorted(v for v in called if v[5]):
        out.append(fused_wrapper(d, FlashConfig(w), c, m, t))
    return "".join(out)


def attention_func(b: int, s_q: int, s_k: int, h: int, d: int, scale: float, causal: bool = False,
                   has_mask: bool = False, mask_batch: int | None = None, mask_rows: int = 1,
                   fused: bool = False) -> tirx.PrimFunc:
    """Unscheduled definition with the parameters of :func:`attention_flash`: the three-kernel path's scores
    (scale, mask, causal fill; fp32) and PV (fp32 accumulation, heads merged) of schedules/attention.py, with the
    softmax between them giving fp16 probabilities."""
    hd = h * d
    if fused:
        qkv = te.placeholder((b, s_q, 3 * hd), "float16", name="qkv")
        q, k, v, offs = qkv, qkv, qkv, (0, hd, 2 * hd)
        inputs = [qkv]
    else:
        q = te.placeholder((b, s_q, hd), "float16", name="q")
        k = te.placeholder((b, s_k, hd), "float16", name="k")
        v = te.placeholder((b, s_k, hd), "float16", name="v")
        offs, inputs = (0, 0, 0), [q, k, v]
    mb = mask_batch_of(b, s_q, s_k, mask_batch, mask_rows) if has_mask else b
    mask = te.placeholder((mb, mask_rows, s_k), "float32", name="mask")
    sc = scores_compute(q, k, mask, h, d, "float32", scale, NEG_INF, causal, has_mask, offs[:2],
                        names=("scores_acc", "scores"))
    j1 = te.reduce_axis((0, s_k), name="j1")
    mx = te.compute((b, h, s_q), lambda bb, hh, i: te.max(sc[bb, hh, i, j1], axis=j1), name="row_max")
    j2 = te.reduce_axis((0, s_k), name="j2")
    sm = te.compute((b, h, s_q), lambda bb, hh, i: te.sum(tirx.exp(sc[bb, hh, i, j2] - mx[bb, hh, i]), axis=j2),
                    name="row_sum")
    p = te.compute((b, h, s_q, s_k), lambda bb, hh, i, j: (
        tirx.exp(sc[bb, hh, i, j] - mx[bb, hh, i]) / sm[bb, hh, i]).astype("float16"), name="probs")
    out = pv_compute(p, v, h, d, lambda acc, _c: acc.astype("float16"), offs[2], names=("pv_acc", "pv", "merge_heads"))
    args = inputs + ([mask] if has_mask else []) + [out]
    return te.create_prim_func(args).with_attr("global_symbol", "attention")


def attention_flash(b: int, s_q: int, s_k: int, h: int, d: int, scale: float, causal: bool = False,
                    has_mask: bool = False, mask_batch: int | None = None, mask_rows: int = 1, fused: bool = False,
                    config: FlashConfig | None = None) -> tirx.PrimFunc:
    """The launch PrimFunc: ``(q, k, v, [mask,] out)``, or with ``fused`` ``(qkv [B, S, 3*H*D], [mask,] out)``
    (then ``s_q == s_k``: one projection gives queries and keys)."""
    if not applicable(s_q, s_k, d):
        raise ScheduleError(f"flash attention: head dim {d} not in {HEAD_DIMS} (or an empty sequence); the "
                            "three-kernel attention (schedules/attention.py) covers it")
    if fused and s_q != s_k:
        raise ScheduleError(f"flash attention: a fused QKV projection has Sq = Sk (got {s_q}, {s_k})")
    cfg = config or pick_config(b, h, s_q)
    tail = has_tail(s_q, s_k, cfg)
    mb = mask_batch_of(b, s_q, s_k, mask_batch, mask_rows) if has_mask else b
    hd = h * d
    if fused:
        params = [("qkv", (b, s_q, 3 * hd), "float16")]
    else:
        params = [("q", (b, s_q, hd), "float16"), ("k", (b, s_k, hd), "float16"), ("v", (b, s_k, hd), "float16")]
    if has_mask:
        params.append(("mask", (mb, mask_rows, s_k), "float32"))
    params.append(("out", (b, s_q, hd), "float16"))
    extra = [b, h, s_q, s_k] + ([] if fused else [hd]) + [tirx.FloatImm("float32", scale)]
    if has_mask:
        extra += [mask_rows * s_k if mb > 1 else 0, s_k if mask_rows > 1 else 0]
    kernel = extern_launch(params, function_name(d, cfg, causal, has_mask, fused, tail), extra,
                           b * h * -(-s_q // cfg.rows), 32 * cfg.warps, smem_bytes(d, cfg))
    return kernel.with_attr("global_symbol", f"attention_flash_d{d}w{cfg.warps}").with_attr("tirx.is_scheduled", True)
