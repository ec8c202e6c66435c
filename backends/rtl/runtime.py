"""Execute a lowered :class:`~backends.rtl.lower.Plan`: host steps in numpy, hardware segments on a device.

:func:`execute` is a generator so that one executor serves both a synchronous device (the instruction-level
model, :class:`ModelDevice`) and the cocotb bench (``sim/tb_model.py``), which awaits the RTL between
``send`` calls. It yields a :class:`SegmentRequest` per hardware segment and expects a
:class:`SegmentResult` back; it returns the graph outputs.

Host steps use the interpreter's op implementations (``hwcomp.ops.run_op``) so the host part is the
specification itself; the hardware part is checked against it by the caller.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hwcomp.errors import HardwareError
from hwcomp.hardware import HardwareParams
from hwcomp.interp import check_inputs
from hwcomp.ir.graph import Graph
from hwcomp.ops import run_op
from hwcomp.ops.quantized import _epilogue

from .isa import Instr, assemble, disassemble
from .isa_model import AccelModel, program_cycles
from .lower import HostStep, HwSegment, Plan, Tensor2D, acc_name, plan_cycles


@dataclass
class SegmentRequest:
    index: int
    chunks: list[list[Instr]]
    patches: list[tuple[int, np.ndarray]]      # (DRAM address, uint8 bytes) to write before
    reads: list[tuple[int, int]]               # (DRAM address, nbytes) to read after
    predicted_cycles: list[int]                # per chunk


@dataclass
class SegmentResult:
    data: list[np.ndarray]                     # one uint8 array per read
    cycles: list[int]                          # per chunk


@dataclass
class RunStats:
    segments: list[dict] = field(default_factory=list)   # index, cycles (per chunk), predicted
    seconds: dict[str, float] = field(default_factory=dict)  # RTL runs: wall seconds (build, simulator, per activity)

    @property
    def cycles(self) -> int:
        return sum(sum(s["cycles"]) for s in self.segments)

    @property
    def predicted(self) -> int:
        return sum(sum(s["predicted"]) for s in self.segments)


def execute(plan: Plan, g: Graph, inputs: Mapping[str, np.ndarray], stats: RunStats | None = None
            ) -> Generator[SegmentRequest, SegmentResult, dict[str, np.ndarray]]:
    env: dict[str, np.ndarray] = dict(g.constants)
    env.update(check_inputs(g, inputs))
    nodes = {n.name: n for n in g.nodes}
    hw = plan.hw
    with np.errstate(all="ignore"):
        for step in plan.steps:
            if isinstance(step, HostStep):
                n = nodes[step.node]
                if step.kind == "epilogue":
                    env[n.outputs[0]] = _epilogue(n, env[acc_name(n.outputs[0])].astype(np.int32))
                elif step.kind == "transpose":
                    env[f"{n.outputs[0]}#kT"] = _heads_transposed(env[n.inputs[1]], int(n.attrs["num_heads"]))
                elif step.kind == "softmax":
                    mask = env[n.inputs[3]] if len(n.inputs) > 3 and n.inputs[3] else None
                    env[f"{n.outputs[0]}#p"] = _softmax_p(n, env[f"{n.outputs[0]}#scores"], mask)
                else:
                    outs = run_op(n, [env[i] if i else None for i in n.inputs])
                    for o, v in zip(n.outputs, outs):
                        if o:
                            env[o] = v
                continue
            patches = [(plan.tensors[v].addr, plan.tensors[v].pack(env[v])) for v in step.writes]
            reads = [(plan.tensors[v].addr, plan.tensors[v].nbytes) for v in step.reads]
            chunks = step.chunks(hw.imem_depth)
            req = SegmentRequest(step.index, chunks, patches, reads, [program_cycles(hw, ch) for ch in chunks])
            res = yield req
            for v, raw in zip(step.reads, res.data):
                env[v] = plan.tensors[v].unpack(raw)
            if stats is not None:
                stats.segments.append({"index": step.index, "cycles": list(res.cycles),
                                       "predicted": req.predicted_cycles})
    return {o: env[o] for o in g.outputs}


def _heads_transposed(k: np.ndarray, heads: int) -> np.ndarray:
    """K [B, S, H*D] -> K^T per (batch, head) as [B*H*D, S] int8."""
    b, s, hd = k.shape
    return np.ascontiguousarray(k.reshape(b, s, heads, hd // heads).transpose(0, 2, 3, 1)).reshape(-1, s)


def _softmax_p(n, scores: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """qattention steps 2-3 (hwcomp/ops/quantized.py) on the hardware's int32 scores [B*H*S, S]: mask in
    score units, causal, int_softmax; returns P - 128 as int8 [B*H*S, S]."""
    from hwcomp.ops import intmath

    h = int(n.attrs["num_heads"])
    s = scores.shape[-1]
    acc = scores.astype(np.int64).reshape(-1, h, s, s)
    if mask is not None:
        ss = float(n.attrs["score_scale"])
        acc = acc + np.clip(np.rint(np.asarray(mask, np.float64) / ss), -(1 << 30), 1 << 30).astype(np.int64)
    if n.attr("causal", 0):
        acc = np.where(np.tril(np.ones((s, s), bool)), acc, -(1 << 30))
    p = intmath.int_softmax(acc, int(n.attrs["exp_ln2"]), int(n.attrs["exp_b"]), int(n.attrs["exp_c"]), 8)
    return (p - 128).astype(np.int8).reshape(-1, s)


def drive(gen: Generator[SegmentRequest, SegmentResult, dict], device: Callable[[SegmentRequest], SegmentResult]
          ) -> dict[str, np.ndarray]:
    """Run the executor against a synchronous device."""
    try:
        req = next(gen)
        while True:
            req = gen.send(device(req))
    except StopIteration as stop:
        return stop.value


class ModelDevice:
    """The instruction-level model (``isa_model.AccelModel``) as a device: bit-exact, cycles from the model."""

    def __init__(self, plan: Plan) -> None:
        self.model = AccelModel(plan.hw)
        self.dram = plan.image.copy()

    def __call__(self, req: SegmentRequest) -> SegmentResult:
        for addr, raw in req.patches:
            self.dram[addr: addr + raw.size] = raw
        cycles = []
        for ch in req.chunks:
            res = self.model.run(ch, self.dram)
            self.dram = res.dram
            cycles.append(res.cycles)
        return SegmentResult([self.dram[a: a + nb].copy() for a, nb in req.reads], cycles)


def run_on_model(plan: Plan, g: Graph, inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], RunStats]:
    stats = RunStats()
    outs = drive(execute(plan, g, inputs, stats), ModelDevice(plan))
    return outs, stats


# ---- persistence (the artifact directory) ----------------------------------------------------------------

def save_plan(plan: Plan, outdir: Path) -> list[str]:
    """plan.json + program/seg*.hex + dram_image.bin; returns the files written (relative, sorted)."""
    outdir = Path(outdir)
    (outdir / "program").mkdir(parents=True, exist_ok=True)
    files = ["plan.json", "dram_image.bin"]
    steps = []
    for s in plan.steps:
        if isinstance(s, HostStep):
            steps.append({"kind": "host", "node": s.node, "op": s.op, "what": s.kind, "reason": s.reason})
            continue
        chunk_files = []
        for ci, ch in enumerate(s.chunks(plan.hw.imem_depth)):
            name = f"program/seg{s.index:03d}_{ci:02d}.hex"
            (outdir / name).write_text(assemble(ch), encoding="ascii", newline="\n")
            chunk_files.append(name)
        files += chunk_files
        steps.append({"kind": "hw", "index": s.index, "chunks": chunk_files, "writes": s.writes, "reads": s.reads,
                      "phases": [p.to_json() for p in s.phases], "instructions": len(s.program)})
    meta = {"hw": {k: getattr(plan.hw, k) for k in plan.hw.__dataclass_fields__},
            "tensors": [t.to_json() for t in plan.tensors.values()], "steps": steps,
            "const_bytes": plan.const_bytes, "act_bytes": plan.act_bytes, "used_bytes": plan.used_bytes}
    (outdir / "plan.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    used = int(np.flatnonzero(plan.image)[-1]) + 1 if plan.image.any() else 0
    (outdir / "dram_image.bin").write_bytes(plan.image[:used].tobytes())   # zeros beyond
    return sorted(files)


def load_plan(outdir: Path) -> Plan:
    from .lower import Phase

    outdir = Path(outdir)
    try:
        meta = json.loads((outdir / "plan.json").read_text())
        raw = np.fromfile(outdir / "dram_image.bin", np.uint8)
    except (OSError, ValueError) as e:
        raise HardwareError(f"{outdir}: not an fpga/asic artifact ({e}); compile with --target fpga") from None
    hw = HardwareParams(**meta["hw"])
    image = np.zeros(hw.dram_bytes, np.uint8)
    image[: raw.size] = raw
    steps: list[HwSegment | HostStep] = []
    for s in meta["steps"]:
        if s["kind"] == "host":
            steps.append(HostStep(s["node"], s["op"], s["what"], s["reason"]))
            continue
        prog: list[Instr] = []
        for f in s["chunks"]:
            prog += disassemble((outdir / f).read_text())[:-1]   # drop each chunk's HALT
        steps.append(HwSegment(s["index"], prog, list(s["writes"]), list(s["reads"]),
                               [Phase(**p) for p in s["phases"]]))
    tensors = {t["value"]: Tensor2D.from_json(t) for t in meta["tensors"]}
    return Plan(hw, image, tensors, steps, meta["const_bytes"], meta["act_bytes"], meta.get("used_bytes", 0))


def host_summary(plan: Plan) -> dict:
    """Which nodes run where (for report.json and the simulate CLI)."""
    hwn = [p.node for s in plan.segments for p in s.phases]
    host = [{"node": s.node, "op": s.op, "what": s.kind, "reason": s.reason}
            for s in plan.steps if isinstance(s, HostStep)]
    return {"hardware_nodes": hwn, "host_steps": host, "cycles": plan_cycles(plan)}
