"""Fixtures: a tiny random BERT (zoo export) fused to hwcomp IR, with calibration batches."""

from __future__ import annotations

import numpy as np
import pytest

from hwcomp.frontend.onnx import load_onnx
from hwcomp.passes import run_pipeline

B, S = 2, 16


@pytest.fixture(scope="session")
def bert_tiny():
    """(onnx path, fused float graph, calibration batches, eval batches)."""
    from hwcomp import zoo

    path = zoo.get("bert-tiny")
    g = run_pipeline(load_onnx(path, {"input_ids": (B, S), "attention_mask": (B, S)}), "default")
    calib = [zoo.sample_inputs("bert-tiny", B, S, seed=i) for i in range(4)]
    ev = [zoo.sample_inputs("bert-tiny", B, S, seed=100 + i) for i in range(2)]
    return path, g, calib, ev
