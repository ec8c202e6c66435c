"""fold_qdq: QDQ-wrapped MatMuls (hwcomp's export, ORT's quantize_static) -> quantized IR.

The frontend imports QuantizeLinear/DequantizeLinear as float ops and folds the DequantizeLinear of a
constant weight into a float constant W = wq * s_w. A ``dense`` whose input is
``DequantizeLinear(QuantizeLinear(x, s_q, zp), s_dq, zp)`` and whose W is per-column symmetric int8 on a
grid (s_w[n] = max_k |W[k, n]| / 127 and W / s_w integral) becomes ``quantize(x, s_q, zp)`` + ``qdense``
(float epilogue, out_scale = s_dq * s_w). A vector s_q with a scalar s_dq is hwcomp's smoothing
(c = s_q / s_dq, already folded into W). Anything else is left as it is.
"""

from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node
from ..ops import OPS
from ..ops.intmath import INT32_MAX, INT32_MIN


def _grid_weights(w: np.ndarray, tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray] | None:
    amax = np.abs(w).max(axis=0)
    sw = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    r = w / sw
    wq = np.rint(r)
    if np.abs(r - wq).max(initial=0.0) > tol:
        return None
    return wq.astype(np.int8), sw


def fold_qdq(g: Graph) -> tuple[Graph, int]:
    prod = g.producers()
    done = 0
    for n in list(g.nodes):
        if n.op != "dense" or n.inputs[1] not in g.constants:  # (float epilogue: any activation)
            continue
        dq = prod.get(n.inputs[0])
        if dq is None or dq.op != "DequantizeLinear":
            continue
        q = prod.get(dq.inputs[0])
        if q is None or q.op != "QuantizeLinear":
            continue
        try:
            s_q, z_q = g.constants[q.inputs[1]], g.constants[q.inputs[2]]
            s_dq, z_dq = g.constants[dq.inputs[1]], g.constants[dq.inputs[2]]
        except (KeyError, IndexError):
            continue
        if z_q.dtype != np.int8 or np.unique(z_q).size != 1 or np.unique(z_dq).size != 1 or \
                int(z_q.ravel()[0]) != int(z_dq.ravel()[0]) or s_dq.size != 1:
            continue
        if s_q.size > 1 and (q.attr("axis", 1) not in (-1, g.types[q.inputs[0]].rank - 1)):
            continue
        grid = _grid_weights(g.constants[n.inputs[1]].astype(np.float32))
        if grid is None:
            continue
        wq, sw = grid
        sx = float(s_dq.ravel()[0])
        zp = int(z_q.ravel()[0])
        acc_scale = (np.float64(sx) * sw.astype(np.float64)).astype(np.float32)
        idx = g.nodes.index(n)
        xq = g.fresh(q.inputs[0].rsplit("/", 1)[-1] + "_q")
        qnode = Node("quantize", [q.inputs[0]], [xq], {"scale": float(s_q.ravel()[0]) if s_q.size == 1 else
                                                      s_q.astype(np.float32).ravel(), "zero_point": zp, "bits": 8,
                                                      "signed": 1}, g.fresh(xq + "_node"))
        g.types[xq] = OPS["quantize"].infer(qnode, [g.types[q.inputs[0]]], [None])[0]
        ins = [xq, g.add_constant(n.inputs[1] + "_q", wq)]
        if n.input(2) and n.inputs[2] in g.constants:
            bq = np.clip(np.rint(g.constants[n.inputs[2]].astype(np.float64) / acc_scale), INT32_MIN, INT32_MAX)
            ins.append(g.add_constant(n.inputs[2] + "_q", bq.astype(np.int32)))
        elif n.input(2):
            continue
        attrs = {"x_zero_point": zp, "x_scale": sx, "w_scale": sw, "acc_scale": acc_scale, "out_scale": acc_scale,
                 "out_dtype": "float32", "activation": n.attr("activation", "none"), "weight_name": n.inputs[1]}
        if s_q.size > 1:
            attrs["smooth"] = (s_q.astype(np.float64).ravel() / sx).astype(np.float32)
        qd = Node("qdense", ins, list(n.outputs), attrs, n.name)
        g.nodes[idx:idx + 1] = [qnode, qd]
        done += 1
    return g.remove_unused(), done
