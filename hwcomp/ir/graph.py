"""hwcomp IR: a typed dataflow graph.

A :class:`Graph` holds named values. Every value has a static :class:`TensorType`; a value is either a
graph input, a constant (weights, kept as numpy arrays in ``graph.constants``) or the output of exactly
one :class:`Node`. Nodes are kept in topological order. Op names are ONNX's for standard ops
(``MatMul``, ``Softmax``, ...) and lower_snake_case for hwcomp's own fused and quantized ops
(``dense``, ``attention``, ``layer_norm``, ``qdense``, ...); ``hwcomp.ops`` defines every one.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from .types import DType, TensorType


@dataclass
class Node:
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs[key] if key in self.attrs else default

    def input(self, i: int) -> str:
        """Name of input i, or '' when the optional input is absent."""
        return self.inputs[i] if i < len(self.inputs) else ""


@dataclass
class Graph:
    name: str = "main"
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    types: dict[str, TensorType] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    # ---- construction -------------------------------------------------------------------------------
    def copy(self) -> "Graph":
        """A copy that shares the (read-only by convention) constant arrays."""
        g = Graph(self.name, list(self.inputs), list(self.outputs),
                  [Node(n.op, list(n.inputs), list(n.outputs), dict(n.attrs), n.name) for n in self.nodes],
                  {k: copy.copy(v) for k, v in self.types.items()}, dict(self.constants),
                  copy.deepcopy(self.metadata))
        return g

    def fresh(self, base: str) -> str:
        """A value/node name not used yet, derived from base."""
        taken = self.__dict__.setdefault("_taken", set())
        if not taken:
            taken.update(self.types)
            taken.update(n.name for n in self.nodes)
        cand, i = base, 0
        while cand in taken or cand in self.types:
            i += 1
            cand = f"{base}_{i}"
        taken.add(cand)
        return cand

    def add_constant(self, base: str, value: np.ndarray, dtype: DType | None = None, quant=None) -> str:
        value = np.asarray(value)
        name = self.fresh(base)
        self.constants[name] = value
        self.types[name] = TensorType(value.shape, dtype or DType.from_numpy(value.dtype), quant)
        return name

    def add_node(self, op: str, inputs: list[str], out_types: list[TensorType], attrs: dict | None = None,
                 name: str | None = None, out_names: list[str] | None = None, index: int | None = None) -> list[str]:
        """Append (or insert at index) a node; returns the names of its outputs."""
        base = name or op
        outs = [self.fresh(out_names[i] if out_names else f"{base}_out{i}" if len(out_types) > 1 else base)
                for i in range(len(out_types))]
        name = outs[0] if len(outs) == 1 and not out_names else self.fresh(base)
        for o, t in zip(outs, out_types):
            self.types[o] = t
        node = Node(op, list(inputs), outs, dict(attrs or {}), name)
        if index is None:
            self.nodes.append(node)
        else:
            self.nodes.insert(index, node)
        return outs

    # ---- queries ------------------------------------------------------------------------------------
    def producers(self) -> dict[str, Node]:
        return {o: n for n in self.nodes for o in n.outputs}

    def consumers(self) -> dict[str, list[Node]]:
        c: dict[str, list[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    c.setdefault(i, []).append(n)
        return c

    def is_const(self, name: str) -> bool:
        return name in self.constants

    def const(self, name: str) -> np.ndarray | None:
        return self.constants.get(name)

    def op_histogram(self) -> dict[str, int]:
        h: dict[str, int] = {}
        for n in self.nodes:
            h[n.op] = h.get(n.op, 0) + 1
        return dict(sorted(h.items(), key=lambda kv: (-kv[1], kv[0])))

    def param_count(self) -> tuple[int, int]:
        """(number of parameters, bytes) over constants with more than one element."""
        count = nbytes = 0
        for k, v in self.constants.items():
            if v.size > 1:
                count += v.size
                nbytes += (v.size * self.types[k].dtype.bits + 7) // 8
        return count, nbytes

    # ---- mutation helpers for passes ----------------------------------------------------------------
    def replace_uses(self, old: str, new: str) -> None:
        for n in self.nodes:
            n.inputs = [new if i == old else i for i in n.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    def remove_unused(self) -> "Graph":
        """Dead-code elimination: drop nodes, constants and types no graph output depends on."""
        live = set(self.outputs)
        keep: list[Node] = []
        for n in reversed(self.nodes):
            if any(o in live for o in n.outputs):
                keep.append(n)
                live.update(i for i in n.inputs if i)
        self.nodes = keep[::-1]
        live.update(self.inputs)
        live.update(o for n in self.nodes for o in n.outputs)
        self.constants = {k: v for k, v in self.constants.items() if k in live}
        self.types = {k: v for k, v in self.types.items() if k in live}
        return self

    def toposort(self) -> "Graph":
        avail = set(self.inputs) | set(self.constants) | {""}
        pending, order = list(self.nodes), []
        while pending:
            rest = []
            for n in pending:
                if all(i in avail for i in n.inputs):
                    order.append(n)
                    avail.update(n.outputs)
                else:
                    rest.append(n)
            if len(rest) == len(pending):
                from ..errors import VerifyError
                raise VerifyError(f"graph has a cycle or undefined input at node {rest[0].name!r} ({rest[0].op})")
            pending = rest
        self.nodes = order
        return self

    def __str__(self) -> str:
        from .printer import print_graph
        return print_graph(self)
