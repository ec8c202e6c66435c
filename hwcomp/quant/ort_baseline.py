"""ONNX Runtime's own static quantization, run on the same calibration data as hwcomp (for comparison)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np


def ort_static(model_path, calib: Sequence[dict], eval_batches: Sequence[dict], method: str = "MinMax",
               output: str = "sentence_embedding") -> np.ndarray:
    """quantize_static (QDQ, per-channel int8 weights, int8 activations) with ``method`` in
    MinMax/Percentile/Entropy; returns ``output`` over ``eval_batches`` concatenated. ORT's own exceptions
    propagate (e.g. its "Too many bins" failure)."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([dict(b) for b in calib])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "q.onnx"
        quantize_static(str(model_path), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, method))
        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        res = [dict(zip(names, sess.run(None, b)))[output] for b in eval_batches]
    return np.concatenate(res)
