"""Readable text form of a graph: one line per node."""

from __future__ import annotations

import numpy as np


def _fmt_attr(v) -> str:
    if isinstance(v, np.ndarray):
        if v.size <= 4:
            return f"array({v.tolist()})"
        return f"array<{v.dtype}{list(v.shape)}>"
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)) and len(v) > 8:
        return f"[{', '.join(map(str, v[:8]))}, ... {len(v)} items]"
    return repr(v)


def print_graph(g) -> str:
    lines = [f"graph {g.name}("]
    for i in g.inputs:
        lines.append(f"    %{i}: {g.types[i]},")
    lines.append(") {")
    n_const = len(g.constants)
    if n_const:
        count, nbytes = g.param_count()
        lines.append(f"  // {n_const} constants, {count:,} parameters, {nbytes / 2**20:.2f} MiB")
        for k, v in g.constants.items():
            val = np.asarray(v).tolist() if v.size <= 4 else f"<{v.size} values>"
            lines.append(f"  %{k}: {g.types[k]} = const {val}")
    for n in g.nodes:
        outs = ", ".join(f"%{o}: {g.types[o]}" if o in g.types else f"%{o}" for o in n.outputs)
        ins = ", ".join(f"%{i}" if i else "_" for i in n.inputs)
        attrs = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in sorted(n.attrs.items()))
        attrs = f" {{{attrs}}}" if attrs else ""
        lines.append(f"  {outs} = {n.op}({ins}){attrs}  // {n.name}")
    lines.append(f"  return {', '.join('%' + o for o in g.outputs)}")
    lines.append("}")
    return "\n".join(lines)
