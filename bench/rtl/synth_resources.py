"""Synthesize accel_top for several array sizes with yosys and record resources.

    python bench/rtl/synth_resources.py [--sizes 8x8 16x16 32x32] [--out bench/rtl/synth_resources.json]

Xilinx 7-series mapping (synth_xilinx -family xc7) and generic gate-level area (see hwcomp/cost/synth.py).
32x32 runs the generic flow only unless --xilinx-32 is given (synth_xilinx on it takes too long here).
The JSON is rewritten after every result so a slow configuration never loses the finished ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from hwcomp.cost.synth import (CELL_AREA_UM2, SRAM_UM2_PER_BIT, synth_generic,  # noqa: E402
                               synth_xilinx, yosys_path)
from hwcomp.errors import BackendError  # noqa: E402
from hwcomp.hardware import HardwareParams  # noqa: E402

log = logging.getLogger("synth_resources")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["8x8", "16x16", "32x32"])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    ap.add_argument("--xilinx-32", action="store_true", help="also run synth_xilinx on 32x32")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--flows", nargs="+", default=["xilinx", "generic"], choices=["xilinx", "generic"])
    ap.add_argument("--merge", nargs="+", type=Path, help="merge JSON files of earlier runs into --out")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.merge:
        return merge(args.merge, args.out)

    version = subprocess.run([yosys_path(), "-V"], capture_output=True, text=True).stdout.strip()
    report: dict = {
        "yosys": version, "host": platform.machine(),
        "notes": ("accel_top only (no DRAM model); default HardwareParams.from_string(size) buffers; "
                  "xilinx = synth_xilinx -family xc7, no place&route; generic area = NanGate45 X1 cell "
                  f"footprints + {SRAM_UM2_PER_BIT} um^2/SRAM bit (hwcomp/cost/synth.py)"),
        "cell_area_um2": CELL_AREA_UM2, "results": {},
    }
    for size in args.sizes:
        hw = HardwareParams.from_string(size)
        entry: dict = {"params": hw.verilog_params()}
        report["results"][size] = entry
        jobs = [(f, {"xilinx": synth_xilinx, "generic": synth_generic}[f]) for f in args.flows
                if f != "xilinx" or size != "32x32" or args.xilinx_32]
        for name, fn in jobs:
            log.info("%s %s ...", size, name)
            try:
                res = fn(hw, timeout_s=args.timeout)
                d = res.as_dict()
                d.pop("cells" if name == "xilinx" else "cells_by_type")
                d["cells_by_type" if name == "generic" else "cells"] = (
                    res.cells if name == "xilinx" else res.cells_by_type)
                entry[name] = d
                log.info("  %s", {k: v for k, v in d.items() if not isinstance(v, dict)})
            except BackendError as e:
                entry[name] = {"error": str(e)[:500]}
                log.info("  failed: %s", str(e)[:200])
            args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0


def merge(parts: list[Path], out: Path) -> int:
    """Combine per-size / per-flow JSON files (e.g. runs done in parallel) into one report."""
    report: dict = {}
    for part in sorted(parts):
        d = json.loads(part.read_text())
        results = d.pop("results")
        report.update({k: v for k, v in d.items() if k != "results"})
        for size, entry in results.items():
            report.setdefault("results", {}).setdefault(size, {}).update(entry)
    out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
