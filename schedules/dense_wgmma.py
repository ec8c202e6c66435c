"""``dense`` fp16 on Hopper's warpgroup tensor cores (``wgmma``, sm_90a): ``act(x[M, K] @ w[N, K]^T + bias)``.

``mma.sync`` (schedules/_mma.py) tops out near 200-280 TFLOP/s on an H100; the sm_90 tensor cores are fed at
full rate only by ``wgmma.mma_async``, whose operands come straight from shared memory through 64-bit matrix
descriptors. TVM 0.27 has no wgmma intrinsics for sm_90 (its TIRx async GEMM targets Blackwell's tcgen05), so
the main loop of this kernel is a CUDA ``__device__`` function generated here and added to the module's CUDA
source by the postproc hook (schedules/cuda_device_functions.py); the PrimFunc is its launch: one thread block
of two warpgroups (256 threads) per ``128 x bn`` output tile, dynamic shared memory from TVM.

The kernel, per thread block:

* a ring of ``stages`` shared-memory stages, each holding the tile's ``128 x 64`` slice of x and ``bn x 64``
  slice of w, K-major (hwcomp stores w as ``[N, K]`` for this kernel, transposed once at compile time), in the
  128-byte swizzle wgmma reads (16-byte chunk ``c`` of row ``r`` at chunk ``c ^ (r % 8)``; 1024-byte aligned);
* ``cp.async`` copies ``stages - 1 - inflight`` K-steps ahead of the tensor cores, ``fence.proxy.async``
  before wgmma reads what they wrote;
* per K-step of 64, each warpgroup issues four ``wgmma m64n{bn}k16`` (fp16 x fp16 -> fp32) on its 64 rows and
  keeps ``inflight`` (0 or 1) steps running while the next is issued (``wgmma.wait_group``), so that a stage
  is refilled only after the wgmma that read it has finished;
* the fp32 accumulators (``bn / 2`` registers a thread) get bias and activation in fp32, then go through the
  idle ring as a ``128 x bn`` fp32 tile so that the global stores are row-contiguous: one rounding to fp16,
  or, for a graph output (an LM head's logits), fp32 of the first ``n_out`` columns.

Thread blocks take tiles along a row band of the output (consecutive blocks share x's rows), or, for weights
larger than half of L2 (an LM head), down the rows of a column band (``r``): each band of w is then read from HBM
once, where a row-band walk streams all of w again for every 128 rows of x.

Tiles must divide the problem: M by 128, N by ``bn`` (64, 96, 128, 192 or 256), K by 64 (the lowering pads N of
vocabulary-wide weights). Activations and their formulas are those of schedules/dense.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from tvm import te, tirx

from .cuda_device_functions import extern_launch
from .dense import ACTIVATIONS, _bias_activation, activation
from .errors import ScheduleError

BM = 128  # rows of a thread block's tile: two warpgroups of 64 (the default; 64: one warpgroup, see WgmmaConfig.bm)
WIDTHS = (64, 96, 128, 192, 256)  # tile widths: wgmma N, a multiple of the 32 rows one pass of copies fills
BK = 64  # K per stage: one 128-byte swizzle row of fp16
_PAD = 8  # floats of padding per row of the epilogue's staging tile (bank spread of the fragment writes)
ARCHS = ("sm_90", "sm_90a")  # wgmma is sm_90a's; hwcomp's CUDA compile hook builds such sources for sm_90a


@dataclass(frozen=True)
class WgmmaConfig:
    bn: int = 128  # tile width = the wgmma instruction's N
    stages: int = 4  # shared-memory ring
    inflight: int = 1  # K-steps of wgmma left running while the next is issued (0: wait for each)
    bm: int = BM  # tile rows: 128 (two warpgroups, 256 threads) or 64 (one, 128 threads: few-row GEMMs)
    mfirst: bool = False  # tile order: down the rows of a column band first (x stays in L2, w is read once)

    def __str__(self) -> str:
        return (("m64" if self.bm == 64 else "") + f"n{self.bn}s{self.stages}" + ("w0" if self.inflight == 0 else "")
                + ("r" if self.mfirst else ""))

    @classmethod
    def parse(cls, text: str) -> "WgmmaConfig":
        m = re.fullmatch(r"(m64)?n(\d+)s(\d+)(w0)?(r)?", text)
        if not m:
            raise ScheduleError(f"bad wgmma config {text!r}; expected e.g. n128s4, n128s3w0, n128s3r or m64n64s4 "
                                "(r: tiles down the rows first)")
        return cls(int(m.group(2)), int(m.group(3)), 0 if m.group(4) else 1, 64 if m.group(1) else BM,
                   bool(m.group(5)))

    @property
    def threads(self) -> int:
        return 2 * self.bm  # a warpgroup (128 threads) per 64 rows

    @property
    def prefetch(self) -> int:
        """K-steps the copies run ahead: a stage is refilled once the wgmma that read it has finished."""
        return self.stages - 1 - self.inflight

    def check(self, m: int, n: int, k: int, bk: int = BK) -> None:
        if self.bn not in WIDTHS:
            raise ScheduleError(f"wgmma tile width {self.bn} is not one of {WIDTHS}")
        if self.bm not in (64, 128):
            raise ScheduleError(f"wgmma tile rows {self.bm} is not 64 or 128")
        if not 3 <= self.stages <= 8 or self.inflight not in (0, 1):
            raise ScheduleError(f"wgmma config {self}: stages outside 3..8 or wgmma in flight not 0 or 1")
        if self.smem_bytes > 227 * 1024:
            raise ScheduleError(f"wgmma config {self} needs {self.smem_bytes} B of shared memory (> 227 KiB)")
        for name, dim, tile in (("M", m, self.bm), ("N", n, self.bn), ("K", k, bk)):
            if dim % tile:
                raise ScheduleError(f"{name}={dim} is not a multiple of the wgmma tile {tile} ({self}); pad it")

    @property
    def a_stage_bytes(self) -> int:
        return self.bm * BK * 2

    @property
    def b_stage_bytes(self) -> int:
        return self.bn * BK * 2

    @property
    def ring_bytes(self) -> int:
        return self.stages * (self.a_stage_bytes + self.b_stage_bytes)

    @property
    def staging_bytes(self) -> int:  # the epilogue's bm x bn tile of 4-byte values (float32 / int32)
        return self.bm * (self.bn + _PAD) * 4

    @property
    def smem_bytes(self) -> int:  # the ring, or the epilogue's staging tile in it; + 1024 to align to the swizzle
        return max(self.ring_bytes, self.staging_bytes) + 1024

    def blocks(self, m: int, n: int) -> int:
        return (m // self.bm) * (n // self.bn)


SMALL_M = WgmmaConfig(64, 6, bm=64)  # few rows (batch 1 x seq 128): one warpgroup, 64x64 tiles, 6 stages


def _fills(m: int, n: int, num_sms: int) -> bool:
    """Whether 128-row tiles (128x64 at the narrowest) give at least a thread block per SM."""
    return m % BM == 0 and (m // BM) * (n // 64) >= num_sms


L2_WEIGHT_BYTES = 24 << 20  # weights above half the H100/H200's 50 MB L2: tiles go down the rows first
ROW_FIRST = WgmmaConfig(128, 3, inflight=0, mfirst=True)


def weights_exceed_l2(n: int, weight_bytes: int) -> bool:
    """Whether a GEMM's tiles go down the rows first (:data:`ROW_FIRST`): its weights are larger than
    :data:`L2_WEIGHT_BYTES` and N is a multiple of that config's tile width."""
    return weight_bytes > L2_WEIGHT_BYTES and n % ROW_FIRST.bn == 0


LONG_K_STEPS = 24  # K-steps (of 128 bytes) from which a GEMM is long-K: one wave of wide tiles beats two narrow


def pick_config(m: int, n: int, k: int, num_sms: int = 132) -> WgmmaConfig:
    """From the H200 sweeps (bench/gpu/kernels_wgmma_h200.json, kernels_tiles_s12_h200.json,
    kernels_wgmma_b1_h200.json), BERT-base / GPT-2 small batch-32 shapes:

    * weights larger than :data:`L2_WEIGHT_BYTES` (an LM head, 50304x768 fp16 = 77 MB): tiles down the rows of a
      column band first, so that each band of w is read from HBM once and all of x stays in L2 (4096x50304x768
      with fp32 logits: 796-811 us, 877-964 row band first);
    * long K (24+ K-steps) where 128x192 tiles fill most of one wave: those, 4 stages (4096x768x3072: 29.5 us
      against 34.8 for 96 tiles of 128x256, 34.2 for 128x96; in BERT-base, 28.9 against 34.0). Both are one
      thread block an SM: such a block has nothing to hide its loads' latency under but its own prefetch, so a
      sweep whose inputs sit in L2 flatters it -- 128x192 tiles for 4096x768x768 took 10.7 us there against 12.7
      for 128x128, but 13.2 in BERT-base against 11.6 (bench/gpu/e2e_bert_profile_s12_h200.json);
    * for K = 768, 128x128 tiles with 3 stages (97 KiB of shared memory: two thread blocks per SM, one's prologue
      and epilogue under the other's main loop) and each K-step's wgmma waited for before the next (the copies then
      run two steps ahead): 4096x3072x768 47.7 us (50.0 with one step in flight, 59.3 with 4 stages); 128x256
      with 4 stages for long K where 128x192 does not divide N; 128x64 when 128-wide tiles would leave most SMs idle;
    * with too few rows for 128-row tiles to fill the GPU (batch 1, M = 128), 64x64 tiles of one warpgroup with 6
      stages: 128x2304x768 4.4 us (mma.sync 9.6), 128x3072x768 + GELU 5.4, 128x768x768 4.2 (4.6 at 4 stages,
      5.5-6.1 at 64x128)."""
    if not _fills(m, n, num_sms):
        return SMALL_M
    tiles = lambda bn: (m // BM) * (n // bn)  # noqa: E731
    if weights_exceed_l2(n, n * k * 2):
        return ROW_FIRST
    if k // BK >= LONG_K_STEPS and n % 192 == 0 and 0.75 * num_sms <= tiles(192) <= num_sms:
        return WgmmaConfig(192, 4)
    if k >= 2048 and n % 256 == 0 and tiles(256) >= 0.5 * num_sms:
        return WgmmaConfig(256, 4)
    if n % 128 == 0 and tiles(128) >= 0.5 * num_sms:
        return WgmmaConfig(128, 3, inflight=0)
    return WgmmaConfig(64, 4)


def applicable(m: int, n: int, k: int, num_sms: int = 132) -> bool:
    """Whether the wgmma kernel covers the shape and pays off: tiles divide it, and either 128-row tiles occupy
    the GPU or (few rows) K is short enough for one thread block to walk (longer K at few rows is split-K
    mma.sync's: 128x768x3072 9.7 us against 11.1 for 64-row wgmma tiles)."""
    if n % 64 or k % BK:
        return False
    return _fills(m, n, num_sms) or (m % SMALL_M.bm == 0 and k < 2048)


def dense_f16_nk_func(m: int, n: int, k: int, act: str = "none", has_bias: bool = True,
                      n_out: int | None = None, lead: tuple[int, ...] | None = None) -> tirx.PrimFunc:
    """Unscheduled definition ``dense(x [M, K], w [N, K], [bias [N],] out [M, N])`` (w as the kernel reads it);
    with ``n_out``: ``out [M, n_out]`` float32, the first ``n_out`` columns, activation applied, not rounded to
    fp16 (an LM head's logits, written as the graph's fp32 output), shaped ``[*lead, n_out]`` when ``lead``
    (row-major leading dims whose product is M) is given."""
    x = te.placeholder((m, k), "float16", name="x")
    w = te.placeholder((n, k), "float16", name="w")
    b = te.placeholder((n,), "float16", name="bias")
    r = te.reduce_axis((0, k), name="k")
    acc = te.compute((m, n), lambda i, j: te.sum(x[i, r].astype("float32") * w[j, r].astype("float32"), axis=r),
                     name="matmul")
    if n_out is None:
        out = te.compute((m, n), lambda i, j: _bias_activation(acc[i, j], b[j] if has_bias else None, act),
                         name="epilogue")
    else:
        lead = tuple(lead or (m,))
        if int(np.prod(lead)) != m:
            raise ScheduleError(f"output rows {lead} do not multiply to M={m}")

        def flat(idx):  # row-major index of the leading dims = the GEMM row
            i = idx[0]
            for d, v in zip(lead[1:], idx[1:]):
                i = i * d + v
            return i

        out = te.compute((*lead, n_out), lambda *idx: activation(
            acc[flat(idx[:-1]), idx[-1]] + b[idx[-1]].astype("float32") if has_bias
            else acc[flat(idx[:-1]), idx[-1]], act), name="epilogue")
    args = [x, w, b, out] if has_bias else [x, w, out]
    return te.create_prim_func(args).with_attr("global_symbol", f"dense_f16_nk_{act}")


# ---- the CUDA device function --------------------------------------------------------------------------------

_ACT_C = {
    "none": "v",
    "gelu": "0.5f * v * (1.0f + erff(v * 0.7071067811865476f))",
    "gelu_tanh": "0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)))",
    "relu": "fmaxf(v, 0.0f)",
    "tanh": "tanhf(v)",
}
assert set(_ACT_C) == set(ACTIVATIONS)

PREFIX = "hwcomp_wgmma_dense_f16_"
_NAME = re.compile(PREFIX + r"((?:m64)?n\d+s\d+(?:w0)?r?)_([a-z_]+?)(_b)?(_o32)?(?=\()")


def function_name(cfg: WgmmaConfig, act: str, has_bias: bool, out_f32: bool = False) -> str:
    return f"{PREFIX}{cfg}_{act}{'_b' if has_bias else ''}{'_o32' if out_f32 else ''}"


@dataclass(frozen=True)
class Operands:
    """Element type of the main loop's x and w (both K-major, 128 bytes of K per stage row) and its wgmma."""

    ctype: str  # C type of an x / w element
    size: int  # bytes an element
    ptx: str  # wgmma shape suffix after m64n{bn}: kK.dtype.atype.btype
    acc_t: str  # C type of an accumulator register
    acc_zero: str
    constraint: str  # asm constraint of an accumulator register
    scale_ab: str  # wgmma's imm-scale-a/b and transpose operands (fp16 only)

    @property
    def bk(self) -> int:
        return 128 // self.size  # K per stage: one 128-byte swizzle row

    @property
    def k_instr(self) -> int:
        return 32 // self.size  # K of one wgmma instruction: 32 bytes of the swizzle row


F16 = Operands("half", 2, "k16.f32.f16.f16", "float", "0.0f", "+f", ", 1, 1, 0, 0")
S8 = Operands("signed char", 1, "k32.s32.s8.s8", "int", "0", "+r", "")  # int8 x int8 -> int32 (wrapping)


def _wgmma_asm(bn: int, ops: Operands = F16) -> str:
    """``wgmma.mma_async m64n{bn}`` accumulating into ``acc[0 .. bn/2)`` (operands from descriptors)."""
    regs = bn // 2
    outs = ", ".join(f"%{i}" for i in range(regs))
    constraints = ", ".join(f'"{ops.constraint}"(acc[{i}])' for i in range(regs))
    return (f'  asm volatile("{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{regs + 2}, 0;\\n"\n'
            f'      "wgmma.mma_async.sync.aligned.m64n{bn}{ops.ptx} {{{outs}}}, %{regs}, %{regs + 1}, '
            f'p{ops.scale_ab};\\n}}\\n"\n'
            f'      : {constraints}\n'
            f'      : "l"(da), "l"(db), "r"(1));\n')


def mainloop(cfg: WgmmaConfig, ops: Operands = F16) -> str:
    """CUDA statements of the main loop: the tile's ``acc[bn / 2]`` of ``x [M, K] . w [N, K]^T`` for thread block
    ``block`` (``x``, ``w``, ``smem_raw``, ``block``, ``M``, ``N``, ``K`` in scope); defines ``tid``, ``m0``, ``n0``
    and ``ring`` (the 1024-aligned shared address of the ring, which the epilogue may reuse)."""
    bn, stages, ahead, bm, threads = cfg.bn, cfg.stages, cfg.prefetch, cfg.bm, cfg.threads
    rpp = threads // 8  # rows one pass of copies covers (8 threads a 128-byte row)
    bk, per_chunk = ops.bk, 16 // ops.size
    if cfg.mfirst:  # down the rows of a column band: concurrent blocks share w's band, all of x stays in L2
        m0, n0 = f"(block % (M / {bm})) * {bm}", f"(block / (M / {bm})) * {bn}"
    else:
        m0, n0 = f"(block / (N / {bn})) * {bm}", f"(block % (N / {bn})) * {bn}"
    return f"""  const int tid = threadIdx.x;
  const int m0 = {m0}, n0 = {n0};
  const unsigned ring = ((unsigned)__cvta_generic_to_shared(smem_raw) + 1023u) & ~1023u;
  const unsigned a_ring = ring, b_ring = ring + {stages * cfg.a_stage_bytes}u;
  const int steps = K / {bk};
  const int chunk = tid & 7, row = tid >> 3;  // this thread's 16-byte chunk of a 128-byte row, and first row
  const {ops.ctype}* xg = x + (size_t)(m0 + row) * K + chunk * {per_chunk};
  const {ops.ctype}* wg = w + (size_t)(n0 + row) * K + chunk * {per_chunk};
  const unsigned sw = (unsigned)((chunk ^ (row & 7)) << 4) + row * 128u;  // swizzled offset (rows step by {rpp})
  {ops.acc_t} acc[{bn // 2}];
#pragma unroll
  for (int i = 0; i < {bn // 2}; ++i) acc[i] = {ops.acc_zero};

#define HWCOMP_LOAD(step)                                                                     \\
  do {{                                                                                        \\
    const int s_ = (step) % {stages};                                                          \\
    const size_t k_ = (size_t)(step) * {bk};                                                   \\
    _Pragma("unroll") for (int i = 0; i < {bm // rpp}; ++i)                                    \\
      hwcomp_cp_async16(a_ring + s_ * {cfg.a_stage_bytes}u + sw + i * {rpp * 128}u, xg + (size_t)i * {rpp} * K + k_); \\
    _Pragma("unroll") for (int i = 0; i < {bn // rpp}; ++i)                                    \\
      hwcomp_cp_async16(b_ring + s_ * {cfg.b_stage_bytes}u + sw + i * {rpp * 128}u, wg + (size_t)i * {rpp} * K + k_); \\
  }} while (0)

  // prologue: the first {ahead} K-steps in flight ({stages - ahead} stages are being read by wgmma)
#pragma unroll
  for (int s = 0; s < {ahead}; ++s) {{
    if (s < steps) HWCOMP_LOAD(s);
    asm volatile("cp.async.commit_group;\\n" ::);
  }}
  const unsigned a_wg = (tid >> 7) * {64 * 128}u;  // this warpgroup's 64 rows of the x tile
  for (int step = 0; step < steps; ++step) {{
    asm volatile("cp.async.wait_group {ahead - 1};\\n" ::: "memory");  // this thread's copies of `step`
    asm volatile("fence.proxy.async.shared::cta;\\n" ::: "memory");  // visible to the tensor cores
    __syncthreads();  // everyone's copies landed; the wgmma of step - {1 + cfg.inflight} finished everywhere
    if (step + {ahead} < steps) HWCOMP_LOAD(step + {ahead});
    asm volatile("cp.async.commit_group;\\n" ::);
    const int s = step % {stages};
    asm volatile("wgmma.fence.sync.aligned;\\n" ::: "memory");
#pragma unroll
    for (int kk = 0; kk < {bk // ops.k_instr}; ++kk) {{
      const unsigned long long da = hwcomp_gmma_desc(a_ring + s * {cfg.a_stage_bytes}u + a_wg + kk * 32u);
      const unsigned long long db = hwcomp_gmma_desc(b_ring + s * {cfg.b_stage_bytes}u + kk * 32u);
{_wgmma_asm(bn, ops)}    }}
    asm volatile("wgmma.commit_group.sync.aligned;\\n" ::: "memory");
    asm volatile("wgmma.wait_group.sync.aligned {cfg.inflight};\\n" ::: "memory");
  }}
  asm volatile("wgmma.wait_group.sync.aligned 0;\\n" ::: "memory");
#undef HWCOMP_LOAD
  __syncthreads();  // every warpgroup's wgmma has read its last stage: the ring is the epilogue's now
"""


def device_function(cfg: WgmmaConfig, act: str, has_bias: bool, out_f32: bool = False) -> str:
    """CUDA source of ``function_name(cfg, act, has_bias, out_f32)`` (see the module docstring). ``y`` has
    ``n_out`` columns (its row stride): fp16 output needs ``n_out == N``; fp32 output writes the first ``n_out``
    of the ``N`` computed columns (an LM head's logits without the padding)."""
    bn, bm, threads = cfg.bn, cfg.bm, cfg.threads
    name = function_name(cfg, act, has_bias, out_f32)
    bias_param = "const half* __restrict__ bias, " if has_bias else ""
    bias_add = ("      v0 += __half2float(bias[col]); v1 += __half2float(bias[col + 1]);\n"
                if has_bias else "")
    if out_f32:  # consecutive threads, consecutive columns of a row (n_out may be odd: no vectors)
        out_t = "float"
        store = (f"  for (int i = tid; i < {bm * bn}; i += {threads}) {{\n"
                 f"    const int r = i / {bn}, c = i % {bn};\n"
                 f"    if (n0 + c < n_out) y[(size_t)(m0 + r) * n_out + n0 + c] = tile_f[r * {bn + _PAD} + c];\n"
                 f"  }}\n")
    else:  # two columns a thread, one half2
        out_t = "half"
        store = (f"  for (int i = tid; i < {bm * bn // 2}; i += {threads}) {{\n"
                 f"    const int r = i / {bn // 2}, c = (i % {bn // 2}) * 2;\n"
                 f"    const float2 v = *reinterpret_cast<const float2*>(tile_f + r * {bn + _PAD} + c);\n"
                 f"    *reinterpret_cast<__half2*>(y + (size_t)(m0 + r) * n_out + n0 + c) = __floats2half2_rn(v.x, v.y);\n"
                 f"  }}\n")
    return f"""
__device__ __forceinline__ float {name}_act(float v) {{ return {_ACT_C[act]}; }}
__device__ __forceinline__ void {name}(const half* __restrict__ x, const half* __restrict__ w, {bias_param}
    {out_t}* __restrict__ y, unsigned char* smem_raw, int block, int M, int N, int K, int n_out) {{
{mainloop(cfg)}
  // epilogue: bias and activation on the fp32 accumulators, staged through the (now idle) ring as a
  // {bm} x {bn} fp32 tile so that global stores are row-contiguous. Accumulator fragment: warp w of a
  // warpgroup holds rows 16w + lane/4 (+8), columns 8j + 2*(lane%4) (+1).
{_STAGE_PROLOGUE.format(t="float", v="tile_f")}#pragma unroll
  for (int j = 0; j < {bn // 8}; ++j) {{
    const int c = j * 8 + (lane & 3) * 2, col = n0 + c;
#pragma unroll
    for (int h = 0; h < 2; ++h) {{
      float v0 = acc[4 * j + 2 * h], v1 = acc[4 * j + 2 * h + 1];
{bias_add}      *reinterpret_cast<float2*>(tile_f + (tr + 8 * h) * {bn + _PAD} + c) =
          make_float2({name}_act(v0), {name}_act(v1));
    }}
  }}
  __syncthreads();
{store}}}
"""


# the epilogue's start: its staging tile; tr = this thread's first fragment row
_STAGE_PROLOGUE = """  {t}* {v} = reinterpret_cast<{t}*>(smem_raw + (ring - (unsigned)__cvta_generic_to_shared(smem_raw)));
  const int lane = tid & 31;
  const int tr = (tid >> 7) * 64 + ((tid >> 5) & 3) * 16 + (lane >> 2);
"""


def sources_for(code: str) -> str:
    """The definitions of every wgmma dense function ``code`` calls (for the CUDA postproc hook), or ''."""
    names = sorted(set(_NAME.findall(code)))
    if not names:
        return ""
    out = []
    for cfg, act, bias, o32 in names:
        if act in _ACT_C:
            out.append(device_function(WgmmaConfig.parse(cfg), act, bool(bias), bool(o32)))
    return "".join(out)


def dense_f16_wgmma(m: int, n: int, k: int, act: str = "none", has_bias: bool = True,
                    config: WgmmaConfig | None = None, n_out: int | None = None,
                    lead: tuple[int, ...] | None = None) -> tirx.PrimFunc:
    """The launch PrimFunc of the wgmma kernel; same parameters as :func:`dense_f16_nk_func` (``n_out`` given:
    fp32 output of the first ``n_out`` columns, shaped ``[*lead, n_out]``: the graph output's own shape, so
    that no reshape copies it)."""
    if act not in _ACT_C:
        raise ScheduleError(f"dense activation {act!r} is not one of {ACTIVATIONS}")
    cfg = config or pick_config(m, n, k)
    cfg.check(m, n, k)
    out_f32 = n_out is not None
    if out_f32 and not 0 < n_out <= n:
        raise ScheduleError(f"wgmma dense: {n_out} output columns of {n}")
    width = n_out if out_f32 else n
    y_shape = (*(lead or (m,)), width) if out_f32 else (m, n)
    params = [("x", (m, k), "float16"), ("w", (n, k), "float16")] + ([("bias", (n,), "float16")] if has_bias else [])
    params.append(("y", y_shape, "float32" if out_f32 else "float16"))
    kernel = extern_launch(params, function_name(cfg, act, has_bias, out_f32), [m, n, k, width],
                           cfg.blocks(m, n), cfg.threads, cfg.smem_bytes)
    return kernel.with_attr("global_symbol", f"dense_f16_wgmma_{cfg}").with_attr("tirx.is_scheduled", True)
