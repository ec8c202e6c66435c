"""Fixtures for the model-level RTL tests: quantized graphs (hand-built MLP, bert-tiny) and a bit-exact check."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # same convention as tests/rtl: run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from sim.runner import missing_reason  # noqa: E402


def require(sim: str) -> None:
    reason = missing_reason(sim)
    if reason:
        pytest.skip(f"{sim} unavailable: {reason}")


def assert_bit_exact(ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> None:
    from hwcomp.cli.simulate import compare

    bad = compare(ref, got)
    assert not bad, "; ".join(bad)


def mlp():
    """The HLS tests' quantized MLP (quantize -> qdense relu -> qdense -> int_gelu -> qdense float epilogue),
    with a bias that wraps the int32 accumulator in the second layer."""
    from tests.hls.test_model import _mlp

    g, feeds = _mlp()
    return g, feeds


@pytest.fixture(scope="session")
def bert_tiny_q():
    """Quantized bert-tiny (2 layers, hidden 128) at seq 16 with every integer activation as an output."""
    from tests.hls.test_model import _quantized

    return _quantized("bert-tiny")


def attention(causal: int, s: int = 6, heads: int = 2, d: int = 8):
    """Two qattention nodes on int8 q/k/v [2, s, heads*d]: int8 epilogue (the array path when d is a multiple
    of rows and cols) and float epilogue (host); an additive mask with a padded tail and a fractional entry."""
    from tests.hls.conftest import qattention_graph

    return qattention_graph(causal, s, s, heads, d)
