"""cocotb benches of the RTL blocks on Icarus and Verilator (bit-exact against numpy / intmath)."""

from __future__ import annotations

import numpy as np
import pytest

from backends.rtl.isa import VecOp
from backends.rtl.vector_ops import apply_vec_op
from hwcomp.hardware import HardwareParams
from sim.runner import hw_config, run_bench

pytestmark = pytest.mark.rtl

# Small sizes on Icarus, bigger on Verilator (compiled, ~50x faster per cycle).
ARRAY = {"icarus": ("4x4", 48, 256), "verilator": ("8x8", 256, 4096)}   # spec, WS rows streamed, OS K
REQUANT_N = {"icarus": 2000, "verilator": 20000}


def _ok(res) -> None:
    tail = res.log_file.read_text(errors="replace")[-3000:] if res.log_file.exists() else ""
    assert res.tests >= 1 and res.failed == 0, f"bench failed ({res.failed}/{res.tests}); {res.log_file}\n{tail}"


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_pe_matches_register_model(simulator: str, dataflow: str) -> None:
    hw = HardwareParams.from_string(f"1x1-{dataflow}")
    res = run_bench(simulator, "pe", "tb_pe", {"DATAFLOW": hw.dataflow_code},
                    {"dataflow": hw.dataflow_code, "seed": 7, "cycles": 400})
    _ok(res)
    assert res.outputs["checked"] == 400


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_array_matmul_is_exact_including_min_products(simulator: str, dataflow: str) -> None:
    spec, m, k = ARRAY[simulator]
    hw = HardwareParams.from_string(f"{spec}-{dataflow}")
    params = {key: hw.verilog_params()[key] for key in ("ROWS", "COLS", "DATAFLOW")}
    res = run_bench(simulator, "systolic_array", "tb_array", params,
                    {"hw": hw_config(hw), "seed": 11, "m": m, "k": k, "cases": ["min", "mixed", "random"]})
    _ok(res)
    cases = {c["kind"]: c["max_abs"] for c in res.outputs["cases"]}
    # all (-128)*(-128) products: WS sums `rows` of them per output, OS sums K
    assert cases["min"] == 16384 * (hw.rows if dataflow == "ws" else k)


def test_requant_is_bit_exact_with_intmath(simulator: str) -> None:
    res = run_bench(simulator, "requant", "tb_requant", {}, {"seed": 3, "n": REQUANT_N[simulator]})
    _ok(res)
    assert res.outputs["checked"] == REQUANT_N[simulator] and res.outputs["saturated"] > 0


def test_vector_unit_matches_golden_with_two_passes(simulator: str) -> None:
    hw = HardwareParams.from_string("4x8", vector_lanes=4)
    rng = np.random.default_rng(5)
    cases = []
    for op in VecOp:
        a = rng.integers(-128, 128, (6, hw.cols))
        b = rng.integers(-128, 128, (6, hw.cols))
        a[0], b[0] = 127, 127       # saturation corners
        a[1], b[1] = -128, 127
        cases.append({"op": int(op), "a": a.tolist(), "b": b.tolist(), "want": apply_vec_op(op, a, b).tolist()})
    res = run_bench(simulator, "vector_unit", "tb_vector", {"COLS": hw.cols, "VEC_LANES": hw.vector_lanes},
                    {"hw": hw_config(hw), "seed": 1, "cases": cases})
    _ok(res)
    assert res.outputs["checked"] == 6 * len(VecOp)
