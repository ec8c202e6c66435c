"""Graph passes: cleanups, fusion, quantization, pruning."""

from .base import PASSES, PIPELINES, GraphPass, PassContext, get_pass, graph_pass, resolve, run_pipeline

__all__ = ["PASSES", "PIPELINES", "GraphPass", "PassContext", "get_pass", "graph_pass", "resolve", "run_pipeline"]
