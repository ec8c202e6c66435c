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
    from hwcomp.ops.intmath import quantize_multiplier
    from hwcomp.ops.quantized import exp_constants
    from tests.hls.conftest import make_graph

    rng = np.random.default_rng(3 + causal)
    q, k, v = (rng.integers(-128, 128, (2, s, heads * d), dtype=np.int8) for _ in range(3))
    mask = np.zeros((2, 1, 1, s), np.float32)
    mask[1, ..., -2:] = np.finfo(np.float32).min
    mask[0, ..., 0] = -0.37
    ss = 2e-4
    ln2, b, c = exp_constants(ss)
    m, sh = quantize_multiplier(0.004 / 256 / 0.02)
    attrs = {"num_heads": heads, "causal": causal, "score_scale": ss, "softmax": "int", "exp_ln2": ln2, "exp_b": b,
             "exp_c": c, "prob_bits": 8, "multiplier": m, "shift": sh, "out_zero_point": 3}
    g = make_graph({"q": q, "k": k, "v": v, "mask": mask}, {},
                   [("qattention", ["q", "k", "v", "mask"], attrs, "y"),
                    ("qattention", ["q", "k", "v"], {**attrs, "out_dtype": "float32", "out_scale": np.float32(1e-4)},
                     "yf")], ["y", "yf"])
    return g, {"q": q, "k": k, "v": v, "mask": mask}
