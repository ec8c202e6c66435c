"""Synthesis resource and area estimates with yosys (Debian 0.23 or newer on PATH).

* :func:`synth_xilinx` — ``synth_xilinx -family xc7`` -> LUT / FF / DSP48E1 / BRAM counts.
* :func:`synth_generic` — yosys's generic gate-level flow with memories kept as macros -> cell counts
  and an area estimate in um^2 from :data:`CELL_AREA_UM2` plus SRAM macros from :data:`SRAM_UM2_PER_BIT`.

Both read yosys's ``stat -json`` (written with ``tee -o``), never the human-readable log.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hwcomp.errors import BackendError
from hwcomp.hardware import HardwareParams

log = logging.getLogger(__name__)

RTL_DIR = Path(__file__).resolve().parents[2] / "rtl"
SOURCES = ("pe.v", "systolic_array.v", "spad.v", "requant.v", "vec_lane.v", "vector_unit.v", "accel_top.v")

# Area of yosys's internal gate cells, in um^2 of the NanGate FreePDK45 Open Cell Library (X1 drive):
# INV_X1 0.532, NAND2_X1/NOR2_X1 0.798, AND2_X1/OR2_X1 1.064, XOR2_X1/XNOR2_X1 1.596, MUX2_X1 1.862,
# AOI21/OAI21_X1 1.064, AOI22/OAI22_X1 1.330, DFF_X1 4.522 (enable/reset flops add the mux or gate the
# library lacks). These are the cell footprints from the library's LEF; wiring, placement density and
# clock tree are not included, so treat the total as a relative, pre-layout estimate.
CELL_AREA_UM2: dict[str, float] = {
    "$_NOT_": 0.532, "$_BUF_": 0.798, "$_NAND_": 0.798, "$_NOR_": 0.798, "$_AND_": 1.064, "$_OR_": 1.064,
    "$_ANDNOT_": 1.064, "$_ORNOT_": 1.064, "$_XOR_": 1.596, "$_XNOR_": 1.596, "$_MUX_": 1.862,
    "$_AOI3_": 1.064, "$_OAI3_": 1.064, "$_AOI4_": 1.330, "$_OAI4_": 1.330,
    "$_DFF_P_": 4.522, "$_DFFE_PP_": 4.522 + 1.862, "$_DFFE_PN_": 4.522 + 1.862,
    "$_SDFF_PP0_": 4.522 + 1.064, "$_SDFF_PP1_": 4.522 + 1.064, "$_SDFF_PN0_": 4.522 + 1.064,
    "$_SDFF_PN1_": 4.522 + 1.064, "$_SDFFE_PP0P_": 4.522 + 2.926, "$_SDFFE_PP1P_": 4.522 + 2.926,
    "$_SDFFE_PN0P_": 4.522 + 2.926, "$_SDFFCE_PP0P_": 4.522 + 2.926, "$_SDFFCE_PN0P_": 4.522 + 2.926,
}
DEFAULT_CELL_UM2 = 1.596  # an unlisted gate counts as an XOR-sized cell
# SRAM macro density: a 45 nm 6T bit cell is ~0.35 um^2; compiled macros with decoders, sense amps and
# I/O roughly double that at these (few-KB) sizes, hence 0.7 um^2 per bit.
SRAM_UM2_PER_BIT = 0.7


def yosys_path() -> str:
    exe = shutil.which("yosys")
    if exe is None:
        raise BackendError("yosys is not on PATH: install it (apt-get install yosys) to estimate resources")
    return exe


# Parameters each synthesizable top takes from HardwareParams.verilog_params().
TOP_PARAMS: dict[str, tuple[str, ...] | None] = {
    "accel_top": None,  # all of them
    "systolic_array": ("ROWS", "COLS", "DATAFLOW"),
    "pe": ("DATAFLOW",),
    "requant": (),
}


def _script_head(hw: HardwareParams, top: str) -> list[str]:
    if top not in TOP_PARAMS:
        raise BackendError(f"cannot synthesize {top!r}: known tops are {', '.join(TOP_PARAMS)}")
    lines = [f"read_verilog -defer {RTL_DIR / s}" for s in SOURCES]
    keys = TOP_PARAMS[top]
    params = {k: v for k, v in hw.verilog_params().items() if keys is None or k in keys}
    if not params:
        return lines + [f"hierarchy -check -top {top}"]
    sets = " ".join(f"-set {k} {v}" for k, v in params.items())
    lines += [f"chparam {sets} {top}", f"hierarchy -check -top {top}"]
    return lines


def _run_yosys(script: list[str], top: str, timeout_s: float) -> tuple[dict, float]:
    with tempfile.TemporaryDirectory(prefix="hwcomp-yosys-") as d:
        stat = Path(d) / "stat.json"
        ys = Path(d) / "run.ys"
        ys.write_text("\n".join(script + [f"tee -q -o {stat} stat -json -top {top}"]) + "\n")
        t0 = time.monotonic()
        try:
            proc = subprocess.run([yosys_path(), "-q", "-s", str(ys)], capture_output=True, text=True,
                                  timeout=timeout_s, cwd=d)
        except subprocess.TimeoutExpired as e:
            raise BackendError(f"yosys did not finish in {timeout_s:.0f} s") from e
        elapsed = time.monotonic() - t0
        if proc.returncode != 0 or not stat.exists():
            lines = (proc.stdout + proc.stderr).splitlines()
            errors = [ln for ln in lines if "ERROR" in ln] or lines[-5:]
            raise BackendError(f"yosys failed (exit {proc.returncode}): " + "\n".join(errors)[-2000:])
        text = stat.read_text()
    # yosys 0.23 prints the `-top` hierarchy as plain text inside the JSON: keep only JSON lines.
    keep = [ln for ln in text.splitlines()
            if ln.strip().startswith('"') or (ln.strip() and set(ln.strip()) <= set("{}[],"))]
    m = re.search(r"\{.*\}", "\n".join(keep), re.S)
    if not m:
        raise BackendError("yosys stat -json produced no JSON")
    return json.loads(m.group(0)), elapsed


def _top_cells(stat: dict, top: str) -> dict[str, int]:
    design = stat.get("design") or stat["modules"].get(f"\\{top}") or next(iter(stat["modules"].values()))
    return {k: int(v) for k, v in design.get("num_cells_by_type", {}).items()}


@dataclass(frozen=True)
class XilinxResources:
    config: str
    lut: int
    ff: int
    dsp: int
    bram36: float          # RAMB36E1 + RAMB18E1/2
    lutram: int
    carry4: int
    seconds: float
    cells: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GenericArea:
    config: str
    cells: int
    flops: int
    memories: int
    sram_bits: int
    logic_um2: float
    sram_um2: float
    seconds: float
    cells_by_type: dict[str, int] = field(default_factory=dict)

    @property
    def total_um2(self) -> float:
        return self.logic_um2 + self.sram_um2

    def as_dict(self) -> dict:
        d = asdict(self)
        d["total_um2"] = round(self.total_um2, 1)
        return d


def synth_xilinx(hw: HardwareParams, *, top: str = "accel_top", timeout_s: float = 1800) -> XilinxResources:
    """Map ``top`` configured by ``hw`` onto a Xilinx 7-series part (no place and route)."""
    script = _script_head(hw, top) + [f"synth_xilinx -family xc7 -top {top}"]
    stat, secs = _run_yosys(script, top, timeout_s)
    cells = _top_cells(stat, top)
    lut = sum(v for k, v in cells.items() if re.fullmatch(r"LUT\d", k))
    ff = sum(v for k, v in cells.items() if re.fullmatch(r"FD[CPRSE]E?", k))
    dsp = cells.get("DSP48E1", 0)
    bram = cells.get("RAMB36E1", 0) + 0.5 * cells.get("RAMB18E1", 0)
    lutram = sum(v for k, v in cells.items() if k.startswith("RAM") and not k.startswith("RAMB"))
    return XilinxResources(hw.name, lut, ff, dsp, bram, lutram, cells.get("CARRY4", 0), round(secs, 2), cells)


def sram_bits(hw: HardwareParams, top: str = "accel_top") -> int:
    """Bits of every memory in accel_top: four scratchpads (vector twice: two read ports) + imem."""
    if top != "accel_top":
        return 0
    return 8 * (hw.input_sp_bytes + hw.weight_sp_bytes + hw.acc_sp_bytes + 2 * hw.vector_sp_bytes) \
        + 128 * hw.imem_depth


def synth_generic(hw: HardwareParams, *, top: str = "accel_top", timeout_s: float = 1800) -> GenericArea:
    """Generic gate-level synthesis (yosys ``synth`` with memories kept as SRAM macros)."""
    script = _script_head(hw, top) + [
        # No flatten: each unique module (one PE, one requant lane, ...) is optimised once and
        # `stat -top` multiplies by the instance counts, which keeps 32x32 arrays tractable.
        "proc", "opt_expr", "opt_clean", "opt -nodffe -nosdff", "fsm", "opt", "wreduce", "peepopt",
        "opt_clean", "alumacc", "share", "opt", "memory -nomap", "opt_clean", "opt -fast -full", "techmap",
        "opt -fast", "abc -fast", "opt -fast", "opt_clean",
    ]
    stat, secs = _run_yosys(script, top, timeout_s)
    cells = _top_cells(stat, top)
    mems = sum(v for k, v in cells.items() if k.startswith("$mem"))
    logic = {k: v for k, v in cells.items() if not k.startswith("$mem")}
    area = sum(CELL_AREA_UM2.get(k, DEFAULT_CELL_UM2) * v for k, v in logic.items())
    flops = sum(v for k, v in logic.items() if "DFF" in k)
    bits = sram_bits(hw, top)
    return GenericArea(hw.name, sum(logic.values()), flops, mems, bits, round(area, 1),
                       round(bits * SRAM_UM2_PER_BIT, 1), round(secs, 2), cells)
