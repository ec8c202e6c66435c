"""Weight-only int4 GEMV for batch-1 decode: ``y[M, N] = x[M, K] @ dequant(w)^T`` with the dequant fused.

Layouts (the lowering packs the constant weight once):

* x ``[M, K]`` fp16, M small (1..8 decode rows);
* w ``[N, K // 2]`` uint8, two 4-bit codes per byte, **low nibble = even k**;
* scale, zero ``[N, K // group]`` fp16, asymmetric: ``w[n, k] = (code - zero[n, k // group]) * scale[n, k // group]``
  (``zero`` holds the integer zero point as fp16, so codes and zero points are exact);
* y ``[M, N]`` fp16, fp32 accumulation. :func:`pack_int4` builds (w, scale, zero) from a float ``[K, N]``.

Schedule: dlight's ``gpu.GEMV`` (for M = 1) / ``gpu.LowBatchGEMV`` rules on this PrimFunc: the decode block
is inlined into the reduction, each thread reads packed bytes of one row and K is split across a warp
with a shuffle reduction. (dlight's GEMV rules work; only its ``gpu.Matmul`` tensorization crashed.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tvm import s_tir, te, tirx
from tvm.s_tir import dlight as dl

from .errors import ScheduleError


def pack_int4(w_kn: np.ndarray, group: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group-wise asymmetric 4-bit quantization of a float ``[K, N]`` weight -> (packed, scale, zero)."""
    k, n = w_kn.shape
    if k % group or group % 2:
        raise ScheduleError(f"int4 group {group} must be even and divide K={k}")
    w = w_kn.T.astype(np.float32).reshape(n, k // group, group)
    lo, hi = w.min(-1), w.max(-1)
    scale = np.maximum(hi - lo, 1e-8) / 15.0
    zero = np.clip(np.round(-lo / scale), 0, 15)
    codes = np.clip(np.round(w / scale[..., None] + zero[..., None]), 0, 15).astype(np.uint8).reshape(n, k)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
    return packed, scale.astype(np.float16), zero.astype(np.float16)


def unpack_int4(packed: np.ndarray, scale: np.ndarray, zero: np.ndarray, group: int) -> np.ndarray:
    """Float ``[N, K]`` weight that the kernel multiplies by (fp32)."""
    n, kh = packed.shape
    codes = np.empty((n, 2 * kh), np.float32)
    codes[:, 0::2] = packed & 15
    codes[:, 1::2] = packed >> 4
    g = np.arange(2 * kh) // group
    return (codes - zero.astype(np.float32)[:, g]) * scale.astype(np.float32)[:, g]


def gemv_int4_func(m: int, n: int, k: int, group: int = 128, fast_decode: bool = False) -> tirx.PrimFunc:
    """``fast_decode`` (CUDA only): codes become floats through the mantissa of 2^23 (``__uint_as_float`` of
    ``code | 0x4B000000`` minus 2^23: exact, no int-to-float conversion) and the dequant is computed in fp32;
    otherwise the code is converted to fp16 and dequantized in fp16."""
    if k % group or group % 2:
        raise ScheduleError(f"int4 group {group} must be even and divide K={k}")
    x = te.placeholder((m, k), "float16", name="x")
    w = te.placeholder((n, k // 2), "uint8", name="w")
    scale = te.placeholder((n, k // group), "float16", name="scale")
    zero = te.placeholder((n, k // group), "float16", name="zero")
    def code(j, kk):
        return (w[j, kk // 2] >> ((kk % 2) * 4).astype("uint8")) & tirx.const(15, "uint8")

    def decode(j, kk):
        if not fast_decode:
            return (code(j, kk).astype("float16") - zero[j, kk // group]) * scale[j, kk // group]
        f = tirx.call_pure_extern("float32", "__uint_as_float", code(j, kk).astype("uint32") | tirx.const(0x4B000000, "uint32"))
        return (f - (tirx.const(float(1 << 23), "float32") + zero[j, kk // group].astype("float32"))) \
            * scale[j, kk // group].astype("float32")

    deq = te.compute((n, k), decode, name="decode")
    r = te.reduce_axis((0, k), name="k")
    acc = te.compute((m, n), lambda i, j: te.sum(x[i, r].astype("float32") * deq[j, r].astype("float32"), axis=r),
                     name="gemv")
    y = te.compute((m, n), lambda i, j: acc[i, j].astype("float16"), name="cast")
    return te.create_prim_func([x, w, scale, zero, y]).with_attr("global_symbol", "gemv_int4")


@dataclass(frozen=True)
class GemvInt4Schedule:
    """hwcomp's schedule: one warp per output column ``n`` (``rows`` warps per thread block); each lane reads
    ``vec_bytes`` packed bytes (``2 * vec_bytes`` codes, one 16-byte load) of the row per step, decodes them in
    registers against its group's scale/zero, and multiplies by x read with 16-byte loads; the 32 lane partial
    sums are then reduced with warp shuffles. Each weight byte is read once, by one lane, fully coalesced."""

    rows: int = 4  # warps (output columns) per thread block
    vec_bytes: int | None = None  # packed bytes per lane per step: 16, else 8 or 4 when K needs it

    def apply(self, func: tirx.PrimFunc) -> tirx.PrimFunc:
        m, k = (int(d) for d in func.params[0].shape)
        n = int(func.params[1].shape[0])
        vec = self.vec_bytes or next((v for v in (16, 8, 4, 2, 1) if k % (64 * v) == 0), 1)
        rows = next(r for r in (self.rows, 2, 1) if n % r == 0)  # odd widths (a vocabulary): fewer warps
        codes = 2 * vec
        if k % (32 * codes):
            raise ScheduleError(f"gemv_int4 schedule needs K % {32 * codes} == 0 "
                                f"(K={k}, N={n})")
        sch = s_tir.Schedule(func)
        sch.compute_inline(sch.get_sblock("decode"))
        gemv = sch.get_sblock("gemv")
        i, j, kk = sch.get_loops(gemv)
        ko, kt, kv = sch.split(kk, [None, 32, codes])
        rf = sch.rfactor(kt, 0)  # acc_rf[kt, i, j]: each lane's partial sum
        # rf loops: i, j, ko, kt, kv (rfactor keeps the original order) -> j0, ty, kt, i, ko, kv
        ri, rj, rko, rkt, rkv = sch.get_loops(rf)
        j0, ty = sch.split(rj, [None, rows])
        sch.reorder(j0, ty, rkt, ri, rko, rkv)
        sch.bind(j0, "blockIdx.x")
        sch.bind(ty, "threadIdx.y")
        sch.bind(rkt, "threadIdx.x")
        sch.unroll(rkv)
        if k // (32 * codes) <= 16:
            sch.unroll(rko)  # every step's loads issued up front
        # 16-byte loads of the packed weights and of x into registers, per step
        wl = sch.cache_read(rf, 1, "local")
        sch.compute_at(wl, rko)
        sch.vectorize(sch.get_loops(wl)[-1])
        xl = sch.cache_read(rf, 0, "local")
        sch.compute_at(xl, rko)
        _, xv = sch.split(sch.get_loops(xl)[-1], [None, 8])
        sch.vectorize(xv)
        # the cross-lane sum (threadIdx.x bound to the reduction: a warp allreduce) and the cast, per column
        sch.reverse_compute_at(gemv, ty)
        sch.bind(sch.get_loops(gemv)[-1], "threadIdx.x")
        sch.reverse_compute_at(sch.get_sblock("cast"), ty)
        sch.set_scope(rf, 0, "local")
        sch.set_scope(gemv, 0, "local")
        sch.decompose_reduction(rf, rko)
        return sch.mod["main"].with_attr("tirx.is_scheduled", True)


@dataclass(frozen=True)
class GemvInt4Rule:
    def apply(self, func: tirx.PrimFunc, target) -> tirx.PrimFunc:
        import tvm  # noqa: PLC0415

        mod = tvm.IRModule({"main": func})
        with target:
            mod = dl.ApplyDefaultSchedule(dl.gpu.GEMV(), dl.gpu.LowBatchGEMV(), dl.gpu.Fallback())(mod)
        return mod["main"].with_attr("tirx.is_scheduled", True)


def gemv_int4(m: int, n: int, k: int, group: int = 128, arch: str = "sm_90", schedule: str = "hwcomp",
              fast_decode: bool = False) -> tirx.PrimFunc:
    """Scheduled PrimFunc ``gemv_int4(x, w_packed, scale, zero, y)`` (layouts in the module docstring);
    ``schedule``: "hwcomp" (:class:`GemvInt4Schedule`) or "dlight" (its GEMV rules)."""
    import tvm  # noqa: PLC0415

    if schedule == "hwcomp":
        return GemvInt4Schedule().apply(gemv_int4_func(m, n, k, group, fast_decode))
    target = tvm.target.Target({"kind": "cuda", "arch": arch})
    return GemvInt4Rule().apply(gemv_int4_func(m, n, k, group), target)
