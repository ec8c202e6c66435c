"""Roofline estimates per node for GPU reports: time = max(FLOPs / peak compute, bytes / peak bandwidth).

Peaks are measured figures where we have them (shared/docs/baselines.md: H200 bf16 GEMM 786 TFLOP/s,
int8 891 TOP/s, device copy 4.2 TB/s read+write) and vendor specs otherwise (H100 SXM HBM3 3.35 TB/s).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Graph
from .flops import OP_CLASS, node_flops


@dataclass(frozen=True)
class GpuPeak:
    name: str
    fp16_tflops: float
    fp32_tflops: float
    int8_tops: float
    hbm_tbps: float


GPUS = {
    "sm_90": GpuPeak("H100/H200 (sm_90)", fp16_tflops=786.0, fp32_tflops=60.0, int8_tops=891.0, hbm_tbps=3.35),
    "sm_80": GpuPeak("A100 (sm_80)", fp16_tflops=312.0, fp32_tflops=19.5, int8_tops=624.0, hbm_tbps=2.0),
}


def node_bytes(g: Graph, n, elem_bytes: dict[str, int]) -> int:
    total = 0
    for v in list(n.inputs) + list(n.outputs):
        if not v:
            continue
        t = g.types[v]
        width = elem_bytes.get(t.dtype.value, (t.dtype.bits + 7) // 8) if t.dtype.is_float else (t.dtype.bits + 7) // 8
        total += t.size * width
    return total


def roofline(g: Graph, arch: str, precision: str) -> list[dict]:
    peak = GPUS.get(arch, GPUS["sm_90"])
    fbytes = 2 if precision in ("fp16", "int8", "w8", "w4") else 4
    elem = {"float32": fbytes, "float16": 2}
    compute = {"fp32": peak.fp32_tflops, "fp16": peak.fp16_tflops, "int8": peak.int8_tops}.get(precision, peak.fp16_tflops)
    rows = []
    for n in g.nodes:
        fl = node_flops(g, n)
        by = node_bytes(g, n, elem)
        t_c = fl / (compute * 1e12)
        t_m = by / (peak.hbm_tbps * 1e12)
        rows.append({"node": n.name, "op": n.op, "class": OP_CLASS.get(n.op, "elementwise"), "flops": fl, "bytes": by,
                     "predicted_us": max(t_c, t_m) * 1e6, "bound": "compute" if t_c > t_m else "memory"})
    return rows
