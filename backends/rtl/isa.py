"""Instruction set of the hwcomp systolic-array accelerator: one dataclass per instruction.

Every instruction is one 128-bit word with the same field layout (``rtl/accel_top.v`` decodes it)::

    bits      field   meaning
    [3:0]     op      Opcode
    [11:4]    func    LOAD/STORE: Buffer; MATMUL: flags (bit0 accumulate, bit1 load weights); VECTOR: VecOp
    [27:12]   x       scratchpad line (LOAD/STORE: the buffer; MATMUL: input; REQUANT: acc; VECTOR: src1)
    [43:28]   y       MATMUL: weight line; VECTOR: src2
    [59:44]   z       MATMUL: acc line; REQUANT: vector line; VECTOR: dst
    [75:60]   n       lines (MATMUL: WS rows of A streamed / OS reduction length K)
    [107:76]  dram    DRAM byte address of the first line
    [127:108] stride  DRAM bytes between consecutive lines (0 replicates one line)

A program file (:func:`assemble`) holds one word per line as 32 lowercase hex digits, most significant
digit first, LF line endings: deterministic byte for byte, and readable by ``$readmemh``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import ClassVar, Union

from hwcomp.errors import HardwareError

WORD_BITS = 128
FIELDS: dict[str, tuple[int, int]] = {  # name -> (lsb, width)
    "op": (0, 4), "func": (4, 8), "x": (12, 16), "y": (28, 16), "z": (44, 16), "n": (60, 16),
    "dram": (76, 32), "stride": (108, 20),
}


class Opcode(enum.IntEnum):
    LOAD = 1
    STORE = 2
    MATMUL = 3
    REQUANT = 4
    VECTOR = 5
    SYNC = 6
    HALT = 7


class Buffer(enum.IntEnum):
    """Scratchpads a LOAD/STORE names. Line sizes: see ``hwcomp.hardware``."""

    INPUT = 0   # rows int8 per line
    WEIGHT = 1  # cols int8
    VECTOR = 2  # cols int8
    PARAM = 3   # cols x (int32 multiplier, uint8 shift, int8 zero point, 2 pad bytes); one line, LOAD only
    ACC = 4     # cols int32 (LOAD initialises, e.g. with a bias; STORE reads raw accumulators)


class VecOp(enum.IntEnum):
    """Vector-unit operations (``rtl/vec_lane.v``); 16..31 are reserved for the I-BERT kernels."""

    COPY = 0
    ADD = 1
    SUB = 2
    MAX = 3
    MIN = 4
    RELU = 5
    MUL = 6


class VecLutOp(enum.IntEnum):
    """Table ops of the vector unit (codes 16..31, kept apart from the stateless element-wise ``VecOp``s):
    ``LUT_WRITE`` copies src1 lines into the unit's 256-entry int8 table (``table[line*cols + j]``) and to dst;
    ``LUT`` computes ``dst = table[src1 as unsigned byte]``."""

    LUT_WRITE = 16
    LUT = 17


@dataclass(frozen=True)
class _Instr:
    opcode: ClassVar[Opcode]
    # instruction attribute -> word field; subclasses fill it in
    layout: ClassVar[dict[str, str]] = {}

    def fields(self) -> dict[str, int]:
        out = {"op": int(self.opcode)}
        for attr, fld in self.layout.items():
            out[fld] = int(getattr(self, attr))
        return out

    def __str__(self) -> str:
        vals = {f.name: getattr(self, f.name) for f in fields(self)}
        args = ", ".join(f"{k}={v.name if isinstance(v, enum.Enum) else v}" for k, v in vals.items())
        return f"{self.opcode.name}({args})"


@dataclass(frozen=True)
class Load(_Instr):
    """DRAM -> scratchpad: ``lines`` lines from ``dram + i*stride`` into ``buf[sp + i]``."""

    buf: Buffer
    sp: int
    lines: int
    dram: int
    stride: int
    opcode: ClassVar[Opcode] = Opcode.LOAD
    layout: ClassVar[dict[str, str]] = {"buf": "func", "sp": "x", "lines": "n", "dram": "dram", "stride": "stride"}


@dataclass(frozen=True)
class Store(_Instr):
    """Scratchpad -> DRAM (``buf`` is VECTOR or ACC)."""

    buf: Buffer
    sp: int
    lines: int
    dram: int
    stride: int
    opcode: ClassVar[Opcode] = Opcode.STORE
    layout: ClassVar[dict[str, str]] = Load.layout


@dataclass(frozen=True)
class Matmul(_Instr):
    """One array tile. WS: acc[c+m] (+)= input[a+m] @ W for m < count, W = weight[b .. b+rows) (loaded
    into the array when ``load_weights``, else the weights already there). OS: acc[c+i] (+)=
    sum_k input[a+k][i] * weight[b+k] for i < rows, k < count."""

    a: int
    b: int
    c: int
    count: int
    accumulate: bool = False
    load_weights: bool = True
    opcode: ClassVar[Opcode] = Opcode.MATMUL
    layout: ClassVar[dict[str, str]] = {"a": "x", "b": "y", "c": "z", "count": "n"}

    def fields(self) -> dict[str, int]:
        out = super().fields()
        out["func"] = int(self.accumulate) | int(self.load_weights) << 1
        return out


@dataclass(frozen=True)
class Requant(_Instr):
    """vector[dst+i] = requantize(acc[src+i], PARAM) for i < lines (``hwcomp.ops.intmath.requantize``)."""

    src: int
    dst: int
    lines: int
    opcode: ClassVar[Opcode] = Opcode.REQUANT
    layout: ClassVar[dict[str, str]] = {"src": "x", "dst": "z", "lines": "n"}


@dataclass(frozen=True)
class Vector(_Instr):
    """vector[dst+i] = op(vector[src1+i], vector[src2+i]) element-wise, saturating to int8."""

    op: VecOp | VecLutOp
    src1: int
    src2: int
    dst: int
    lines: int
    opcode: ClassVar[Opcode] = Opcode.VECTOR
    layout: ClassVar[dict[str, str]] = {"op": "func", "src1": "x", "src2": "y", "dst": "z", "lines": "n"}


@dataclass(frozen=True)
class Sync(_Instr):
    opcode: ClassVar[Opcode] = Opcode.SYNC


@dataclass(frozen=True)
class Halt(_Instr):
    opcode: ClassVar[Opcode] = Opcode.HALT


Instr = Union[Load, Store, Matmul, Requant, Vector, Sync, Halt]
_BY_OPCODE: dict[int, type] = {c.opcode: c for c in (Load, Store, Matmul, Requant, Vector, Sync, Halt)}


def encode(instr: Instr) -> int:
    """Instruction -> 128-bit word. Raises HardwareError naming the field that does not fit."""
    word = 0
    for name, value in instr.fields().items():
        lsb, width = FIELDS[name]
        if not 0 <= value < 1 << width:
            raise HardwareError(f"{instr}: field {name}={value} does not fit in {width} bits "
                                f"(0..{(1 << width) - 1}); split the transfer or move the buffer")
        word |= value << lsb
    return word


def _field(word: int, name: str) -> int:
    lsb, width = FIELDS[name]
    return (word >> lsb) & ((1 << width) - 1)


def decode(word: int) -> Instr:
    """128-bit word -> instruction. Raises HardwareError on an unknown opcode or enum value."""
    op = _field(word, "op")
    cls = _BY_OPCODE.get(op)
    if cls is None:
        raise HardwareError(f"word {word:032x}: opcode {op} is not an instruction (known: "
                            f"{', '.join(f'{o.name}={o.value}' for o in Opcode)})")
    if cls is Matmul:
        func = _field(word, "func")
        return Matmul(a=_field(word, "x"), b=_field(word, "y"), c=_field(word, "z"), count=_field(word, "n"),
                      accumulate=bool(func & 1), load_weights=bool(func & 2))
    kw: dict[str, object] = {}
    for attr, fld in cls.layout.items():
        value = _field(word, fld)
        if attr == "buf":
            value = Buffer(value)
        elif attr == "op":
            value = VecOp(value) if value in VecOp._value2member_map_ else VecLutOp(value)
        kw[attr] = value
    return cls(**kw)


def assemble(program: list[Instr]) -> str:
    """Program -> hex text (one 32-digit word per line)."""
    return "".join(f"{encode(i):032x}\n" for i in program)


def disassemble(text: str) -> list[Instr]:
    return [decode(int(line, 16)) for line in text.split() if line]


def write_program(path: str, program: list[Instr]) -> None:
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(assemble(program))
