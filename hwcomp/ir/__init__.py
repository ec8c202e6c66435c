"""hwcomp IR: typed dataflow graph, printer, verifier, serialization."""

from .graph import Graph, Node
from .printer import print_graph
from .serialize import load, save
from .types import DType, QuantParams, TensorType
from .verify import verify

__all__ = ["DType", "Graph", "Node", "QuantParams", "TensorType", "load", "print_graph", "save", "verify"]
