"""The fpga/asic backend: compile a quantized graph into an artifact directory and run it on the RTL.

``compile(graph, outdir, array="16x16", dataflow="ws")`` writes (deterministic bytes, fixed order)::

    rtl/            the configured accelerator (backends/rtl/generate.py) + the simulation top and DRAM model
    program/        one hex file per hardware-segment chunk (isa.assemble; each ends with HALT)
    plan.json       segments (chunks, host writes/reads, phases), host steps with reasons, DRAM tensor table
    dram_image.bin  the static DRAM image: padded weights, folded int32 biases, requant parameter lines
    bench/          the cocotb bench (tb_model.py) and a README saying how to run it
    hls/            the HLS C++ of the same graph (backends/hls), when that path accepts the graph
    graph.hwir      the graph (the interpreter reference of ``hwcomp simulate``)
    report.json     predicted cycles (instruction-level cycle model), MAC utilisation per phase, resources

``run(outdir, inputs)`` simulates on Verilator (``sim="icarus"`` for Icarus) and returns the graph outputs;
it checks nothing (``hwcomp simulate`` compares with the interpreter).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from hwcomp.artifact import atomic_outdir, read_report, register_backend, write_json
from hwcomp.errors import HardwareError, SimulationError
from hwcomp.hardware import HardwareParams
from hwcomp.ir.graph import Graph

from .generate import generate, wrapper_name
from .lower import lower, plan_cycles
from .runtime import RunStats, host_summary, load_plan, save_plan

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SIM_RTL = ("dram_host.v", "accel_host_top.v", "accel_host_sim.v")
SIM_TOP = "accel_host_sim"      # accel_host_top with a clock the simulator generates itself
HW_FIELDS = ("input_sp_bytes", "weight_sp_bytes", "acc_sp_bytes", "vector_sp_bytes", "dram_bus_bytes", "clock_mhz",
             "vector_lanes", "imem_depth", "dram_bytes")


def hardware_for(array: str = "16x16", dataflow: str = "ws", **overrides: object) -> HardwareParams:
    hw_kw = {k: v for k, v in overrides.items() if k in HW_FIELDS and v is not None}
    return HardwareParams.from_string(f"{array}-{dataflow}" if "-" not in array else array, **hw_kw)


def resource_estimate(hw: HardwareParams, *, synth: bool = False) -> dict:
    """yosys synth_xilinx when ``synth`` (minutes for 16x16), else an analytic estimate (method says which)."""
    from hwcomp.cost.synth import sram_bits

    if synth:
        from hwcomp.cost.synth import synth_xilinx

        r = synth_xilinx(hw)
        return {"method": "yosys synth_xilinx -family xc7 (no place and route)", "lut": r.lut, "ff": r.ff,
                "dsp": r.dsp, "bram36": r.bram36, "seconds": r.seconds}
    pes = hw.rows * hw.cols
    return {"method": "analytic (one DSP per PE MAC, 4 DSPs per 32x32 requant multiplier, SRAM bits of the "
                      "scratchpads + instruction memory); run with synth=True for yosys",
            "dsp": pes + 4 * hw.cols, "pe_flops": pes * (8 + 8 + 32 + 1), "sram_bits": sram_bits(hw)}


def compile(graph: Graph, outdir: Path, *, array: str = "16x16", dataflow: str = "ws", synth: bool = False,
            hls: bool = True, **options: object) -> dict:
    t0 = time.perf_counter()
    hw = hardware_for(array, dataflow, **options)
    plan = lower(graph, hw)
    hw = plan.hw
    t_lower = time.perf_counter() - t0
    import hwcomp.ir

    with atomic_outdir(Path(outdir)) as tmp:
        rtl_files = [p.name for p in generate(hw, tmp / "rtl")]
        for name in SIM_RTL:
            shutil.copyfile(REPO / "rtl" / name, tmp / "rtl" / name)
        files = save_plan(plan, tmp)
        hwcomp.ir.save(graph, tmp / "graph.hwir")
        (tmp / "bench").mkdir()
        shutil.copyfile(REPO / "sim" / "tb_model.py", tmp / "bench" / "tb_model.py")
        (tmp / "bench" / "README.md").write_text(
            "# Model bench\n\n`tb_model.py` is the cocotb bench `hwcomp simulate OUTDIR --inputs in.npz` runs on\n"
            f"`{SIM_TOP}` (rtl/{SIM_TOP}.v: a free-running clock around rtl/accel_host_top.v, which is\n"
            f"`{wrapper_name(hw)}`'s accel_top + dram_host + a program loader) with `+DRAM_INIT_BIN=`\n"
            "dram_image.bin. It executes plan.json: host steps in numpy, hardware segments from program/*.hex.\n",
            encoding="ascii", newline="\n")
        hls_info: dict = {"generated": False}
        if hls:
            try:
                from hwcomp.backends.hls.generate import emit_hls

                info = emit_hls(graph, tmp / "hls", hw)
                hls_info = {"generated": True, "kernels": info.get("kernels"), "top": info.get("top")}
            except ImportError:
                hls_info = {"generated": False, "reason": "the HLS backend is not installed"}
            except HardwareError as e:
                shutil.rmtree(tmp / "hls", ignore_errors=True)
                hls_info = {"generated": False, "reason": str(e)}
        cyc = plan_cycles(plan)
        summary = host_summary(plan)
        total_macs = sum(s["macs"] for s in cyc["segments"])
        report = {
            "target": options.get("target", "fpga"),
            "source": options.get("source"),
            "hardware": {"name": hw.name, "rows": hw.rows, "cols": hw.cols, "dataflow": hw.dataflow,
                         "clock_mhz": hw.clock_mhz, "dram_bytes": hw.dram_bytes, "toplevel": wrapper_name(hw),
                         **{k: getattr(hw, k) for k in HW_FIELDS}},
            "files": sorted(["graph.hwir", "report.json", "bench/README.md", "bench/tb_model.py"] + files
                            + [f"rtl/{f}" for f in rtl_files + list(SIM_RTL)]),
            "dram": {"const_bytes": plan.const_bytes, "activation_bytes": plan.act_bytes,
                     "image_bytes": hw.dram_bytes},
            "cycles": {"predicted_total": cyc["total_cycles"], "source": "instruction-level cycle model "
                       "(backends/rtl/isa_model.py; hardware segments only, host steps excluded)",
                       "segments": cyc["segments"],
                       "seconds_at_clock": cyc["total_cycles"] / (hw.clock_mhz * 1e6)},
            "cycles_predicted": cyc["total_cycles"],
            "mac_utilization": total_macs / (hw.rows * hw.cols * cyc["total_cycles"]) if cyc["total_cycles"] else 0.0,
            "hardware_nodes": summary["hardware_nodes"],
            "host_steps": summary["host_steps"],
            "resources": resource_estimate(hw, synth=synth),
            "hls": hls_info,
            "summary": (f"{len(summary['hardware_nodes'])} nodes on the {hw.rows}x{hw.cols} {hw.dataflow} array in "
                        f"{len(plan.segments)} segments, {len(summary['host_steps'])} host steps; predicted "
                        f"{cyc['total_cycles']} accelerator cycles"),
        }
        write_json(tmp / "report.json", report)
    log.info("lowered in %.2f s, compiled in %.2f s", t_lower, time.perf_counter() - t0)
    return report


def run(outdir: Path, inputs: dict[str, np.ndarray], *, sim: str = "verilator", waves: bool = False,
        timeout_factor: float = 2.0, stats: RunStats | None = None) -> dict[str, np.ndarray]:
    """Simulate the artifact on the RTL; returns the graph outputs (and fills ``stats`` with cycles)."""
    from hwcomp.sim.runner import cache_dir, run_bench

    outdir = Path(outdir).resolve()
    read_report(outdir)
    plan = load_plan(outdir)
    hw = plan.hw
    work = cache_dir().parent / "models"
    work.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix="model-", dir=work))
    used = int(np.flatnonzero(plan.image)[-1]) + 1 if plan.image.any() else 1
    (d / "dram_init.bin").write_bytes(plan.image[:used].tobytes())   # the DRAM model starts zeroed beyond
    np.savez(d / "inputs.npz", **{k: np.asarray(v) for k, v in inputs.items()})
    cfg = {"artifact": str(outdir), "inputs_npz": str(d / "inputs.npz"), "outputs_npz": str(d / "outputs.npz"),
           "patch_hex": str(d / "patch.hex"), "dump_hex": str(d / "dump.hex"), "prog_hex": str(d / "prog.hex"),
           "timeout_factor": timeout_factor, "internal_clock": True}
    plusargs = [f"+DRAM_INIT_BIN={d / 'dram_init.bin'}", f"+DRAM_PATCH={d / 'patch.hex'}",
                f"+DRAM_DUMP={d / 'dump.hex'}", f"+IMEM_FILE={d / 'prog.hex'}"]
    if waves:
        raise SimulationError("--waves: sim/runner.run_bench does not dump waveforms yet; run the bench in "
                              f"{outdir / 'bench'} with cocotb's runner and waves=True")
    res = run_bench(sim, SIM_TOP, "tb_model", hw.verilog_params(sim=True), cfg, plusargs=plusargs)
    if "error" in res.outputs:
        raise SimulationError(f"{sim}: {res.outputs['error']} (log {res.log_file})")
    if res.failed or not res.tests or not (d / "outputs.npz").exists():
        tail = res.log_file.read_text(errors="replace")[-3000:] if res.log_file.exists() else ""
        raise SimulationError(f"{sim}: the model bench failed ({res.failed}/{res.tests}); log {res.log_file}\n{tail}")
    if stats is not None:
        stats.segments.extend(res.outputs["segments"])
        stats.seconds.update({"build": round(res.build_seconds, 3), "simulator": round(res.run_seconds, 3),
                              **{f"bench_{k}": v for k, v in res.outputs.get("seconds", {}).items()}})
    with np.load(d / "outputs.npz") as z:
        names = res.outputs["outputs"]
        outs = {n: z[f"o{i}"] for i, n in enumerate(names)}
    shutil.rmtree(d, ignore_errors=True)
    return outs


def _compile_asic(graph: Graph, outdir: Path, **kw: object) -> dict:
    return compile(graph, outdir, **{**kw, "target": "asic"})


register_backend("fpga", compile=compile, run=run, default_pipeline="fpga")
register_backend("asic", compile=_compile_asic, run=run, default_pipeline="fpga")
