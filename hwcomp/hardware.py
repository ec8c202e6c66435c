"""The accelerator's parameters: one frozen dataclass from which everything else is derived.

The RTL (Verilog parameters), the cocotb runner, the instruction-level model, the cost model and the
compiler's tiling all read a :class:`HardwareParams`; nothing re-derives a width or a depth by hand.

Scratchpad geometry (one "line" is what the array consumes or produces in one cycle):

===========  ==================  ==========================================================
scratchpad   line                holds
===========  ==================  ==========================================================
input        ``rows`` int8       WS: one row of A (a K-slice); OS: one column of A (an M-slice)
weight       ``cols`` int8       one row of B (an N-slice)
accumulator  ``cols`` int32      one row of C (partial sums)
vector       ``cols`` int8       requantized outputs / vector-unit operands and results
===========  ==================  ==========================================================
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from hwcomp.errors import HardwareError

DATAFLOWS = ("ws", "os")
MAX_DIM = 128
MAX_SP_LINES = 1 << 16  # scratchpad addresses are 16-bit instruction fields


def clog2(n: int) -> int:
    """Bits needed to address ``n`` entries (at least 1), like Verilog's ``$clog2`` clamped to 1."""
    return max(1, (n - 1).bit_length())


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True, kw_only=True)
class HardwareParams:
    """Accelerator configuration. Sizes are in bytes, the clock in MHz."""

    rows: int = 16
    cols: int = 16
    dataflow: str = "ws"
    input_sp_bytes: int = 16 * 1024
    weight_sp_bytes: int = 16 * 1024
    acc_sp_bytes: int = 16 * 1024
    vector_sp_bytes: int = 4 * 1024
    dram_bus_bytes: int = 16
    dram_bytes: int = 1 << 20  # size of the simulation DRAM model (the ISA addresses 32 bits)
    clock_mhz: float = 200.0
    vector_lanes: int = 16
    imem_depth: int = 1024  # instruction memory entries (128-bit words)

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 1 <= v <= MAX_DIM:
                raise HardwareError(f"array {self.rows}x{self.cols} is impossible: rows and cols must be "
                                    f"integers 1..{MAX_DIM} ({name}={v!r})")
        if self.dataflow not in DATAFLOWS:
            raise HardwareError(f"dataflow {self.dataflow!r} is unknown: use 'ws' (weight-stationary) or "
                                "'os' (output-stationary)")
        for name, line in (("input_sp_bytes", self.input_line_bytes), ("weight_sp_bytes", self.weight_line_bytes),
                           ("acc_sp_bytes", self.acc_line_bytes), ("vector_sp_bytes", self.vector_line_bytes)):
            v = getattr(self, name)
            if not isinstance(v, int) or v <= 0 or v % line:
                raise HardwareError(f"{name}={v!r} is impossible: it must be a positive multiple of its "
                                    f"line size {line} bytes")
            lines = v // line
            if not _is_pow2(lines) or not self.rows <= lines <= MAX_SP_LINES:
                raise HardwareError(f"{name}={v!r} gives {lines} lines of {line} bytes: the line count must be "
                                    f"a power of two in {self.rows}..{MAX_SP_LINES} (one tile must fit); "
                                    f"try {line * max(self.rows, 1 << clog2(max(lines, 1)))}")
        if not _is_pow2(self.dram_bus_bytes) or self.dram_bus_bytes > 64:
            raise HardwareError(f"dram_bus_bytes={self.dram_bus_bytes!r} is impossible: use a power of two 1..64")
        if not _is_pow2(self.dram_bytes) or not 1024 <= self.dram_bytes <= 1 << 32:
            raise HardwareError(f"dram_bytes={self.dram_bytes!r} is impossible: use a power of two 1 KiB..4 GiB")
        if not self.clock_mhz > 0:
            raise HardwareError(f"clock_mhz={self.clock_mhz!r} is impossible: it must be > 0")
        if not isinstance(self.vector_lanes, int) or not 1 <= self.vector_lanes <= self.cols \
                or self.cols % self.vector_lanes:
            raise HardwareError(f"vector_lanes={self.vector_lanes!r} is impossible: it must divide cols={self.cols}")
        if not _is_pow2(self.imem_depth) or not 2 <= self.imem_depth <= 1 << 16:
            raise HardwareError(f"imem_depth={self.imem_depth!r} is impossible: use a power of two 2..65536")

    # ---- construction helpers -------------------------------------------------------------------
    @classmethod
    def from_string(cls, spec: str, **overrides: object) -> HardwareParams:
        """``"16x16"`` or ``"8x8-os"`` -> params; other fields keep defaults unless overridden."""
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*(?:[-_:](ws|os))?\s*", spec)
        if not m:
            raise HardwareError(f"array spec {spec!r} is not understood: write ROWSxCOLS, e.g. '16x16' or '8x8-os'")
        kw: dict[str, object] = {"rows": int(m.group(1)), "cols": int(m.group(2))}
        if m.group(3):
            kw["dataflow"] = m.group(3)
        rows, cols = int(kw["rows"]), int(kw["cols"])
        if 1 <= rows <= MAX_DIM and 1 <= cols <= MAX_DIM:
            # Scale the default buffers with the array so that small/large presets stay valid.
            kw.setdefault("vector_lanes", cols)
            for name, line in (("input_sp_bytes", rows), ("weight_sp_bytes", cols), ("acc_sp_bytes", 4 * cols),
                               ("vector_sp_bytes", cols)):
                kw[name] = line * max(256, 1 << clog2(rows))
        kw.update(overrides)
        return cls(**kw)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> HardwareParams:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        """Short, filesystem-safe identifier of every field that changes the RTL."""
        return (f"{self.rows}x{self.cols}-{self.dataflow}-in{self.input_sp_bytes}-w{self.weight_sp_bytes}"
                f"-acc{self.acc_sp_bytes}-vec{self.vector_sp_bytes}-bus{self.dram_bus_bytes}"
                f"-lanes{self.vector_lanes}-imem{self.imem_depth}-dram{self.dram_bytes}")

    # ---- derived geometry ----------------------------------------------------------------------
    @property
    def input_line_bytes(self) -> int:
        return self.rows

    @property
    def weight_line_bytes(self) -> int:
        return self.cols

    @property
    def acc_line_bytes(self) -> int:
        return 4 * self.cols

    @property
    def vector_line_bytes(self) -> int:
        return self.cols

    @property
    def param_line_bytes(self) -> int:
        """Requant parameters for ``cols`` channels: int32 multiplier, uint8 shift, int8 zero point, 2 pad."""
        return 8 * self.cols

    @property
    def input_lines(self) -> int:
        return self.input_sp_bytes // self.input_line_bytes

    @property
    def weight_lines(self) -> int:
        return self.weight_sp_bytes // self.weight_line_bytes

    @property
    def acc_lines(self) -> int:
        return self.acc_sp_bytes // self.acc_line_bytes

    @property
    def vector_lines(self) -> int:
        return self.vector_sp_bytes // self.vector_line_bytes

    @property
    def input_addr_bits(self) -> int:
        return clog2(self.input_lines)

    @property
    def weight_addr_bits(self) -> int:
        return clog2(self.weight_lines)

    @property
    def acc_addr_bits(self) -> int:
        return clog2(self.acc_lines)

    @property
    def vector_addr_bits(self) -> int:
        return clog2(self.vector_lines)

    @property
    def dram_addr_bits(self) -> int:
        return clog2(self.dram_bytes)

    @property
    def imem_addr_bits(self) -> int:
        return clog2(self.imem_depth)

    @property
    def vector_passes(self) -> int:
        """Cycles the vector unit needs per line (``cols / vector_lanes``)."""
        return self.cols // self.vector_lanes

    @property
    def dataflow_code(self) -> int:
        return DATAFLOWS.index(self.dataflow)

    @property
    def peak_macs_per_s(self) -> float:
        return self.rows * self.cols * self.clock_mhz * 1e6

    def beats(self, nbytes: int) -> int:
        """DRAM bus beats to move ``nbytes`` contiguous bytes."""
        return -(-nbytes // self.dram_bus_bytes)

    # ---- emission ------------------------------------------------------------------------------
    def verilog_params(self, *, sim: bool = False) -> dict[str, int]:
        """Parameters of ``accel_top`` (``sim=True`` adds those of the simulation wrapper ``accel_sim_top``)."""
        p = {
            "ROWS": self.rows,
            "COLS": self.cols,
            "DATAFLOW": self.dataflow_code,
            "IN_DEPTH": self.input_lines,
            "W_DEPTH": self.weight_lines,
            "ACC_DEPTH": self.acc_lines,
            "VEC_DEPTH": self.vector_lines,
            "BUS_BYTES": self.dram_bus_bytes,
            "VEC_LANES": self.vector_lanes,
            "IMEM_DEPTH": self.imem_depth,
        }
        if sim:
            p["DRAM_BYTES"] = self.dram_bytes
        return p
