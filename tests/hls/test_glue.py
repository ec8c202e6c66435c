"""The float/bool glue of quantized graphs (embeddings, masks, residuals, head split/merge) in C simulation,
bit-exact against the interpreter."""

from __future__ import annotations

import numpy as np

from .conftest import make_graph


def test_movement_ops_bit_exact(bit_exact):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 10)).astype(np.float32)
    q = rng.integers(-128, 128, (2, 3, 10), dtype=np.int8)
    g = make_graph({"x": x, "q": q}, {"shape": np.array([6, 10], np.int64), "eshape": np.array([2, 4, 3, 10], np.int64)}, [
        ("Transpose", ["x"], {"perm": [2, 0, 1]}, "t"),
        ("Split", ["q"], {"axis": -1, "split": [3, 7]}, ["s0", "s1"]),
        ("Concat", ["s1", "s0"], {"axis": 2}, "c"),
        ("Reshape", ["c", "shape"], {}, "r"),
        ("Unsqueeze", ["x"], {"axes": [1]}, "u"),
        ("Expand", ["u", "eshape"], {}, "e"),
    ], ["t", "s0", "r", "e"])
    bit_exact(g, {"x": x, "q": q})


def test_embedding_mask_and_residual_glue_bit_exact(bit_exact):
    rng = np.random.default_rng(12)
    table = rng.standard_normal((50, 8)).astype(np.float32)
    ids = np.array([[0, 49, -1, 7, -50]], np.int64)  # negative indices wrap like numpy / ONNX
    mask = np.array([[1, 1, 0, 1, 0]], np.int64)
    g = make_graph({"ids": ids, "mask": mask}, {"table": table, "pos": rng.standard_normal((1, 5, 8)).astype(np.float32),
                                                "zero": np.float32(0.0), "ninf": np.float32(np.finfo(np.float32).min)}, [
        ("Gather", ["table", "ids"], {"axis": 0}, "emb"),
        ("Add", ["emb", "pos"], {}, "h"),
        ("Mul", ["h", "h"], {}, "h2"),
        ("Sub", ["h2", "emb"], {}, "h3"),
        ("Div", ["h3", "pos"], {}, "h4"),
        ("Cast", ["mask"], {"to": "bool"}, "mb"),
        ("Not", ["mb"], {}, "nb"),
        ("Where", ["nb", "ninf", "zero"], {}, "madd"),
        ("Cast", ["mask"], {"to": "float32"}, "mf"),
    ], ["h4", "madd", "mf", "nb"])
    bit_exact(g, {"ids": ids, "mask": mask})
