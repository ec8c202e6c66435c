"""Instruction-level model of the accelerator: executes a program bit-exactly with numpy and schedules it
cycle-exactly. It is the basis of the cost model and the oracle of the RTL benches.

Semantics are sequential (the RTL's scoreboard guarantees that concurrent execution computes the same).
Timing mirrors ``rtl/accel_top.v``: a front end dispatches at most one instruction per cycle, in order, to
three units that run concurrently -- LD (LOAD), EX (MATMUL, REQUANT, VECTOR; one queued instruction ``nxt``
ahead of the running one) and ST (STORE) -- once the unit has room and no instruction in flight on another
unit conflicts (overlapping scratchpad lines or DRAM bytes where one side writes, or a shared scratchpad
port). :func:`schedule` computes, per instruction, the dispatch cycle and the cycles its unit works on it:

=========  ==========================================================================================
front end  cycle 0 fetches; instruction i dispatches at d_i >= d_(i-1) + 1 (the first at >= 1)
LOAD       LD free again at d + lines * beats + 4; stride 0: d + beats + lines + 3 (one read, n writes)
STORE      ST free again at d + lines * beats + 3 (a line read every ``beats`` cycles, pipelined)
MATMUL ws  weights (if load_weights) shift into the free bank from c = max(d+1, bank free) for rows+1
           cycles (ready at c+rows+1); promotion p = max(d+1, weights ready, previous MATMUL's last row
           issue if the two may chain, else the array drained); rows issue at p+1 .. p+n; the array is
           drained at last issue + rows + cols + 4; a bank is free at its last row + 1 + max(rows+cols-3, 0)
MATMUL os  p = max(d+1, EX idle); EX idle again at p + n + 2*rows + cols + 5
REQUANT    p = max(d+1, EX idle, drained); EX idle at p + lines + 6
VECTOR     p = max(d+1, EX idle, drained); EX idle at p + lines * (cols / vector_lanes + 3) + 1
SYNC/HALT  dispatch when every unit is idle and the array drained; a run's cycles are HALT's cycle + 1
=========  ==========================================================================================

Two WS MATMULs chain (the second streams right behind the first) when the first has >= 4 rows and the
second's accumulator lines start at or before the first's, or after its last line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwcomp.errors import HardwareError
from hwcomp.hardware import HardwareParams
from hwcomp.ops.intmath import requantize, wrap_int32

from .isa import Buffer, Halt, Instr, Load, Matmul, Requant, Store, Sync, Vector, VecLutOp
from .vector_ops import apply_vec_op

OVERHEAD = 0  # kept for callers of the sequential model; dispatch overlaps everything now
CHAIN_MIN = 4


def instr_cycles(hw: HardwareParams, ins: Instr) -> int:
    """Cycles the instruction keeps its unit busy (LD, ST, EX streaming); not additive across units."""
    if isinstance(ins, (Halt, Sync)):
        return 1
    if isinstance(ins, Load):
        if not ins.lines:
            return 1
        b = hw.beats(line_bytes(hw, ins.buf))
        return (b + ins.lines + 3) if ins.stride == 0 else ins.lines * b + 4
    if isinstance(ins, Store):
        return ins.lines * hw.beats(line_bytes(hw, ins.buf)) + 3 if ins.lines else 1
    if isinstance(ins, Matmul):
        r, c = hw.rows, hw.cols
        if hw.dataflow == "ws":
            return max(ins.count, 1)
        return ins.count + r + c - 2 + r + 7
    if isinstance(ins, Requant):
        return ins.lines + 6 if ins.lines else 1
    if isinstance(ins, Vector):
        return ins.lines * (hw.vector_passes + 3) + 1 if ins.lines else 1
    raise HardwareError(f"no cycle model for {ins!r}")


def _ovl(a: int, na: int, b: int, nb: int) -> bool:
    return na != 0 and nb != 0 and a < b + nb and b < a + na


@dataclass
class _Ex:
    """An EX instruction's footprint and the cycles at which each part of it is released."""

    ins: Instr
    rel_in: int = 0      # input lines (MATMUL)
    rel_w: int = 0       # weight lines (MATMUL, until loaded)
    rel_acc: int = 0     # accumulator port/lines
    rel_all: int = 0     # everything else (REQUANT/VECTOR/OS MATMUL: when EX goes idle)


@dataclass
class Schedule:
    cycles: int                                   # cycles of the run (HALT's dispatch + 1)
    dispatch: list[int] = field(default_factory=list)
    done: list[int] = field(default_factory=list)  # first cycle the instruction's unit is free again
    busy: list[int] = field(default_factory=list)  # cycles its unit works on it
    start: dict[int, int] = field(default_factory=dict)  # EX instructions: cycle promoted to `cur`


def schedule(hw: HardwareParams, program: list[Instr]) -> Schedule:
    """Cycle-exact timing of one run (a program ending with HALT) on ``rtl/accel_top.v``."""
    r, c = hw.rows, hw.cols
    ws = hw.dataflow == "ws"
    bk_wait = 1 + max(r + c - 3, 0)
    t_fe = 1
    ld_end = st_end = 0
    last_ld: tuple[Load, int, int, int] | None = None     # (ins, end, dram lo, dram hi)
    last_st: tuple[Store, int, int, int] | None = None
    exs: list[_Ex] = []
    xn_free = 0          # nxt slot free from this cycle
    ex_idle = 0          # EX `cur` idle from this cycle (WS MATMUL: after its last row issue)
    last_issue = -1      # WS: last row issue cycle of the previous MATMUL (for chaining)
    prev_mm: Matmul | None = None
    drained = 0          # WS: array drained from this cycle
    lbank = 0
    bank_free = [0, 0]
    sched = Schedule(0)

    def dram_range(ins) -> tuple[int, int]:
        return ins.dram, ins.dram + max(ins.lines - 1, 0) * ins.stride + line_bytes(hw, ins.buf)

    def after_other_dma(ins, d: int, lo: int, hi: int, other) -> int:
        """Dispatch cycle of a LOAD/STORE after the other DMA unit's last transfer (``other``: (ins, end, dram
        lo, dram hi)) if that one is still running and shares scratchpad lines or DRAM bytes with it."""
        if other is not None and other[1] > d:
            o, end, olo, ohi = other
            if (o.buf == ins.buf and _ovl(ins.sp, ins.lines, o.sp, o.lines)) or (lo < ohi and olo < hi):
                return max(d, end)
        return d

    def all_idle() -> int:
        return max(ld_end, st_end, xn_free, ex_idle, drained)

    for ins in program:
        if isinstance(ins, Halt):
            h = max(t_fe, all_idle())
            sched.dispatch.append(h)
            sched.done.append(h + 1)
            sched.busy.append(1)
            sched.cycles = h + 1
            return sched
        if isinstance(ins, Sync):
            d = max(t_fe, all_idle())
            sched.dispatch.append(d)
            sched.done.append(d + 1)
            sched.busy.append(1)
            t_fe = d + 1
            continue
        if isinstance(ins, (Load, Store, Requant, Vector)) and ins.lines == 0:
            sched.dispatch.append(t_fe)
            sched.done.append(t_fe + 1)
            sched.busy.append(1)
            t_fe += 1
            continue
        recent = exs[-3:]
        if isinstance(ins, Load):
            d = max(t_fe, ld_end)
            for e in recent:
                x = e.ins
                if ins.buf == Buffer.INPUT and isinstance(x, Matmul) and _ovl(ins.sp, ins.lines, x.a, x.count):
                    d = max(d, e.rel_in)
                elif ins.buf == Buffer.WEIGHT and isinstance(x, Matmul) and (
                        _ovl(ins.sp, ins.lines, x.b, r if x.load_weights else 0) if ws
                        else _ovl(ins.sp, ins.lines, x.b, x.count)):
                    d = max(d, e.rel_w)
                elif ins.buf == Buffer.VECTOR and isinstance(x, (Requant, Vector)):
                    d = max(d, e.rel_all)
                elif ins.buf == Buffer.PARAM and isinstance(x, Requant):
                    d = max(d, e.rel_all)
                elif ins.buf == Buffer.ACC and (isinstance(x, Matmul) or (
                        isinstance(x, Requant) and _ovl(ins.sp, ins.lines, x.src, x.lines))):
                    d = max(d, e.rel_acc)
            if ins.buf == Buffer.ACC:
                d = max(d, drained)
            lo, hi = dram_range(ins)
            d = after_other_dma(ins, d, lo, hi, last_st)
            b = hw.beats(line_bytes(hw, ins.buf))
            ld_end = d + (b + ins.lines + 3 if ins.stride == 0 else ins.lines * b + 4)
            last_ld = (ins, ld_end, lo, hi)
            sched.dispatch.append(d)
            sched.done.append(ld_end)
            sched.busy.append(ld_end - d)
        elif isinstance(ins, Store):
            d = max(t_fe, st_end)
            for e in recent:
                x = e.ins
                if ins.buf == Buffer.VECTOR:
                    if isinstance(x, Vector) or (isinstance(x, Requant) and _ovl(ins.sp, ins.lines, x.dst, x.lines)):
                        d = max(d, e.rel_all)
                elif isinstance(x, Matmul):
                    d = max(d, e.rel_acc)
                elif isinstance(x, Requant):
                    d = max(d, e.rel_all)
            if ins.buf == Buffer.ACC:
                d = max(d, drained)
            lo, hi = dram_range(ins)
            d = after_other_dma(ins, d, lo, hi, last_ld)
            st_end = d + ins.lines * hw.beats(line_bytes(hw, ins.buf)) + 3
            last_st = (ins, st_end, lo, hi)
            sched.dispatch.append(d)
            sched.done.append(st_end)
            sched.busy.append(st_end - d)
        else:
            d = max(t_fe, xn_free)
            lins = last_ld[0] if last_ld is not None and last_ld[1] > d else None
            sins = last_st[0] if last_st is not None and last_st[1] > d else None
            conf = False
            if isinstance(ins, Matmul):
                wn = (r if ins.load_weights else 0) if ws else ins.count
                conf = (lins is not None and ((lins.buf == Buffer.INPUT and _ovl(lins.sp, lins.lines, ins.a, ins.count))
                                              or (lins.buf == Buffer.WEIGHT and _ovl(lins.sp, lins.lines, ins.b, wn))
                                              or lins.buf == Buffer.ACC)) \
                    or (sins is not None and sins.buf == Buffer.ACC)
            elif isinstance(ins, Requant):
                conf = (lins is not None and (lins.buf in (Buffer.VECTOR, Buffer.PARAM) or (
                            lins.buf == Buffer.ACC and _ovl(lins.sp, lins.lines, ins.src, ins.lines)))) \
                    or (sins is not None and (sins.buf == Buffer.ACC or (
                        sins.buf == Buffer.VECTOR and _ovl(sins.sp, sins.lines, ins.dst, ins.lines))))
            elif isinstance(ins, Vector):
                conf = (lins is not None and lins.buf == Buffer.VECTOR) or (sins is not None and sins.buf == Buffer.VECTOR)
            if conf:
                d0 = d
                d = max(d, last_ld[1] if lins is not None and _conf_with(ins, lins, hw) else d0,
                        last_st[1] if sins is not None and _conf_with(ins, sins, hw) else d0)
            e = _Ex(ins)
            if isinstance(ins, Matmul) and ws:
                wready = 0
                if ins.load_weights:
                    tb = 1 - lbank
                    cst = max(d + 1, bank_free[tb])
                    wready = cst + r + 1
                    lbank = tb
                    e.rel_w = wready
                chain = prev_mm is not None and prev_mm.count >= CHAIN_MIN and (
                    ins.c >= prev_mm.c + prev_mm.count or ins.c <= prev_mm.c)
                avail = last_issue if chain and ins.count else max(ex_idle, 0 if chain else drained)
                p = max(d + 1, wready, avail)
                bank = lbank
                if ins.count:
                    last = p + ins.count
                    bank_free[bank] = last + bk_wait
                    drained = last + r + c + 4
                    ex_idle = last + 1
                    last_issue = last
                    e.rel_in = last + 1
                    e.rel_acc = drained
                else:
                    ex_idle = p + 1
                    last_issue = p
                    e.rel_in = e.rel_acc = p + 1
                prev_mm = ins
                xn_free = p + 1
                e.rel_all = ex_idle
                busy = max(ins.count, 1)
            else:
                p = max(d + 1, ex_idle, drained)
                if isinstance(ins, Matmul):
                    ex_idle = p + ins.count + r + c - 2 + r + 7
                    prev_mm = ins
                elif isinstance(ins, Requant):
                    ex_idle = p + ins.lines + 6
                    prev_mm = None
                else:
                    ex_idle = p + ins.lines * (hw.vector_passes + 3) + 1
                    prev_mm = None
                xn_free = p + 1
                e.rel_in = e.rel_w = e.rel_acc = e.rel_all = ex_idle
                busy = ex_idle - p
            exs.append(e)
            sched.start[len(sched.dispatch)] = p
            sched.dispatch.append(d)
            sched.done.append(max(e.rel_all, e.rel_acc))
            sched.busy.append(busy)
        t_fe = sched.dispatch[-1] + 1
    raise HardwareError(f"program of {len(program)} instructions has no HALT")


def _conf_with(ins: Instr, other: Instr, hw: HardwareParams) -> bool:
    """Whether EX instruction ``ins`` conflicts with the LD/ST instruction ``other`` in flight."""
    ws = hw.dataflow == "ws"
    if isinstance(other, Load):
        if isinstance(ins, Matmul):
            wn = (hw.rows if ins.load_weights else 0) if ws else ins.count
            return (other.buf == Buffer.INPUT and _ovl(other.sp, other.lines, ins.a, ins.count)) or \
                (other.buf == Buffer.WEIGHT and _ovl(other.sp, other.lines, ins.b, wn)) or other.buf == Buffer.ACC
        if isinstance(ins, Requant):
            return other.buf in (Buffer.VECTOR, Buffer.PARAM) or (
                other.buf == Buffer.ACC and _ovl(other.sp, other.lines, ins.src, ins.lines))
        return other.buf == Buffer.VECTOR
    if isinstance(ins, Matmul):
        return other.buf == Buffer.ACC
    if isinstance(ins, Requant):
        return other.buf == Buffer.ACC or (other.buf == Buffer.VECTOR and _ovl(other.sp, other.lines, ins.dst, ins.lines))
    return other.buf == Buffer.VECTOR


def program_cycles(hw: HardwareParams, program: list[Instr]) -> int:
    """Cycles of one run of ``program`` (which ends with HALT)."""
    return schedule(hw, program).cycles


def line_bytes(hw: HardwareParams, buf: Buffer) -> int:
    return {Buffer.INPUT: hw.input_line_bytes, Buffer.WEIGHT: hw.weight_line_bytes,
            Buffer.VECTOR: hw.vector_line_bytes, Buffer.PARAM: hw.param_line_bytes,
            Buffer.ACC: hw.acc_line_bytes}[buf]


@dataclass
class RunResult:
    dram: np.ndarray                      # uint8 image after the program
    cycles: int
    retired: int
    per_instr: list[int] = field(default_factory=list)


class AccelModel:
    """Architectural state + a step function per instruction."""

    def __init__(self, hw: HardwareParams) -> None:
        self.hw = hw
        self.inp = np.zeros((hw.input_lines, hw.rows), np.int8)
        self.wgt = np.zeros((hw.weight_lines, hw.cols), np.int8)
        self.acc = np.zeros((hw.acc_lines, hw.cols), np.int32)
        self.vec = np.zeros((hw.vector_lines, hw.cols), np.int8)
        self.mult = np.zeros(hw.cols, np.int32)
        self.shift = np.ones(hw.cols, np.int32)
        self.zp = np.zeros(hw.cols, np.int32)
        self.array_w = np.zeros((hw.rows, hw.cols), np.int8)  # WS: weights held in the PEs
        self.lut = np.zeros(256, np.int8)                       # vector unit table (VecLutOp)

    # ---- helpers -----------------------------------------------------------------------------------
    def _sp(self, buf: Buffer) -> np.ndarray:
        return {Buffer.INPUT: self.inp, Buffer.WEIGHT: self.wgt, Buffer.VECTOR: self.vec,
                Buffer.ACC: self.acc}[buf]

    @staticmethod
    def _span(arr: np.ndarray, start: int, n: int, what: str) -> slice:
        if start < 0 or start + n > arr.shape[0]:
            raise HardwareError(f"{what}: lines {start}..{start + n - 1} exceed the {arr.shape[0]}-line "
                                "scratchpad; retile the program")
        return slice(start, start + n)

    def _dram_lines(self, dram: np.ndarray, base: int, stride: int, n: int, nbytes: int) -> np.ndarray:
        idx = (base + stride * np.arange(n)[:, None] + np.arange(nbytes)[None, :]) % dram.size
        return idx

    # ---- execution ---------------------------------------------------------------------------------
    def run(self, program: list[Instr], dram: np.ndarray, max_instrs: int = 1_000_000) -> RunResult:
        dram = np.array(dram, dtype=np.uint8, copy=True)
        if dram.size != self.hw.dram_bytes:
            raise HardwareError(f"DRAM image has {dram.size} bytes, the hardware {self.hw.dram_bytes}")
        for pc, ins in enumerate(program):
            if pc >= max_instrs:
                raise HardwareError(f"program ran past {max_instrs} instructions")
            if isinstance(ins, Halt):
                sch = schedule(self.hw, program[: pc + 1])
                return RunResult(dram, sch.cycles, pc + 1, sch.busy)
            self.step(ins, dram)
        raise HardwareError(f"program of {len(program)} instructions has no HALT")

    def step(self, ins: Instr, dram: np.ndarray) -> None:
        hw = self.hw
        if isinstance(ins, Load):
            nb = line_bytes(hw, ins.buf)
            raw = dram[self._dram_lines(dram, ins.dram, ins.stride, ins.lines, nb)]
            if ins.buf == Buffer.PARAM:
                if ins.lines:
                    p = raw[-1].reshape(hw.cols, 8)
                    self.mult = p[:, 0:4].copy().view("<i4").reshape(-1).astype(np.int32)
                    self.shift = (p[:, 4] & 63).astype(np.int32)
                    self.zp = p[:, 5].view(np.int8).astype(np.int32)
                return
            sp = self._sp(ins.buf)
            sp[self._span(sp, ins.sp, ins.lines, str(ins))] = raw.view(sp.dtype).reshape(ins.lines, -1)
        elif isinstance(ins, Store):
            if ins.buf not in (Buffer.VECTOR, Buffer.ACC):
                raise HardwareError(f"{ins}: STORE reads VECTOR or ACC only")
            sp = self._sp(ins.buf)
            data = sp[self._span(sp, ins.sp, ins.lines, str(ins))]
            raw = np.ascontiguousarray(data.astype(sp.dtype.newbyteorder("<"))).view(np.uint8)
            dram[self._dram_lines(dram, ins.dram, ins.stride, ins.lines, raw.shape[1])] = raw
        elif isinstance(ins, Matmul):
            self._matmul(ins)
        elif isinstance(ins, Requant):
            src = self.acc[self._span(self.acc, ins.src, ins.lines, str(ins))]
            y = requantize(src, self.mult, self.shift, self.zp)
            self.vec[self._span(self.vec, ins.dst, ins.lines, str(ins))] = y
        elif isinstance(ins, Vector) and int(ins.op) in VecLutOp._value2member_map_:
            a = self.vec[self._span(self.vec, ins.src1, ins.lines, str(ins))]
            if ins.op == VecLutOp.LUT_WRITE:
                idx = (np.arange(ins.lines)[:, None] * hw.cols + np.arange(hw.cols)[None, :]) % 256
                self.lut[idx.reshape(-1)] = a.reshape(-1)
                y = a.copy()
            else:
                y = self.lut[a.view(np.uint8)]
            self.vec[self._span(self.vec, ins.dst, ins.lines, str(ins))] = y
        elif isinstance(ins, Vector):
            a = self.vec[self._span(self.vec, ins.src1, ins.lines, str(ins))]
            b = self.vec[self._span(self.vec, ins.src2, ins.lines, str(ins))]
            y = apply_vec_op(ins.op, a, b)
            self.vec[self._span(self.vec, ins.dst, ins.lines, str(ins))] = y
        elif isinstance(ins, Sync):
            pass
        else:
            raise HardwareError(f"the model cannot execute {ins!r}")

    def _matmul(self, ins: Matmul) -> None:
        hw = self.hw
        if hw.dataflow == "ws":
            if ins.load_weights:
                self.array_w = self.wgt[self._span(self.wgt, ins.b, hw.rows, str(ins))].copy()
            a = self.inp[self._span(self.inp, ins.a, ins.count, str(ins))]
            res = a.astype(np.int64) @ self.array_w.astype(np.int64)
            dst = self._span(self.acc, ins.c, ins.count, str(ins))
        else:
            at = self.inp[self._span(self.inp, ins.a, ins.count, str(ins))]  # [K, rows] = A^T
            b = self.wgt[self._span(self.wgt, ins.b, ins.count, str(ins))]   # [K, cols]
            res = at.T.astype(np.int64) @ b.astype(np.int64)
            dst = self._span(self.acc, ins.c, hw.rows, str(ins))
        if ins.accumulate:
            res = res + self.acc[dst].astype(np.int64)
        self.acc[dst] = wrap_int32(res)
