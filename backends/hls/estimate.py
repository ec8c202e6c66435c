"""First-order latency of the generated HLS project: the trip counts of the pipelined (II=1) loops of each
kernel in include/hwcomp_hls.h, summed over the nodes (kernels run one after another in ``model``).

This is the number a designer checks before running Vitis HLS (no pipeline fill/drain, no memory-port
stalls, no dataflow overlap), so it is a lower bound of the synthesized latency and a like-for-like
comparison between graphs and HardwareParams, not a substitute for the csynth report.
"""

from __future__ import annotations

import math

import numpy as np

from hwcomp.hardware import HardwareParams
from hwcomp.ir.graph import Graph, Node

from .lower import gemm_tiles

ISQRT_ITERS = 34  # bit length of the 64-bit loop + Newton steps from 2^ceil(bl/2), worst case for int64 variances


def _size(g: Graph, v: str) -> int:
    return int(np.prod(g.types[v].shape, dtype=np.int64))


def qdense_cycles(m: int, k: int, n: int, hw: HardwareParams) -> int:
    """Per output tile: init (mt) + per K-slice (load W TK rows, load A mt rows, MAC mt rows) + store (mt*TN)."""
    tm, tn, tk = gemm_tiles(hw)
    total = 0
    for m0 in range(0, m, tm):
        mt = min(tm, m - m0)
        total += math.ceil(n / tn) * (mt + math.ceil(k / tk) * (tk + 2 * mt) + mt * tn)
    return total


def node_cycles(g: Graph, n: Node, hw: HardwareParams) -> int:
    if n.op == "qdense":
        k, nn = g.types[n.inputs[1]].shape
        return qdense_cycles(_size(g, n.inputs[0]) // k, k, nn, hw)
    if n.op == "qattention":
        b, sq, hd = g.types[n.inputs[0]].shape
        sk, hdv = g.types[n.inputs[1]].shape[1], g.types[n.inputs[2]].shape[2]
        h = int(n.attrs["num_heads"])
        mask = _size(g, n.inputs[3]) if n.input(3) else 0
        # per query row: load q (D), scores (Sk), softmax (max, exp, normalise: 3 Sk), P.V (Dv)
        return mask + b * h * sq * (hd // h + 4 * sk + hdv // h)
    if n.op == "int_softmax":
        c = g.types[n.inputs[0]].shape[-1]
        return (_size(g, n.inputs[0]) // c) * 5 * c
    if n.op == "int_layer_norm":
        c = g.types[n.inputs[0]].shape[-1]
        return (_size(g, n.inputs[0]) // c) * (3 * c + ISQRT_ITERS)
    if n.op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity") and n.outputs[0] not in g.outputs:
        return 0
    return _size(g, n.outputs[0])  # elementwise, gather, quantize, dequantize, int_gelu: one element per cycle


def estimate(g: Graph, hw: HardwareParams) -> dict:
    """{"cycles", "latency_us" at hw.clock_mhz, "by_op": {op: cycles}, "macs", "mac_utilization"}."""
    by_op: dict[str, int] = {}
    macs = 0
    for n in g.nodes:
        c = node_cycles(g, n, hw)
        by_op[n.op] = by_op.get(n.op, 0) + c
        if n.op == "qdense":
            macs += _size(g, n.inputs[0]) * int(g.types[n.inputs[1]].shape[1])
    cycles = sum(by_op.values())
    gemm = by_op.get("qdense", 0)
    return {"cycles": cycles, "latency_us": cycles / hw.clock_mhz, "by_op": dict(sorted(by_op.items())),
            "qdense_macs": macs,
            "qdense_mac_utilization": macs / (gemm * hw.rows * hw.cols) if gemm else 0.0}
