"""Instruction-level model of the accelerator: executes a program bit-exactly with numpy and counts
cycles analytically. It is the basis of the cost model and the oracle of the RTL benches.

The cycle formulas mirror the controller FSM of ``rtl/accel_top.v`` (instructions run one at a time):

=========  ==========================================================================================
every      3 cycles (fetch, decode, retire); HALT: 2 (fetch, decode)
LOAD       lines * beats(line bytes) + 3            (beats pipelined across lines; 2 cycles read latency, write)
STORE      lines * (beats(line bytes) + 3)          (SRAM read, latency, latch, write beats)
MATMUL ws  (rows + 1 if load_weights) + count + rows + cols + 4   (count = 0: + 2 instead)
MATMUL os  count + max(rows + cols - 3, 0) + rows + 7
REQUANT    lines + 5                                (2 read latency, 2 requant stages, write)
VECTOR     lines * (cols / vector_lanes + 3)
SYNC       0
=========  ==========================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwcomp.errors import HardwareError
from hwcomp.hardware import HardwareParams
from hwcomp.ops.intmath import requantize, wrap_int32

from .isa import Buffer, Halt, Instr, Load, Matmul, Requant, Store, Sync, Vector, VecLutOp
from .vector_ops import apply_vec_op

OVERHEAD = 3  # fetch, decode, retire


def instr_cycles(hw: HardwareParams, ins: Instr) -> int:
    """Cycles the RTL spends on one instruction (see the module docstring)."""
    if isinstance(ins, Halt):
        return 2
    if isinstance(ins, Sync):
        return OVERHEAD
    if isinstance(ins, Load):
        return OVERHEAD + (ins.lines * hw.beats(line_bytes(hw, ins.buf)) + 3 if ins.lines else 0)
    if isinstance(ins, Store):
        return OVERHEAD + ins.lines * (hw.beats(line_bytes(hw, ins.buf)) + 3)
    if isinstance(ins, Matmul):
        r, c = hw.rows, hw.cols
        if hw.dataflow == "ws":
            body = (r + 1 if ins.load_weights else 0) + (ins.count + r + c + 4 if ins.count else 2)
        else:
            body = ins.count + max(r + c - 3, 0) + r + 7
        return OVERHEAD + body
    if isinstance(ins, Requant):
        return OVERHEAD + (ins.lines + 5 if ins.lines else 0)
    if isinstance(ins, Vector):
        return OVERHEAD + ins.lines * (hw.vector_passes + 3)
    raise HardwareError(f"no cycle model for {ins!r}")


def program_cycles(hw: HardwareParams, program: list[Instr]) -> int:
    return sum(instr_cycles(hw, i) for i in program)


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
        per: list[int] = []
        for pc, ins in enumerate(program):
            if pc >= max_instrs:
                raise HardwareError(f"program ran past {max_instrs} instructions")
            per.append(instr_cycles(self.hw, ins))
            if isinstance(ins, Halt):
                return RunResult(dram, sum(per), len(per), per)
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
