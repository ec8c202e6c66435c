"""Tensor types of hwcomp IR: dtypes, static shapes and quantization parameters."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class DType(str, enum.Enum):
    """Element types. int4 is stored unpacked in numpy (int8 holding -8..7) and packed two per byte on disk."""

    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"
    float64 = "float64"
    int4 = "int4"
    uint4 = "uint4"
    int8 = "int8"
    uint8 = "uint8"
    int16 = "int16"
    int32 = "int32"
    int64 = "int64"
    uint16 = "uint16"
    uint32 = "uint32"
    uint64 = "uint64"
    bool = "bool"

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(_NUMPY[self])

    @property
    def bits(self) -> int:
        return _BITS[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.float32, DType.float16, DType.bfloat16, DType.float64)

    @property
    def is_int(self) -> bool:
        return not self.is_float and self is not DType.bool

    @classmethod
    def from_numpy(cls, dt: np.dtype | type) -> "DType":
        dt = np.dtype(dt)
        for k, v in _NUMPY.items():
            if k in (DType.int4, DType.uint4):
                continue
            if np.dtype(v) == dt:
                return k
        raise ValueError(f"no hwcomp dtype for numpy dtype {dt}")

    def __str__(self) -> str:  # noqa: D105
        return self.value


_NUMPY = {
    DType.float32: "float32", DType.float16: "float16", DType.bfloat16: "float32", DType.float64: "float64",
    DType.int4: "int8", DType.uint4: "uint8", DType.int8: "int8", DType.uint8: "uint8", DType.int16: "int16",
    DType.int32: "int32", DType.int64: "int64", DType.uint16: "uint16", DType.uint32: "uint32",
    DType.uint64: "uint64", DType.bool: "bool",
}
_BITS = {
    DType.float32: 32, DType.float16: 16, DType.bfloat16: 16, DType.float64: 64, DType.int4: 4, DType.uint4: 4,
    DType.int8: 8, DType.uint8: 8, DType.int16: 16, DType.int32: 32, DType.int64: 64, DType.uint16: 16,
    DType.uint32: 32, DType.uint64: 64, DType.bool: 8,
}


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization of a tensor: real = scale * (q - zero_point).

    ``axis`` is None for per-tensor, else the channel axis of ``scale``/``zero_point``.
    ``group_size`` > 0 means group-wise along ``axis`` (the reduction axis of a weight): scale has
    shape [..., n_groups, ...]. ``bits`` is the integer width; ``signed`` its signedness.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    bits: int = 8
    signed: bool = True
    axis: int | None = None
    group_size: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", np.asarray(self.scale, dtype=np.float32))
        object.__setattr__(self, "zero_point", np.asarray(self.zero_point, dtype=np.int32))
        if not 2 <= self.bits <= 16:
            raise ValueError(f"bit width {self.bits} outside 2..16")

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def to_json(self) -> dict:
        return {
            "scale": self.scale.tolist(), "zero_point": self.zero_point.tolist(), "bits": self.bits,
            "signed": self.signed, "axis": self.axis, "group_size": self.group_size,
        }

    @classmethod
    def from_json(cls, d: dict) -> "QuantParams":
        return cls(np.array(d["scale"], np.float32), np.array(d["zero_point"], np.int32), d["bits"],
                   d["signed"], d["axis"], d["group_size"])

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, QuantParams) and self.bits == other.bits and self.signed == other.signed
                and self.axis == other.axis and self.group_size == other.group_size
                and np.array_equal(self.scale, other.scale) and np.array_equal(self.zero_point, other.zero_point))

    __hash__ = None  # type: ignore[assignment]


@dataclass
class TensorType:
    """Static shape and dtype of a value, with optional quantization and sparsity annotations."""

    shape: tuple[int, ...]
    dtype: DType
    quant: QuantParams | None = None
    sparsity: dict | None = field(default=None)

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)
        self.dtype = DType(self.dtype)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        s = f"{self.dtype}[{'x'.join(map(str, self.shape))}]"
        if self.quant is not None:
            q = self.quant
            sc = f"{float(q.scale):.6g}" if q.scale.size == 1 else f"<{q.scale.size}>"
            zp = f"{int(q.zero_point)}" if q.zero_point.size == 1 else f"<{q.zero_point.size}>"
            s += f"{{q{q.bits}{'s' if q.signed else 'u'} scale={sc} zp={zp}"
            if q.axis is not None:
                s += f" axis={q.axis}"
            if q.group_size:
                s += f" group={q.group_size}"
            s += "}"
        if self.sparsity:
            s += "{" + " ".join(f"{k}={v}" for k, v in sorted(self.sparsity.items())) + "}"
        return s
