"""Fixtures for the HLS backend tests: a graph builder, a per-session compiled-binary cache, and a check
that runs a graph through emit_hls + csim and compares every output with the interpreter bit for bit."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # same convention as tests/rtl: run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import hwcomp  # noqa: E402
from backends.hls.generate import CXX_FLAGS, csim, emit_hls  # noqa: E402
from hwcomp.hardware import HardwareParams  # noqa: E402
from hwcomp.ir.graph import Graph, Node  # noqa: E402
from hwcomp.ir.types import DType, TensorType  # noqa: E402
from hwcomp.ops import OPS  # noqa: E402

# A small array (4 rows x 8 cols, 16 accumulator lines) so that every GEMM crosses M, N and K tile borders.
SMALL_HW = HardwareParams(rows=4, cols=8, input_sp_bytes=4 * 16, weight_sp_bytes=8 * 4, acc_sp_bytes=32 * 16,
                          vector_sp_bytes=8 * 4, vector_lanes=8)


def make_graph(inputs: dict[str, np.ndarray], consts: dict[str, np.ndarray],
               nodes: list[tuple[str, list[str], dict, str | list[str]]], outputs: list[str]) -> Graph:
    """Graph from (op, inputs, attrs, output) tuples; output types come from each op's shape inference."""
    g = Graph("hls_test")
    for name, a in {**inputs, **consts}.items():
        g.types[name] = TensorType(np.shape(a), DType.from_numpy(np.asarray(a).dtype))
    g.inputs = list(inputs)
    g.constants = {k: np.asarray(v) for k, v in consts.items()}
    for op, ins, attrs, out in nodes:
        outs = [out] if isinstance(out, str) else list(out)
        node = Node(op, list(ins), outs, dict(attrs), f"{op}_{outs[0]}")
        types = [g.types[i] if i else None for i in ins]
        for o, t in zip(outs, OPS[op].infer(node, types, [g.constants.get(i) for i in ins])):
            g.types[o] = t
        g.nodes.append(node)
    g.outputs = list(outputs)
    hwcomp.verify(g)
    return g


@pytest.fixture(scope="session")
def csim_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compiled testbenches, keyed by the hash of their sources (shared by every test of the session)."""
    return tmp_path_factory.mktemp("hls-csim-cache")


@pytest.fixture
def bit_exact(tmp_path: Path, csim_cache: Path):
    """run(g, feeds, hw=..., cxx_flags=..., **emit_kw) -> (hls outputs, interpreter outputs), asserting
    equal bits."""
    if shutil.which("g++") is None:
        pytest.skip("g++ unavailable")

    def run(g: Graph, feeds: dict[str, np.ndarray], hw: HardwareParams = SMALL_HW, *,
            cxx_flags: tuple[str, ...] = CXX_FLAGS, **emit_kw):
        out = tmp_path / "hls"
        emit_hls(g, out, hw, **emit_kw)
        got = csim(out, feeds, cache_dir=csim_cache, cxx_flags=cxx_flags)
        ref = hwcomp.run(g, feeds)
        for name in g.outputs:
            a, b = np.ascontiguousarray(ref[name]), got[name]
            assert b.dtype == a.dtype and b.shape == a.shape, (name, a.dtype, b.dtype, a.shape, b.shape)
            if not np.array_equal(a.view(np.uint8), np.ascontiguousarray(b).view(np.uint8)):
                bad = np.flatnonzero(a.reshape(-1) != b.reshape(-1))
                raise AssertionError(f"{name}: {bad.size} of {a.size} elements differ, first at {bad[:5].tolist()}: "
                                     f"interpreter {a.reshape(-1)[bad[:5]].tolist()} vs csim {b.reshape(-1)[bad[:5]].tolist()}")
        return got, ref

    return run


def qattention_graph(causal: int, sq: int, sk: int, heads: int, d: int, batch: int = 2):
    """Two qattention nodes on int8 q [batch, sq, heads*d], k/v [batch, sk, heads*d]: int8 epilogue and float
    epilogue; an additive mask with a padded tail (second sequence) and a fractional entry. Returns (graph, feeds)."""
    from hwcomp.ops.intmath import quantize_multiplier
    from hwcomp.ops.quantized import exp_constants

    rng = np.random.default_rng(3 + causal)
    q = rng.integers(-128, 128, (batch, sq, heads * d), dtype=np.int8)
    k = rng.integers(-128, 128, (batch, sk, heads * d), dtype=np.int8)
    v = rng.integers(-128, 128, (batch, sk, heads * d), dtype=np.int8)
    mask = np.zeros((batch, 1, 1, sk), np.float32)
    mask[1, ..., -2:] = np.finfo(np.float32).min
    mask[0, ..., 0] = -0.37
    ss = 2e-4
    ln2, b, c = exp_constants(ss)
    m, sh = quantize_multiplier(np.asarray(0.004 / 256 / 0.02, np.float64))
    attrs = {"num_heads": heads, "causal": causal, "score_scale": ss, "softmax": "int", "exp_ln2": ln2, "exp_b": b,
             "exp_c": c, "prob_bits": 8, "multiplier": m, "shift": sh, "out_zero_point": 3}
    g = make_graph({"q": q, "k": k, "v": v, "mask": mask}, {},
                   [("qattention", ["q", "k", "v", "mask"], attrs, "y"),
                    ("qattention", ["q", "k", "v"], {**attrs, "out_dtype": "float32", "out_scale": np.float32(1e-4)},
                     "yf")], ["y", "yf"])
    return g, {"q": q, "k": k, "v": v, "mask": mask}
