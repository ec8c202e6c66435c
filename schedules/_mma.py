"""Shared tensor-core (``mma.sync`` + ``ldmatrix``) schedule for hwcomp's GEMM kernels.

The PrimFunc must hold one reduction block named ``matmul`` (``acc[i, j] += A[i, k] * B[k, j]`` or
``B[j, k]`` when ``trans_b``) writing an intermediate buffer, followed by one spatial ``epilogue`` block
that reads it (bias, activation, requantization, casts). The schedule:

* tiles the output into ``block_m x block_n`` thread-block tiles and ``warp_m x warp_n`` warp tiles of
  16x16 mma fragments, with K chunks of ``chunk_k`` fragments staged through padded shared memory with
  16-byte vector loads;
* loads fragments with ``ldmatrix`` into the ``warp`` scope and issues ``mma.sync`` (m16n8k16 for fp16,
  m16n8k32 for int8) through TVM's registered intrinsics (``tvm.s_tir.tensor_intrin.cuda``);
* stores accumulators to dynamic shared memory and runs the epilogue from there, so the fp32/int32
  accumulator never travels to global memory (one write of the final dtype per output element).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tvm import s_tir
from tvm.s_tir import TensorIntrin

from .tensor_intrinsics import import_tensor_intrinsics

import_tensor_intrinsics()  # the plain import takes minutes on a loaded 2-core machine (tensor_intrinsics.py)
from tvm.s_tir.tensor_intrin.cuda import (  # noqa: E402
    get_ldmatrix_intrin,
    get_mma_intrin_group,
    get_mma_store_intrin,
    shared_16x16_to_ldmatrix_32x8_layout,
    shared_16x32_to_ldmatrix_32x16_layout,
)

from .errors import ScheduleError

# TVM registers no int32 accumulator -> shared.dyn store; the int8 epilogue needs one.
_I32_STORE = "mma_store_16x16_i32_shared_dyn_simple_"
if TensorIntrin.get(_I32_STORE, allow_missing=True) is None:
    TensorIntrin.register(_I32_STORE, *get_mma_store_intrin("int32", 8, "shared.dyn", False))
# Nor int8 ldmatrix from dynamic shared memory (the cp.async-pipelined stages live there).
for _name, _mat, _trans in (("mma_ldmatrix_i8_a_dyn", "A", False), ("mma_ldmatrix_i8_b_trans_dyn", "B", True)):
    if TensorIntrin.get(_name, allow_missing=True) is None:
        TensorIntrin.register(_name, *get_ldmatrix_intrin(32, "int8", _mat, _trans, "shared.dyn"))


@dataclass(frozen=True)
class MmaConfig:
    """Tile sizes, in 16x16 mma fragments, of one thread block of the GEMM."""

    warps_m: int = 2  # warps along M in a thread block
    warps_n: int = 2  # warps along N in a thread block
    frags_m: int = 4  # 16-row fragments per warp along M
    frags_n: int = 4  # 16-col fragments per warp along N
    chunk_k: int = 2  # K fragments per shared-memory stage
    # Shared-memory stages filled by cp.async ahead of the mma of the current stage (1: no pipeline, one
    # buffer, synchronous loads). Two stages with static shared memory were 5-25% slower on an H200.
    stages: int = 1
    # Double-buffered ldmatrix fragments: the fragments of K step k1+1 load while step k1 issues its mma.
    warp_pipeline: bool = False

    def __str__(self) -> str:
        tile = f"{self.warps_m}x{self.warps_n}x{self.frags_m}x{self.frags_n}x{self.chunk_k}"
        return tile + (f"s{self.stages}" if self.stages > 1 else "") + ("p" if self.warp_pipeline else "")

    @classmethod
    def parse(cls, text: str) -> "MmaConfig":
        """Inverse of ``str``: ``2x2x4x4x4s3p`` is a 2x2-warp tile of 4x4 fragments, 4 K fragments per stage,
        3 cp.async stages, double-buffered fragments."""
        m = re.fullmatch(r"(\d+)x(\d+)x(\d+)x(\d+)x(\d+)(?:s(\d+))?(p?)", text)
        if not m:
            raise ScheduleError(f"bad mma config {text!r}; expected e.g. 2x2x4x4x4s3p")
        *tile, stages, pipe = m.groups()
        return cls(*(int(v) for v in tile), stages=int(stages or 1), warp_pipeline=bool(pipe))

    @property
    def block_m(self) -> int:
        return 16 * self.warps_m * self.frags_m

    @property
    def block_n(self) -> int:
        return 16 * self.warps_n * self.frags_n

    def check(self, m: int, n: int, k: int, k_frag: int) -> None:
        for name, dim, tile in (("M", m, self.block_m), ("N", n, self.block_n), ("K", k, k_frag * self.chunk_k)):
            if dim % tile:
                raise ScheduleError(f"{name}={dim} is not a multiple of the tile {tile} of {self}; pad it")


def pick_config(m: int, n: int, k: int, k_frag: int = 16, num_sms: int = 132) -> MmaConfig:
    """The largest 4-warp tile that divides the problem and still gives about one thread block per SM
    (at least 0.7 per SM), with cp.async stages and double-buffered fragments.

    From the H100 sweep at BERT-base shapes (bench/gpu/kernels_pipeline_h100.json): with the copies
    pipelined, 128x128 tiles of 4 warps win at batch 32 (fp16 4096x768x3072: 85.7 us, 96.4 unpipelined);
    at batch 1 (M = 128) the tile that fills ~100 SMs wins: 32x32 for N = 768 (128x768x768: 5.2 vs 10.2 us
    for the old 16x32 one-warp tile; 128x768x3072: 14.0 vs 33.0 us), 64x64 for N = 3072 (8.9 vs 14.6 us).
    int8's 128x128 tile does best with two stages (2-3% over three)."""
    # (warps_m, warps_n, frags_m, frags_n), largest first: 2x2 warps, then 16-row tiles for M = 16 (decode)
    tiles = [(2, 2, 4, 4), (2, 2, 2, 4), (2, 2, 2, 2), (2, 2, 1, 2), (2, 2, 1, 1), (1, 2, 1, 2), (1, 1, 1, 2),
             (1, 1, 1, 1)]

    def config(wm: int, wn: int, fm: int, fn: int, chunk_k: int) -> MmaConfig:
        stages = 2 if (k_frag == 32 and (fm, fn) == (4, 4)) else 3
        return MmaConfig(wm, wn, fm, fn, chunk_k=chunk_k, stages=stages, warp_pipeline=chunk_k > 1)

    fitting = []
    for chunk_k in (4, 2, 1):  # K stages of 4 fragments, else 2, else 1 (e.g. int8 attention at head size 32)
        if k % (k_frag * chunk_k) == 0:
            fitting = [config(*t, chunk_k) for t in tiles
                       if m % (16 * t[0] * t[2]) == 0 and n % (16 * t[1] * t[3]) == 0]
            break
    if not fitting:
        raise ScheduleError(f"no mma tile divides M={m}, N={n}, K={k}; pad M and N to 16, K to {k_frag}")
    for c in fitting:
        if (m // c.block_m) * (n // c.block_n) >= 0.7 * num_sms:
            return c
    return fitting[-1]


def schedule_mma(sch: s_tir.Schedule, cfg: MmaConfig, in_dtype: str, acc_dtype: str,
                 trans_b: bool, matmul: str = "matmul") -> s_tir.Schedule:
    """Tensorize block ``matmul`` and fuse block ``epilogue`` into the same kernel (in place). The accumulator's
    name names its dynamic shared memory in the CUDA source, where kernels of one module share one namespace:
    accumulators of different dtypes need different names."""
    k_frag = 16 if in_dtype == "float16" else 32
    vec = 16 // (2 if in_dtype == "float16" else 1)  # elements per 16-byte load

    blk = sch.get_sblock(matmul)
    *batch, i, j, k = sch.get_loops(blk)
    m_ext, n_ext, k_ext = (int(sch.get(x).extent) for x in (i, j, k))
    cfg.check(m_ext, n_ext, k_ext, k_frag)
    k_steps = k_ext // (k_frag * cfg.chunk_k)
    stages = min(cfg.stages, k_steps)  # a pipeline deeper than the K loop has nothing to overlap
    # Several stages exceed the 48 KB of static shared memory: stage through dynamic shared memory, which the
    # accumulator tile then reuses (TVM merges dynamic allocations by liveness).
    smem_scope = "shared.dyn" if stages > 1 else "shared"
    intrin = get_mma_intrin_group(smem_scope, "shared.dyn", in_dtype, acc_dtype, False, trans_b, True)
    i, i_tc = sch.split(i, [None, 16])
    j, j_tc = sch.split(j, [None, 16])
    k, k_tc = sch.split(k, [None, k_frag])
    sch.reorder(i, j, k, i_tc, j_tc, k_tc)
    inner = sch.blockize(i_tc)
    outer, inner = inner, blk

    i0, i1, i2, i3 = sch.split(i, [None, cfg.warps_m, cfg.frags_m, 1])
    j0, j1, j2, j3 = sch.split(j, [None, cfg.warps_n, cfg.frags_n, 1])
    k0, k1, k2 = sch.split(k, [None, cfg.chunk_k, 1])
    sch.reorder(i0, j0, i1, j1, k0, k1, i2, j2, k2, i3, j3)
    n_outer = 2  # loops above the per-warp work: [blockIdx.y (batch)], blockIdx.x, threadIdx.y
    if batch:  # leading batch/head loops (attention): one grid row per batch entry
        by = sch.fuse(*batch) if len(batch) > 1 else batch[0]
        sch.bind(by, "blockIdx.y")
        n_outer = 3
    bx = sch.fuse(i0, j0)
    sch.bind(bx, "blockIdx.x")
    ty = sch.fuse(i1, j1)
    sch.bind(ty, "threadIdx.y")
    n_warps = cfg.warps_m * cfg.warps_n

    for idx in (0, 1):
        smem = sch.cache_read(outer, idx, smem_scope)
        sch.compute_at(smem, k0)
        fused = sch.fuse(*sch.get_loops(smem)[-2:])
        _, f_ty, f_tx, f_vec = sch.split(fused, [None, n_warps, 32, vec])
        sch.bind(f_tx, "threadIdx.x")
        sch.bind(f_ty, "threadIdx.y")
        sch.vectorize(f_vec)
        # Pad rows so that ldmatrix's eight row addresses fall in different banks.
        sch.storage_align(smem, 0, axis=-2, factor=32, offset=vec)

    a_warp = sch.cache_read(outer, 0, "warp")
    b_warp = sch.cache_read(outer, 1, "warp")
    sch.compute_at(a_warp, k1)
    sch.compute_at(b_warp, k1)
    c_warp = sch.cache_write(outer, 0, "warp")
    sch.reverse_compute_at(c_warp, ty)
    sch.set_scope(c_warp, 0, "shared.dyn")
    ci, cj = sch.get_loops(c_warp)[-2:]
    cio, cii = sch.split(ci, [None, 16])
    cjo, cji = sch.split(cj, [None, 16])
    sch.reorder(cio, cjo, cii, cji)

    # Epilogue: each warp finishes its own tile from shared memory, 4 elements per thread per step.
    epi = sch.get_sblock("epilogue")
    sch.reverse_compute_at(epi, ty)
    _, e_tx, e_vec = sch.split(sch.fuse(*sch.get_loops(epi)[n_outer:]), [None, 32, 4])
    sch.bind(e_tx, "threadIdx.x")
    sch.vectorize(e_vec)

    sch.decompose_reduction(outer, k0)
    init = sch.get_sblock(matmul + "_init")

    def frag_loop(b: s_tir.SBlockRV, rows: int, cols: int) -> s_tir.LoopRV:
        r, c = sch.get_loops(b)[-2:]
        r0, r1 = sch.split(r, [None, rows])
        c0, c1 = sch.split(c, [None, cols])
        sch.reorder(r0, c0, r1, c1)
        return r1

    loop_a = frag_loop(a_warp, 16, k_frag)
    loop_b = frag_loop(b_warp, 16, k_frag) if trans_b else frag_loop(b_warp, k_frag, 16)

    def layout(rows: int, cols: int, fn):
        def index_map(*idx):
            *lead, r, c = idx
            return (*lead, r // rows, c // cols, *fn(r % rows, c % cols))
        return index_map

    if in_dtype == "float16":
        map_a = map_b = layout(16, 16, shared_16x16_to_ldmatrix_32x8_layout)
    else:
        map_a = layout(16, 32, shared_16x32_to_ldmatrix_32x16_layout)
        if not trans_b:
            raise ScheduleError("int8 mma needs B as [N, K] (trans_b=True): ldmatrix cannot transpose bytes")
        map_b = map_a
    sch.transform_layout(a_warp, ("write", 0), map_a)
    sch.transform_layout(b_warp, ("write", 0), map_b)
    sch.transform_layout(c_warp, ("read", 0), layout(16, 16, shared_16x16_to_ldmatrix_32x8_layout))

    sch.tensorize(loop_a, intrin["load_a"])
    sch.tensorize(loop_b, intrin["load_b"])
    sch.tensorize(sch.get_loops(inner)[-3], intrin["compute"])
    sch.tensorize(sch.get_loops(init)[-2], intrin["init"])
    sch.tensorize(sch.get_loops(c_warp)[-2], intrin["store"])
    warp_pipeline = cfg.warp_pipeline and cfg.chunk_k > 1
    if warp_pipeline:
        # k1's body: A fragments, B fragments, mma. Injected first (inner loop): k1 becomes prologue, loop
        # and epilogue, three statements of k0's body.
        sch.annotate(k1, "software_pipeline_stage", [0, 0, 1])
        sch.annotate(k1, "software_pipeline_order", [0, 1, 2])
    if stages > 1:
        # k0's body: A copy, B copy, the k1 work. The copies of step k0+stages-1 are issued asynchronously
        # (cp.async into a ring of `stages` shared buffers) before the mma of step k0.
        n_mma = 3 if warp_pipeline else 1
        sch.annotate(k0, "software_pipeline_stage", [0, 0] + [stages - 1] * n_mma)
        sch.annotate(k0, "software_pipeline_order", list(range(2 + n_mma)))
        sch.annotate(k0, "software_pipeline_async_stages", [0])
    return sch
