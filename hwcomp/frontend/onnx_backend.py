"""An ``onnx.backend.base.Backend`` running models through hwcomp's frontend and interpreter, so ONNX's
own backend test-suite exercises hwcomp. Graph inputs that decide output shapes (a Reshape target given as
an input, say) are bound as constants when the model is prepared with its inputs, as a static-shape
compiler must."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.backend.base import Backend, BackendRep

from ..errors import ShapeError
from ..interp import run as interp_run
from .onnx import from_onnx


def _arr(a: Any) -> np.ndarray:
    return numpy_helper.to_array(a) if isinstance(a, onnx.TensorProto) else np.asarray(a)


class HwcompRep(BackendRep):
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        inits = {t.name for t in model.graph.initializer}
        self.input_names = [i.name for i in model.graph.input if i.name not in inits]

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            feeds = {k: _arr(v) for k, v in inputs.items()}
        else:
            seq = inputs if isinstance(inputs, (list, tuple)) else [inputs]
            feeds = {n: _arr(v) for n, v in zip(self.input_names, seq)}
        try:
            g = from_onnx(self.model, {k: v.shape for k, v in feeds.items()})
        except ShapeError:
            # Shape-deciding inputs: specialize the graph on their values.
            g = from_onnx(self.model, bind=feeds)
            feeds = {}
        out = interp_run(g, feeds)
        return tuple(out[o] for o in g.outputs)


class HwcompBackend(Backend):
    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> HwcompRep:
        return HwcompRep(model)

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any):
        return cls.prepare(model, device).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


def node_test_cases(supported: Sequence[str]) -> list:
    """ONNX node test cases whose ops hwcomp supports, minus the documented unsupported features."""
    import re

    from onnx.backend.test.case.node import collect_testcases

    from .support import UNSUPPORTED_FEATURES

    ops = set(supported) | {"Constant"}
    out = []
    for c in collect_testcases(""):
        if not {n.op_type for n in c.model.graph.node} <= ops:
            continue
        if any(re.search(p, c.name) for p in UNSUPPORTED_FEATURES):
            continue
        out.append(c)
    return out
