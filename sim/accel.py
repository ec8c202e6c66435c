"""Run an assembled program on the RTL (``accel_sim_top``) and return the final DRAM image and cycles.

Independent of the compiler: it takes the program as hex text (``backends.rtl.isa.assemble``) and its
disassembly (for error messages), the initial DRAM image and the image the model expects.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwcomp.errors import SimulationError
from hwcomp.hardware import HardwareParams

from .bench_util import hex_lines, read_hex_bytes
from .runner import cache_dir, hw_config, run_bench


@dataclass(frozen=True)
class AccelRun:
    dram: np.ndarray
    cycles: int
    retired: int
    log_file: Path


def write_dram_hex(path: Path, image: np.ndarray) -> None:
    """One byte per line, as ``$readmemh`` reads into ``reg [7:0] mem[]``."""
    path.write_bytes(hex_lines(image))


def run_program(sim: str, hw: HardwareParams, program_hex: str, disasm: list[str], dram: np.ndarray,
                expected: np.ndarray, *, timeout_cycles: int) -> AccelRun:
    """Simulate; raises SimulationError on a hang (naming the last retired instruction), an error halt,
    or a final DRAM image different from ``expected``."""
    work = cache_dir().parent / "programs"
    work.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix="prog-", dir=work))
    (d / "program.hex").write_text(program_hex, encoding="ascii")
    write_dram_hex(d / "dram_init.hex", dram)
    np.save(d / "expect.npy", np.asarray(expected, np.uint8))
    cfg = {"hw": hw_config(hw), "disasm": disasm, "program_hex": str(d / "program.hex"),
           "dump_hex": str(d / "dram_out.hex"), "expect_npy": str(d / "expect.npy"),
           "dram_bytes": hw.dram_bytes, "timeout_cycles": timeout_cycles}
    res = run_bench(sim, "accel_sim_top", "tb_accel", hw.verilog_params(sim=True), cfg,
                    plusargs=[f"+DRAM_INIT={d / 'dram_init.hex'}", f"+DRAM_DUMP={d / 'dram_out.hex'}"])
    if res.failed or not res.tests:
        tail = res.log_file.read_text(errors="replace")[-4000:] if res.log_file.exists() else ""
        raise SimulationError(f"{sim}: program failed ({res.failed}/{res.tests} tests); log {res.log_file}\n{tail}")
    image = read_hex_bytes(str(d / "dram_out.hex"), hw.dram_bytes)
    if not os.environ.get("HWCOMP_KEEP_SIM"):
        shutil.rmtree(d, ignore_errors=True)
    return AccelRun(image, int(res.outputs["cycles"]), int(res.outputs["retired"]), res.log_file)
