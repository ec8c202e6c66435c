"""Program builders: DRAM image layout + instruction stream for whole problems.

``matmul_requant`` lowers ``Y = requantize(A @ B + bias, multiplier, shift, zero_point)`` with
A [M, K] int8, B [K, N] int8, bias [N] int32 (optional), per-output-channel multiplier/shift/zero point.

DRAM image (all regions 64-byte aligned, in this order, from ``base``):

=======  ==========================  =========================================================
region   WS layout                   OS layout
=======  ==========================  =========================================================
a        A [M, Kp] row-major         A^T [K, Mp] row-major (a line is one column of A)
b        B [Kp, Np] row-major        B [K, Np] row-major
params   Np/cols lines of cols*8 B   same: per channel int32 multiplier, u8 shift, i8 zp, 2 pad
bias     [Np] int32 (if given)       same
y        Y [M, Np] int8              Y [Mp, Np] int8
=======  ==========================  =========================================================

Kp, Np, Mp are K, N, M rounded up to rows, cols, rows (zero padding). Tiling:
WS: for each N tile (cols), M tile (tm rows), K tile (rows): LOAD A/B tiles, MATMUL (accumulating
over K); then REQUANT the tm accumulator lines and STORE them (sequential order; the compiler's lowering
in lower.py is the pipelined WS path). OS (``_os_program``): per M tile (rows) and N tile, K in chunks,
software-pipelined with alternating scratchpad halves so the decoupled LD/EX/ST units overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwcomp.errors import HardwareError
from hwcomp.hardware import HardwareParams

from .isa import Buffer, Halt, Instr, Load, Matmul, Requant, Store, Vector, VecOp

ALIGN = 64


def _ceil(a: int, b: int) -> int:
    return -(-a // b) * b


def _align(x: int) -> int:
    return _ceil(x, ALIGN)


@dataclass(frozen=True)
class MatmulLayout:
    m: int
    k: int
    n: int
    mp: int
    kp: int
    np_: int
    a: int
    b: int
    params: int
    bias: int | None
    y: int
    end: int


@dataclass
class BuiltProgram:
    program: list[Instr]
    dram: np.ndarray          # uint8 image of hw.dram_bytes
    layout: MatmulLayout | None = None

    def read_y(self, dram: np.ndarray) -> np.ndarray:
        """The [M, N] int8 result from a DRAM image produced by running this program."""
        lo = self.layout
        if lo is None:
            raise HardwareError("this program has no matmul layout")
        y = np.asarray(dram[lo.y: lo.y + lo.m * lo.np_], dtype=np.uint8).view(np.int8)
        return y.reshape(lo.m, lo.np_)[:, : lo.n].copy()


def pack_params(hw: HardwareParams, multiplier: np.ndarray, shift: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """Per-channel requant parameters -> bytes (8 per channel), padded channels get a harmless 2^30 >> 31."""
    n = multiplier.size
    np_ = _ceil(n, hw.cols)
    rec = np.zeros((np_, 8), np.uint8)
    mult = np.full(np_, 1 << 30, np.int32)
    sh = np.full(np_, 31, np.int32)
    zp = np.zeros(np_, np.int32)
    mult[:n], sh[:n], zp[:n] = multiplier, shift, zero_point
    if np.any((sh < 1) | (sh > 62)) or np.any((zp < -128) | (zp > 127)):
        raise HardwareError("requant shift must be 1..62 and zero point -128..127 for the hardware")
    rec[:, 0:4] = mult.astype("<i4").view(np.uint8).reshape(np_, 4)
    rec[:, 4] = sh.astype(np.uint8)
    rec[:, 5] = zp.astype(np.int8).view(np.uint8)
    return rec.reshape(-1)


def plan_matmul(hw: HardwareParams, m: int, k: int, n: int, *, bias: bool = False, tile_m: int | None = None,
                tile_k: int | None = None, base: int = 0) -> tuple[MatmulLayout, list[Instr]]:
    """DRAM layout and instruction stream of an [m, k] x [k, n] matmul + requant (no data needed:
    the cost model calls this directly)."""
    if min(m, k, n) < 1:
        raise HardwareError(f"matmul {m}x{k}x{n} has an empty dimension")
    r, c = hw.rows, hw.cols
    ws = hw.dataflow == "ws"
    kp = _ceil(k, r) if ws else k
    np_ = _ceil(n, c)
    mp = m if ws else _ceil(m, r)
    off = base
    a_off = off
    off = _align(off + (m * kp if ws else k * mp))
    b_off = off
    off = _align(off + kp * np_)
    p_off = off
    off = _align(off + np_ * 8)
    bias_off = None
    if bias:
        bias_off = off
        off = _align(off + 4 * np_)
    y_off = off
    off = _align(off + mp * np_)
    if off > hw.dram_bytes:
        raise HardwareError(f"the matmul needs {off} bytes of DRAM, the hardware has {hw.dram_bytes}")
    lo = MatmulLayout(m, k, n, mp, kp, np_, a_off, b_off, p_off, bias_off, y_off, off)

    prog: list[Instr] = []
    if ws:
        tm = tile_m or min(hw.input_lines, hw.acc_lines, hw.vector_lines, 256)
        for n0 in range(0, np_, c):
            prog.append(Load(Buffer.PARAM, 0, 1, p_off + n0 * 8, 0))
            for m0 in range(0, m, tm):
                mt = min(tm, m - m0)
                if bias_off is not None:
                    prog.append(Load(Buffer.ACC, 0, mt, bias_off + 4 * n0, 0))
                for ki, k0 in enumerate(range(0, kp, r)):
                    prog.append(Load(Buffer.INPUT, 0, mt, a_off + m0 * kp + k0, kp))
                    prog.append(Load(Buffer.WEIGHT, 0, r, b_off + k0 * np_ + n0, np_))
                    prog.append(Matmul(0, 0, 0, mt, accumulate=ki > 0 or bias_off is not None, load_weights=True))
                prog.append(Requant(0, 0, mt))
                prog.append(Store(Buffer.VECTOR, 0, mt, y_off + m0 * np_ + n0, np_))
    else:
        prog += _os_program(hw, lo, tile_k, bias_off is not None)
    prog.append(Halt())
    return lo, prog


def _os_program(hw: HardwareParams, lo: MatmulLayout, tile_k: int | None, bias: bool) -> list[Instr]:
    """OS tiles, software-pipelined for the decoupled units: the loads of step i+1 go before the MATMUL of
    step i (input/weight scratchpad halves alternate); with the A^T strip [K, rows] of an M tile resident
    (K fits half the input scratchpad, tile_k not smaller) it is loaded once per M tile and reused for every
    N tile, else A^T and B are streamed in K chunks. Accumulator and vector halves alternate per output tile."""
    r, c = hw.rows, hw.cols
    k, mp, np_ = lo.k, lo.mp, lo.np_
    strip = k <= hw.input_lines // 2 and 2 * k <= hw.weight_lines and (tile_k is None or tile_k >= k)
    tk = k if strip else max(1, min(tile_k or 256, hw.input_lines // 2, hw.weight_lines // 2))
    two = 2 * r <= hw.acc_lines and 2 * r <= hw.vector_lines
    tiles = [(m0, n0) for m0 in range(0, mp, r) for n0 in range(0, np_, c)]
    steps = [(ti, k0) for ti in range(len(tiles)) for k0 in range(0, k, tk)]
    prog: list[Instr] = []

    def loads(si: int) -> list[Instr]:
        ti, k0 = steps[si]
        m0, n0 = tiles[ti]
        kt = min(tk, k - k0)
        out: list[Instr] = []
        if not strip:
            out.append(Load(Buffer.INPUT, (si % 2) * tk, kt, lo.a + k0 * mp + m0, mp))
        elif n0 == 0:
            out.append(Load(Buffer.INPUT, ((m0 // r) % 2) * k, k, lo.a + m0, mp))
        out.append(Load(Buffer.WEIGHT, (si % 2) * tk, kt, lo.b + k0 * np_ + n0, np_))
        return out

    prog += loads(0)
    pending: list[Instr] = []                  # the previous tile's STORE, issued after the next MATMUL
    for si, (ti, k0) in enumerate(steps):
        m0, n0 = tiles[ti]
        kt = min(tk, k - k0)
        ab = (ti % 2) * r if two else 0
        if k0 == 0 and bias:                   # before the next loads: the LD unit runs in order
            prog.append(Load(Buffer.ACC, ab, r, lo.bias + 4 * n0, 0))
        if si + 1 < len(steps):
            prog += loads(si + 1)
        a = ((m0 // r) % 2) * k if strip else (si % 2) * tk
        prog.append(Matmul(a, (si % 2) * tk, ab, kt, accumulate=k0 > 0 or bias))
        prog += pending
        pending = []
        if k0 + tk >= k:
            prog.append(Load(Buffer.PARAM, 0, 1, lo.params + n0 * 8, 0))
            prog.append(Requant(ab, ab, r))
            pending = [Store(Buffer.VECTOR, ab, r, lo.y + m0 * np_ + n0, np_)]
            if not two:
                prog += pending
                pending = []
    return prog + pending


def matmul_requant(hw: HardwareParams, a: np.ndarray, b: np.ndarray, multiplier: np.ndarray | int,
                   shift: np.ndarray | int, zero_point: np.ndarray | int = 0, bias: np.ndarray | None = None,
                   *, tile_m: int | None = None, tile_k: int | None = None, base: int = 0) -> BuiltProgram:
    """Build the program and DRAM image of one int8 matmul + requant (see the module docstring)."""
    a = np.asarray(a, np.int8)
    b = np.asarray(b, np.int8)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise HardwareError(f"matmul shapes {a.shape} x {b.shape} do not agree")
    m, k = a.shape
    n = b.shape[1]
    lo, prog = plan_matmul(hw, m, k, n, bias=bias is not None, tile_m=tile_m, tile_k=tile_k, base=base)
    mult = np.broadcast_to(np.asarray(multiplier, np.int64), (n,))
    sh = np.broadcast_to(np.asarray(shift, np.int64), (n,))
    zp = np.broadcast_to(np.asarray(zero_point, np.int64), (n,))

    dram = np.zeros(hw.dram_bytes, np.uint8)
    if hw.dataflow == "ws":
        ap = np.zeros((m, lo.kp), np.int8)
        ap[:, :k] = a
    else:
        ap = np.zeros((k, lo.mp), np.int8)
        ap[:, :m] = a.T
    dram[lo.a: lo.a + ap.size] = ap.view(np.uint8).reshape(-1)
    bp = np.zeros((lo.kp, lo.np_), np.int8)
    bp[:k, :n] = b
    dram[lo.b: lo.b + bp.size] = bp.view(np.uint8).reshape(-1)
    pk = pack_params(hw, mult, sh, zp)
    dram[lo.params: lo.params + pk.size] = pk
    if bias is not None and lo.bias is not None:
        bb = np.zeros(lo.np_, "<i4")
        bb[:n] = np.asarray(bias, np.int64)
        dram[lo.bias: lo.bias + 4 * lo.np_] = bb.view(np.uint8)
    return BuiltProgram(prog, dram, lo)


def elementwise(hw: HardwareParams, op: VecOp, x: np.ndarray, y: np.ndarray) -> BuiltProgram:
    """``op(x, y)`` on two int8 [R, cols*j] matrices: LOAD both into the vector buffer, VECTOR, STORE."""
    x = np.asarray(x, np.int8)
    y = np.asarray(y, np.int8)
    if x.shape != y.shape or x.ndim != 2 or x.shape[1] % hw.cols:
        raise HardwareError(f"elementwise operands {x.shape}, {y.shape}: need equal 2-D shapes, "
                            f"last dim a multiple of {hw.cols}")
    lines = x.size // hw.cols
    if 3 * lines > hw.vector_lines:
        raise HardwareError(f"{lines} lines x 3 do not fit the {hw.vector_lines}-line vector buffer")
    dram = np.zeros(hw.dram_bytes, np.uint8)
    x_off, y_off, o_off = 0, _align(x.size), _align(x.size) * 2
    dram[x_off: x_off + x.size] = x.view(np.uint8).reshape(-1)
    dram[y_off: y_off + y.size] = y.view(np.uint8).reshape(-1)
    lb = hw.vector_line_bytes
    prog: list[Instr] = [
        Load(Buffer.VECTOR, 0, lines, x_off, lb),
        Load(Buffer.VECTOR, lines, lines, y_off, lb),
        Vector(op, 0, lines, 2 * lines, lines),
        Store(Buffer.VECTOR, 2 * lines, lines, o_off, lb),
        Halt(),
    ]
    lo = MatmulLayout(x.shape[0], 0, x.shape[1], x.shape[0], 0, x.shape[1], x_off, y_off, 0, None, o_off,
                      o_off + x.size)
    return BuiltProgram(prog, dram, lo)
