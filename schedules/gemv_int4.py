"""Weight-only int4 GEMV for batch-1 decode: ``y[M, N] = x[M, K] @ dequant(w)^T`` with the dequant fused.

Layouts (the lowering packs the constant weight once):

* x ``[M, K]`` fp16, M small (1..8 decode rows);
* w ``[N, K // 2]`` uint8, 4-bit codes, 8 per little-endian 32-bit word: codes k = 8u .. 8u+7 sit in word u
  at nibbles 0, 4, 1, 5, 2, 6, 3, 7 (:func:`pack_codes`), so ``(word >> 4j) & 0x000F000F`` holds codes 2j and
  2j+1 in its two 16-bit halves, the order of x's half2 pairs;
* scale, zero ``[N, K // group]`` fp16, asymmetric: ``w[n, k] = (code - zero[n, k // group]) * scale[n, k // group]``
  (``zero`` holds the integer zero point as fp16, so codes and zero points are exact);
* y ``[M, N]`` fp16, fp32 accumulation. :func:`pack_int4` builds (w, scale, zero) from a float ``[K, N]``.

Kernel: :func:`gemv_int4_kernel`, hwcomp's own TensorIR (thread layout from :func:`pick_config`); dlight's
``gpu.GEMV`` / ``gpu.LowBatchGEMV`` rules on the definition are the peer it is benchmarked against.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import te, tirx
from tvm.s_tir import dlight as dl

from .dense import _bias_activation
from .errors import ScheduleError


# nibble position, in its 32-bit word, of code k % 8: "pairs" is hwcomp's kernel layout (module docstring);
# "sequential" (code k in nibble k) is the plain layout, kept for the dlight peer in bench/gpu/kernels.py
NIBBLE_OF = {"pairs": (0, 4, 1, 5, 2, 6, 3, 7), "sequential": (0, 1, 2, 3, 4, 5, 6, 7)}


def pack_codes(codes: np.ndarray, layout: str = "pairs") -> np.ndarray:
    """4-bit codes ``[N, K]`` (K % 8 == 0) -> packed ``[N, K // 2]`` uint8 (module docstring)."""
    n, k = codes.shape
    if k % 8:
        raise ScheduleError(f"int4 packing needs K % 8 == 0 (K={k})")
    by_nibble = np.empty((n, k // 8, 8), np.uint8)
    by_nibble[..., list(NIBBLE_OF[layout])] = codes.reshape(n, k // 8, 8).astype(np.uint8) & 15
    return (by_nibble[..., 0::2] | (by_nibble[..., 1::2] << 4)).reshape(n, k // 2).astype(np.uint8)


def unpack_codes(packed: np.ndarray, layout: str = "pairs") -> np.ndarray:
    """Inverse of :func:`pack_codes`."""
    n, kh = packed.shape
    by_nibble = np.empty((n, kh // 4, 8), np.uint8)
    words = packed.reshape(n, kh // 4, 4)
    by_nibble[..., 0::2], by_nibble[..., 1::2] = words & 15, words >> 4
    return by_nibble[..., list(NIBBLE_OF[layout])].reshape(n, 2 * kh)


def pack_int4(w_kn: np.ndarray, group: int = 128, layout: str = "pairs"
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group-wise asymmetric 4-bit quantization of a float ``[K, N]`` weight -> (packed, scale, zero)."""
    k, n = w_kn.shape
    if k % group or group % 8:
        raise ScheduleError(f"int4 group {group} must be a multiple of 8 and divide K={k}")
    w = w_kn.T.astype(np.float32).reshape(n, k // group, group)
    lo, hi = w.min(-1), w.max(-1)
    scale = np.maximum(hi - lo, 1e-8) / 15.0
    zero = np.clip(np.round(-lo / scale), 0, 15)
    codes = np.clip(np.round(w / scale[..., None] + zero[..., None]), 0, 15).astype(np.uint8).reshape(n, k)
    return pack_codes(codes, layout), scale.astype(np.float16), zero.astype(np.float16)


def unpack_int4(packed: np.ndarray, scale: np.ndarray, zero: np.ndarray, group: int, layout: str = "pairs"
                ) -> np.ndarray:
    """Float ``[N, K]`` weight that the kernel multiplies by (fp32)."""
    codes = unpack_codes(packed, layout).astype(np.float32)
    g = np.arange(codes.shape[1]) // group
    return (codes - zero.astype(np.float32)[:, g]) * scale.astype(np.float32)[:, g]


def gemv_int4_func(m: int, n: int, k: int, group: int = 128, layout: str = "pairs", act: str = "none"
                   ) -> tirx.PrimFunc:
    """The definition ``gemv_int4(x, w, scale, zero, bias, y)`` (CPU reference, dlight's input): decode each
    code to fp16, fp32 accumulation; the epilogue adds the bias ``[N]`` fp16 to the fp32 sum and applies
    ``act`` ("none", "gelu", "gelu_tanh", "relu", "tanh") in fp32 before the one rounding to fp16."""
    if k % group or group % 8:
        raise ScheduleError(f"int4 group {group} must be a multiple of 8 and divide K={k}")
    x = te.placeholder((m, k), "float16", name="x")
    w = te.placeholder((n, k // 2), "uint8", name="w")
    scale = te.placeholder((n, k // group), "float16", name="scale")
    zero = te.placeholder((n, k // group), "float16", name="zero")

    def decode(j, kk):
        kw = kk % 8
        nib = kw // 2 + (kw % 2) * 4 if layout == "pairs" else kw  # NIBBLE_OF[layout][kw]
        code = (w[j, (kk // 8) * 4 + nib // 2] >> ((nib % 2) * 4).astype("uint8")) & tirx.const(15, "uint8")
        return (code.astype("float16") - zero[j, kk // group]) * scale[j, kk // group]

    deq = te.compute((n, k), decode, name="decode")
    r = te.reduce_axis((0, k), name="k")
    acc = te.compute((m, n), lambda i, j: te.sum(x[i, r].astype("float32") * deq[j, r].astype("float32"), axis=r),
                     name="gemv")
    bias = te.placeholder((n,), "float16", name="bias")
    y = te.compute((m, n), lambda i, j: _bias_activation(acc[i, j], bias[j], act), name="cast")
    return te.create_prim_func([x, w, scale, zero, bias, y]).with_attr("global_symbol", "gemv_int4")


CHUNK = 32  # codes per 16-byte load of packed weights


def kernel_supports(k: int, group: int) -> bool:
    """Whether :func:`gemv_int4_kernel` covers K and the group size: both multiples of a 32-code chunk (so no
    chunk straddles a group) and the group dividing K."""
    return k % CHUNK == 0 and group % CHUNK == 0 and k % group == 0


@dataclass(frozen=True)
class GemvInt4Config:
    """Thread layout of :func:`gemv_int4_kernel`: ``lanes`` consecutive lanes of a warp share one output column
    and take turns over its 16-byte chunks of packed K, ``unroll`` chunks per lane per batch of loads; each
    thread computes ``rows`` output columns, so every x chunk it loads and converts is reused ``rows`` times;
    ``threads`` per block."""

    lanes: int
    unroll: int
    rows: int
    threads: int = 128

    def __str__(self) -> str:
        return f"l{self.lanes}u{self.unroll}r{self.rows}t{self.threads}"

    @staticmethod
    def parse(text: str) -> GemvInt4Config:
        import re  # noqa: PLC0415

        hit = re.fullmatch(r"l(\d+)u(\d+)r(\d+)(?:t(\d+))?", text)
        if not hit:
            raise ScheduleError(f"bad gemv_int4 config {text!r}: expected e.g. l32u4r2t128")
        return GemvInt4Config(*(int(g) for g in hit.groups() if g is not None))


def pick_config(m: int, n: int, k: int, sms: int = 132) -> GemvInt4Config:
    """Lanes per column: 32, or for a short K and many columns the most that split its chunks evenly; up to 12
    chunks (192 bytes) of loads in flight per thread; rows per thread: as many as still leave two blocks per SM
    (a thread's x chunk is reused by all its rows), fewer when several decode rows hold their x chunks in
    registers too."""
    chunks = k // CHUNK
    # a short K (< 32 chunks) with few columns: one step per lane, some lanes idle (latency-bound: the fewest
    # dependent steps win); with many columns (an LM head): lanes that split K's chunks evenly
    lanes = 32 if chunks >= 32 or n <= 8192 else next(v for v in (16, 8, 4, 2, 1) if chunks % v == 0)
    steps = -(-chunks // lanes)
    rows = next((r for r in (4, 2) if -(-n // (128 // lanes * r)) >= 2 * sms and m * r <= 4), 1)
    unroll = max(1, min(steps, 12 // rows, 8 // m if m > 1 else 12))
    if steps % unroll:  # prefer an even split of K over the widest batch, unless that leaves one chunk
        unroll = next((u for u in range(unroll, 1, -1) if steps % u == 0), unroll)
    return GemvInt4Config(lanes, unroll, rows)


def gemv_int4_kernel(m: int, n: int, k: int, group: int = 128, config: GemvInt4Config | None = None,
                     act: str = "none") -> tirx.PrimFunc:
    """hwcomp's CUDA GEMV, written as TensorIR. Per thread, ``unroll * rows`` 16-byte loads of packed weights
    are issued back to back; then codes are decoded two at a time in packed half2 arithmetic, with no
    int->float conversion: ``(word >> 4j) & 0x000F000F | 0x64006400`` is the half2 ``(1024 + code)`` exactly,
    minus ``1024 + zero`` is ``code - zero`` exactly, and one ``hfma2`` multiplies it by the matching half2 of x
    (read as raw 32-bit words: no conversion of x either). Each half2 accumulator sums one 32-bit word (4
    products per lane) and is then added to an fp32 sum; the group scale multiplies the fp32 sum of a whole
    32-code chunk (chunks never straddle groups). The ``lanes`` partial sums of a column are added with warp
    shuffles, and the column's lane 0 applies the epilogue (bias, ``act``) in fp32. The helpers are in
    ``cuda_device_functions.py``."""
    from tvm.script import tirx as T  # noqa: PLC0415

    if not kernel_supports(k, group):
        raise ScheduleError(f"gemv_int4 kernel needs K and the group size to be multiples of {CHUNK} "
                            f"(K={k}, group={group})")
    c = config or pick_config(m, n, k)
    lanes, unroll, rows, threads = c.lanes, c.unroll, c.rows, c.threads
    if lanes > 32 or lanes & (lanes - 1) or threads % lanes or threads % 32 or unroll < 1 or rows < 1:
        raise ScheduleError(f"gemv_int4 config {c}: lanes must be a power of two <= 32 dividing the threads")
    chunks = k // CHUNK
    outer = -(-chunks // (lanes * unroll))
    ragged = chunks % (lanes * unroll) != 0  # the last batch has chunks past K: loads clamped, sums dropped
    groups_per_block = threads // lanes
    cols = groups_per_block * rows  # output columns per block
    blocks = -(-n // cols)
    words = k // 8  # uint32 words of packed codes per column (4 per chunk)
    cpg = group // CHUNK  # chunks per group
    shuffles = [o for o in (16, 8, 4, 2, 1) if o < lanes]

    def column(bx, q, tx):  # output column of the thread's q-th row
        return bx * cols + q * groups_per_block + tx // lanes

    def chunk(so, s, tx):  # the chunk the lane reads in step s of batch so (past K in a ragged last batch)
        return (so * unroll + s) * lanes + tx % lanes

    def loaded_chunk(so, s, tx):  # ... clamped for the loads
        return T.min(chunk(so, s, tx), chunks - 1)

    @T.prim_func(private=True)
    def kernel(x: T.Buffer((m, k), "float16"), w: T.Buffer((n, k // 2), "uint8"),
               scale: T.Buffer((n, k // group), "float16"), zero: T.Buffer((n, k // group), "float16"),
               bias: T.Buffer((n,), "float16"), y: T.Buffer((m, n), "float16")):
        T.func_attr({"tirx.noalias": True})
        w32 = T.decl_buffer((n * words,), "uint32", data=w.data)
        x32 = T.decl_buffer((m * k // 2,), "uint32", data=x.data)  # half2 pairs of x
        for bx in T.thread_binding(blocks, thread="blockIdx.x"):
            for tx in T.thread_binding(threads, thread="threadIdx.x"):
                wr = T.alloc_buffer((unroll * rows * 4,), "uint32", scope="local")
                sc = T.alloc_buffer((unroll * rows,), "float32", scope="local")
                z2 = T.alloc_buffer((unroll * rows,), "uint32", scope="local")
                xw = T.alloc_buffer((m * CHUNK // 2,), "uint32", scope="local")
                acc = T.alloc_buffer((m * rows,), "float32", scope="local")
                part = T.alloc_buffer((m,), "float32", scope="local")
                h2 = T.alloc_buffer((m,), "uint32", scope="local")
                for i in T.unroll(m * rows):
                    acc[i] = T.float32(0)
                for so in T.serial(outer):
                    for s in T.unroll(unroll):
                        for q in T.unroll(rows):
                            for v in T.vectorized(4):
                                wr[(s * rows + q) * 4 + v] = w32[T.min(column(bx, q, tx), n - 1) * words
                                                                 + loaded_chunk(so, s, tx) * 4 + v]
                            sc[s * rows + q] = T.Cast("float32", scale[T.min(column(bx, q, tx), n - 1),
                                                                       loaded_chunk(so, s, tx) // cpg])
                            z2[s * rows + q] = T.call_pure_extern("uint32", "hwcomp_i4_zero2", zero[
                                T.min(column(bx, q, tx), n - 1), loaded_chunk(so, s, tx) // cpg])
                    for s in T.unroll(unroll):
                        for i in T.unroll(m):
                            for j in T.unroll(CHUNK // 8):
                                for v in T.vectorized(4):
                                    xw[i * (CHUNK // 2) + j * 4 + v] = x32[
                                        i * (k // 2) + loaded_chunk(so, s, tx) * (CHUNK // 2) + j * 4 + v]
                        for q in T.unroll(rows):
                            for i in T.unroll(m):
                                part[i] = T.float32(0)
                            for wi in T.unroll(4):
                                for i in T.unroll(m):
                                    h2[i] = T.uint32(0)
                                for j in T.unroll(4):
                                    for i in T.unroll(m):
                                        h2[i] = T.call_pure_extern(
                                            "uint32", "hwcomp_i4x2_fma",
                                            T.shift_right(wr[(s * rows + q) * 4 + wi], T.uint32(4 * j)),
                                            xw[i * (CHUNK // 2) + wi * 4 + j], z2[s * rows + q], h2[i])
                                for i in T.unroll(m):
                                    part[i] = part[i] + T.call_pure_extern("float32", "hwcomp_half2_sum", h2[i])
                            for i in T.unroll(m):
                                if not ragged or chunk(so, s, tx) < chunks:
                                    acc[i * rows + q] = acc[i * rows + q] + part[i] * sc[s * rows + q]
                for i in T.unroll(m * rows):
                    for o in T.unroll(len(shuffles)):
                        acc[i] = acc[i] + T.call_pure_extern("float32", "__shfl_xor_sync", T.uint32(0xFFFFFFFF),
                                                             acc[i], T.shift_right(lanes, o + 1), 32)
                for i in T.unroll(m):
                    for q in T.unroll(rows):
                        if tx % lanes == 0 and column(bx, q, tx) < n:
                            y[i, column(bx, q, tx)] = _bias_activation(acc[i * rows + q],
                                                                       bias[column(bx, q, tx)], act)

    return kernel.with_attr("global_symbol", "gemv_int4").with_attr("tirx.is_scheduled", True)


@dataclass(frozen=True)
class GemvInt4Rule:
    def apply(self, func: tirx.PrimFunc, target) -> tirx.PrimFunc:
        import tvm  # noqa: PLC0415

        mod = tvm.IRModule({"main": func})
        with target:
            mod = dl.ApplyDefaultSchedule(dl.gpu.GEMV(), dl.gpu.LowBatchGEMV(), dl.gpu.Fallback())(mod)
        return mod["main"].with_attr("tirx.is_scheduled", True)


def gemv_int4(m: int, n: int, k: int, group: int = 128, arch: str = "sm_90", schedule: str = "hwcomp",
              config: GemvInt4Config | None = None, act: str = "none") -> tirx.PrimFunc:
    """Scheduled PrimFunc ``gemv_int4(x, w_packed, scale, zero, bias, y)`` (layouts in the module docstring);
    ``schedule``: "hwcomp" (:func:`gemv_int4_kernel`) or "dlight" (its GEMV rules on the definition, with
    w in the "sequential" layout: dlight handles the plain nibble order far better than hwcomp's pairs)."""
    import tvm  # noqa: PLC0415

    if schedule == "hwcomp":
        return gemv_int4_kernel(m, n, k, group, config, act)
    target = tvm.target.Target({"kind": "cuda", "arch": arch})  # dlight, on the plain nibble layout
    return GemvInt4Rule().apply(gemv_int4_func(m, n, k, group, layout="sequential", act=act), target)
