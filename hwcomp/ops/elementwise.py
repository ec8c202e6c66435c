"""Element-wise ONNX ops (unary, binary with numpy broadcasting, comparisons, Where, Clip, Cast)."""

from __future__ import annotations

import numpy as np
from scipy.special import erf as _erf

from ..ir.types import DType, TensorType
from .registry import broadcast_bool, broadcast_same_dtype, broadcast_shape, by_evaluation, op, same_type


def _keep(x: np.ndarray, like: np.ndarray) -> np.ndarray:
    return np.asarray(x).astype(like.dtype, copy=False)


# ---- unary -------------------------------------------------------------------------------------------
_UNARY = {
    "Relu": lambda x: np.maximum(x, 0).astype(x.dtype),
    "Tanh": np.tanh,
    "Sigmoid": lambda x: (1.0 / (1.0 + np.exp(-x))),
    "Erf": _erf,
    "Sqrt": np.sqrt,
    "Reciprocal": lambda x: 1.0 / x,
    "Neg": np.negative,
    "Exp": np.exp,
    "Log": np.log,
    "Abs": np.abs,
    "Floor": np.floor,
    "Ceil": np.ceil,
    "Round": np.rint,
    "Sign": np.sign,
    "Sin": np.sin,
    "Cos": np.cos,
    "Softplus": lambda x: np.log1p(np.exp(x)),
    "Softsign": lambda x: x / (1 + np.abs(x)),
    "Identity": lambda x: x,
    "Not": np.logical_not,
}


def _make_unary(name: str, f):
    @op(name, infer=same_type)
    def _unary(node, x):
        return _keep(f(x), x)
    _unary.__doc__ = f"ONNX {name}."
    return _unary


for _n, _f in _UNARY.items():
    _make_unary(_n, _f)


@op("IsNaN", infer=lambda n, t, c: [TensorType(t[0].shape, DType.bool)])
def isnan(node, x):
    return np.isnan(x)


@op("IsInf", infer=lambda n, t, c: [TensorType(t[0].shape, DType.bool)])
def isinf(node, x):
    pos, neg = node.attr("detect_positive", 1), node.attr("detect_negative", 1)
    return (np.isposinf(x) & bool(pos)) | (np.isneginf(x) & bool(neg))


@op("LeakyRelu", infer=same_type)
def leaky_relu(node, x):
    return _keep(np.where(x >= 0, x, x * node.attr("alpha", 0.01)), x)


@op("HardSigmoid", infer=same_type)
def hard_sigmoid(node, x):
    return _keep(np.clip(x * node.attr("alpha", 0.2) + node.attr("beta", 0.5), 0, 1), x)


@op("Elu", infer=same_type)
def elu(node, x):
    return _keep(np.where(x >= 0, x, node.attr("alpha", 1.0) * (np.exp(x) - 1)), x)


@op("Gelu", infer=same_type)
def gelu_onnx(node, x):
    """ONNX Gelu (opset 20): exact erf form, or tanh approximation."""
    return gelu_ref(x, node.attr("approximate", "none"))


def gelu_ref(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    if approximate == "tanh":
        y = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    else:
        y = 0.5 * x * (1 + _erf(x / np.sqrt(2)))
    return _keep(y, x)


# ---- binary / variadic -------------------------------------------------------------------------------
def _div(a, b):
    if np.issubdtype(a.dtype, np.integer):
        return _keep(np.trunc(a / b), a)
    return a / b


def _mod(node, a, b):
    if node.attr("fmod", 0):
        return np.fmod(a, b)
    return np.mod(a, b)


def _pow(a, b):
    if np.issubdtype(a.dtype, np.floating):
        return np.power(a, b.astype(a.dtype))
    return np.power(a.astype(np.int64), b.astype(np.int64))


_BINARY = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": _div, "Pow": _pow,
    "BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or, "BitwiseXor": np.bitwise_xor,
}
_COMPARE = {
    "Equal": np.equal, "Less": np.less, "LessOrEqual": np.less_equal, "Greater": np.greater,
    "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
}


def _make_binary(name: str, f):
    @op(name, infer=broadcast_same_dtype)
    def _binary(node, a, b):
        return _keep(f(a, b), a)
    _binary.__doc__ = f"ONNX {name} with numpy broadcasting."


def _make_compare(name: str, f):
    @op(name, infer=broadcast_bool)
    def _compare(node, a, b):
        return f(a, b)
    _compare.__doc__ = f"ONNX {name}."


for _n, _f in _BINARY.items():
    _make_binary(_n, _f)
for _n, _f in _COMPARE.items():
    _make_compare(_n, _f)


@op("Mod", infer=broadcast_same_dtype)
def mod(node, a, b):
    return _keep(_mod(node, a, b), a)


def _variadic(f):
    def compute(node, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = f(out, x)
        return _keep(out, xs[0])
    return compute


op("Max", infer=broadcast_same_dtype)(_variadic(np.maximum))
op("Min", infer=broadcast_same_dtype)(_variadic(np.minimum))
op("Sum", infer=broadcast_same_dtype)(_variadic(np.add))


@op("Mean", infer=broadcast_same_dtype)
def mean(node, *xs):
    return _keep(_variadic(np.add)(node, *xs) / len(xs), xs[0])


def _where_infer(node, types, consts):
    return [TensorType(broadcast_shape(*(t.shape for t in types), node=node), types[1].dtype)]


@op("Where", infer=_where_infer)
def where(node, cond, a, b):
    return np.where(cond, a, b).astype(a.dtype, copy=False)


@op("Clip", infer=same_type)
def clip(node, x, lo=None, hi=None):
    lo = node.attr("min") if lo is None else lo
    hi = node.attr("max") if hi is None else hi
    y = x
    if lo is not None:
        y = np.maximum(y, lo)
    if hi is not None:
        y = np.minimum(y, hi)
    return _keep(y, x)


# ---- casts ---------------------------------------------------------------------------------------------
def cast_array(x: np.ndarray, to: DType, saturate: bool = True) -> np.ndarray:
    to = DType(to)
    if to is DType.bool:
        return x.astype(bool)
    if to.is_int and np.issubdtype(x.dtype, np.floating):
        # ONNX casts float -> int by truncation; out-of-range is undefined, we saturate.
        info = np.iinfo(to.numpy)
        return np.clip(np.trunc(np.nan_to_num(x)), info.min, info.max).astype(to.numpy)
    return x.astype(to.numpy)


@op("Cast", infer=lambda n, t, c: [TensorType(t[0].shape, DType(n.attrs["to"]))])
def cast(node, x):
    return cast_array(x, node.attrs["to"])


@op("CastLike", infer=lambda n, t, c: [TensorType(t[0].shape, t[1].dtype)])
def cast_like(node, x, like):
    return cast_array(x, DType.from_numpy(like.dtype))


@op("BitShift", infer=broadcast_same_dtype)
def bit_shift(node, x, s):
    return np.left_shift(x, s) if node.attrs["direction"] == "LEFT" else np.right_shift(x, s)


@op("PRelu", infer=by_evaluation)
def prelu(node, x, slope):
    return _keep(np.where(x >= 0, x, x * slope), x)
