"""Fusion and cleanup passes on hand-built graphs: the fused op appears, the raw ops are gone, and the
result equals onnxruntime on the original graph."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import hwcomp
from hwcomp.errors import PassError
from hwcomp.frontend.onnx import from_onnx
from hwcomp.passes import PassContext, run_pipeline
from tests.builders import make_model

F = TensorProto.FLOAT
rng = np.random.default_rng(0)


def _check(model, feeds, pipeline, expect_ops, gone_ops, tol=1e-5):
    g = from_onnx(model, {k: v.shape for k, v in feeds.items()})
    fg = run_pipeline(g, pipeline, PassContext(verify_each=True))
    h = fg.op_histogram()
    for op, n in expect_ops.items():
        assert h.get(op, 0) == n, h
    for op in gone_ops:
        assert op not in h, h
    ref = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    out = hwcomp.run(fg, feeds)
    for r, o in zip(ref, fg.outputs):
        np.testing.assert_allclose(out[o], r, rtol=tol, atol=tol)
    return fg


def _vi(name, shape):
    return helper.make_tensor_value_info(name, F, shape)


def test_spelled_out_layer_norm_fuses():
    c = 16
    n = helper.make_node
    nodes = [n("ReduceMean", ["x"], ["m"], axes=[-1]), n("Sub", ["x", "m"], ["d"]), n("Pow", ["d", "two"], ["d2"]),
             n("ReduceMean", ["d2"], ["v"], axes=[-1]), n("Add", ["v", "eps"], ["ve"]), n("Sqrt", ["ve"], ["s"]),
             n("Div", ["d", "s"], ["nrm"]), n("Mul", ["nrm", "gamma"], ["sc"]), n("Add", ["sc", "beta"], ["y"])]
    m = make_model(nodes, [_vi("x", [2, 5, c])], [_vi("y", [2, 5, c])],
                   {"two": np.float32(2), "eps": np.float32(1e-5), "gamma": rng.standard_normal(c).astype(np.float32),
                    "beta": rng.standard_normal(c).astype(np.float32)}, opset=17)
    fg = _check(m, {"x": rng.standard_normal((2, 5, c)).astype(np.float32)}, "default", {"layer_norm": 1},
                ["ReduceMean", "Sqrt", "Div"])
    assert abs(fg.nodes[0].attrs["epsilon"] - 1e-5) < 1e-12


@pytest.mark.parametrize("order", ["x_t_half", "t_half_x", "xhalf_t"])
def test_erf_gelu_fuses_in_every_mul_order(order):
    n = helper.make_node
    nodes = [n("Div", ["x", "sqrt2"], ["xs"]), n("Erf", ["xs"], ["e"]), n("Add", ["e", "one"], ["t"])]
    if order == "x_t_half":
        nodes += [n("Mul", ["x", "t"], ["xt"]), n("Mul", ["xt", "half"], ["y"])]
    elif order == "t_half_x":
        nodes += [n("Mul", ["t", "half"], ["th"]), n("Mul", ["th", "x"], ["y"])]
    else:
        nodes += [n("Mul", ["x", "half"], ["xh"]), n("Mul", ["xh", "t"], ["y"])]
    m = make_model(nodes, [_vi("x", [3, 8])], [_vi("y", [3, 8])],
                   {"sqrt2": np.float32(np.sqrt(2)), "one": np.float32(1), "half": np.float32(0.5)})
    _check(m, {"x": rng.standard_normal((3, 8)).astype(np.float32)}, "default", {"gelu": 1}, ["Erf", "Mul"])


def test_tanh_gelu_fuses():
    n = helper.make_node
    nodes = [n("Pow", ["x", "three"], ["x3"]), n("Mul", ["x3", "k"], ["kx3"]), n("Add", ["x", "kx3"], ["inner"]),
             n("Mul", ["inner", "c"], ["ci"]), n("Tanh", ["ci"], ["th"]), n("Add", ["th", "one"], ["t"]),
             n("Mul", ["x", "half"], ["xh"]), n("Mul", ["xh", "t"], ["y"])]
    m = make_model(nodes, [_vi("x", [3, 8])], [_vi("y", [3, 8])],
                   {"three": np.float32(3), "k": np.float32(0.044715), "c": np.float32(np.sqrt(2 / np.pi)),
                    "one": np.float32(1), "half": np.float32(0.5)})
    fg = _check(m, {"x": rng.standard_normal((3, 8)).astype(np.float32)}, "default", {"gelu": 1}, ["Tanh", "Pow"])
    assert fg.nodes[0].attrs["approximate"] == "tanh"


def test_matmul_bias_relu_becomes_one_dense():
    n = helper.make_node
    w, b = rng.standard_normal((8, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    m = make_model([n("MatMul", ["x", "w"], ["h"]), n("Add", ["b", "h"], ["hb"]), n("Relu", ["hb"], ["y"])],
                   [_vi("x", [2, 3, 8])], [_vi("y", [2, 3, 4])], {"w": w, "b": b})
    fg = _check(m, {"x": rng.standard_normal((2, 3, 8)).astype(np.float32)}, "default", {"dense": 1},
                ["MatMul", "Add", "Relu"])
    assert fg.nodes[0].attrs["activation"] == "relu"


def test_gemm_over_flattened_activations_becomes_nd_dense():
    n = helper.make_node
    w, b = rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    m = make_model([n("Reshape", ["x", "s2"], ["x2"]), n("Gemm", ["x2", "w", "b"], ["h"], transB=1),
                    n("Reshape", ["h", "s3"], ["y"])],
                   [_vi("x", [2, 3, 8])], [_vi("y", [2, 3, 4])],
                   {"w": w, "b": b, "s2": np.array([6, 8], np.int64), "s3": np.array([2, 3, 4], np.int64)})
    _check(m, {"x": rng.standard_normal((2, 3, 8)).astype(np.float32)}, "default", {"dense": 1},
           ["Gemm", "Reshape"])


def test_conv_batchnorm_folds():
    n = helper.make_node
    c = 4
    params = {"w": rng.standard_normal((c, 3, 3, 3)).astype(np.float32), "sc": rng.random(c).astype(np.float32) + 0.5,
              "bi": rng.standard_normal(c).astype(np.float32), "mu": rng.standard_normal(c).astype(np.float32),
              "var": rng.random(c).astype(np.float32) + 0.1}
    m = make_model([n("Conv", ["x", "w"], ["cv"], pads=[1, 1, 1, 1]),
                    n("BatchNormalization", ["cv", "sc", "bi", "mu", "var"], ["y"])],
                   [_vi("x", [1, 3, 6, 6])], [_vi("y", [1, c, 6, 6])], params)
    _check(m, {"x": rng.standard_normal((1, 3, 6, 6)).astype(np.float32)}, "default", {"Conv": 1},
           ["BatchNormalization"], tol=1e-4)


def test_cse_and_noop_removal():
    n = helper.make_node
    m = make_model([n("Relu", ["x"], ["a"]), n("Relu", ["x"], ["b"]), n("Identity", ["a"], ["ai"]),
                    n("Cast", ["b"], ["bc"], to=TensorProto.FLOAT), n("Add", ["ai", "bc"], ["y"])],
                   [_vi("x", [4])], [_vi("y", [4])])
    _check(m, {"x": rng.standard_normal(4).astype(np.float32)}, "cleanup", {"Relu": 1, "Add": 1},
           ["Identity", "Cast"])


def test_unknown_pass_is_a_pass_error():
    g = hwcomp.Graph()
    with pytest.raises(PassError, match="fuse_magic.*known passes"):
        run_pipeline(g, ["fuse_magic"])


def _self_attention_model(b=2, s=8, c=16, heads=2, cross=False):
    """x -> Q/K/V MatMul+Add -> heads split -> softmax(QKᵀ/sqrt(d)) V -> heads merged (eager-exporter form);
    with ``cross``, K and V project a second input (encoder states)."""
    n = helper.make_node
    d = c // heads
    kv_in = "mem" if cross else "x"
    nodes = []
    init = {"hs": np.array([b, s, heads, d], np.int64), "os": np.array([b, s, c], np.int64),
            "scale": np.float32(1 / np.sqrt(d))}
    for p, src in (("q", "x"), ("k", kv_in), ("v", kv_in)):
        init[f"W{p}"] = rng.standard_normal((c, c)).astype(np.float32) / 4
        init[f"b{p}"] = rng.standard_normal(c).astype(np.float32)
        nodes += [n("MatMul", [src, f"W{p}"], [f"{p}m"]), n("Add", [f"{p}m", f"b{p}"], [f"{p}a"]),
                  n("Reshape", [f"{p}a", "hs"], [f"{p}r"]),
                  n("Transpose", [f"{p}r"], [f"{p}t"], perm=[0, 2, 3, 1] if p == "k" else [0, 2, 1, 3])]
    nodes += [n("MatMul", ["qt", "kt"], ["sc"]), n("Mul", ["sc", "scale"], ["ss"]),
              n("Softmax", ["ss"], ["p"], axis=-1), n("MatMul", ["p", "vt"], ["o"]),
              n("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]), n("Reshape", ["ot", "os"], ["y"])]
    ins = [_vi("x", [b, s, c])] + ([_vi("mem", [b, s, c])] if cross else [])
    feeds = {"x": rng.standard_normal((b, s, c)).astype(np.float32)}
    if cross:
        feeds["mem"] = rng.standard_normal((b, s, c)).astype(np.float32)
    return make_model(nodes, ins, [_vi("y", [b, s, c])], init, opset=17), feeds


def test_qkv_projections_of_one_input_fuse_into_one_dense_and_a_split():
    m, feeds = _self_attention_model()
    fg = _check(m, feeds, "default,fuse_qkv,dce", {"attention": 1, "dense": 1, "Split": 1}, ["MatMul", "Softmax"])
    dense = next(nd for nd in fg.nodes if nd.op == "dense")
    assert fg.constants[dense.inputs[1]].shape == (16, 48) and fg.constants[dense.inputs[2]].shape == (48,)
    split = next(nd for nd in fg.nodes if nd.op == "Split")
    att = next(nd for nd in fg.nodes if nd.op == "attention")
    assert split.outputs == att.inputs[:3] and split.attrs["split"] == [16, 16, 16]


def test_cross_attention_projections_stay_apart():
    m, feeds = _self_attention_model(cross=True)
    _check(m, feeds, "default,fuse_qkv,dce", {"attention": 1, "dense": 3}, ["Split"])
