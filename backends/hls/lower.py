"""Lower the nodes of a quantized hwcomp graph to calls of the HLS kernel library (include/hwcomp_hls.h).

One emitter per op, registered in ``EMITTERS`` by the ``@emits`` decorator; each validates the node
(unsupported attribute values raise :class:`~hwcomp.errors.HardwareError` naming node, op and value) and
appends C++ statements to the body of the top-level ``model`` function. Constant operands and array
attributes (multipliers, shifts, gammas, ...) become constant arrays through :meth:`Emitter.const`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from hwcomp.errors import HardwareError
from hwcomp.hardware import HardwareParams
from hwcomp.ir.graph import Graph, Node
from hwcomp.ir.types import DType

CTYPES = {
    DType.float32: "float", DType.float64: "double", DType.int8: "int8_t", DType.uint8: "uint8_t",
    DType.int16: "int16_t", DType.uint16: "uint16_t", DType.int32: "int32_t", DType.uint32: "uint32_t",
    DType.int64: "int64_t", DType.uint64: "uint64_t", DType.bool: "uint8_t",
}
_NP_CTYPES = {np.dtype(k.numpy).str: v for k, v in CTYPES.items() if k is not DType.bool}
_NP_CTYPES[np.dtype(bool).str] = "uint8_t"


def ctype_of_array(a: np.ndarray) -> str:
    return _NP_CTYPES[a.dtype.str]


def c_literal(v, ctype: str) -> str:
    """One element as an exact C++ literal (floats as hexadecimal literals)."""
    if ctype in ("float", "double"):
        f = float(v)
        if math.isnan(f):
            return "NAN"
        if math.isinf(f):
            return "INFINITY" if f > 0 else "-INFINITY"
        mant, exp = f.hex().split("p")
        if "." in mant:
            mant = mant.rstrip("0").rstrip(".")
        return f"{mant}p{exp}" + ("f" if ctype == "float" else "")
    i = int(v)
    if ctype == "int64_t":
        return "INT64_MIN" if i == -(1 << 63) else f"INT64_C({i})"
    if ctype == "uint64_t":
        return f"UINT64_C({i})"
    if ctype == "int32_t" and i == -(1 << 31):
        return "INT32_MIN"
    return str(i)


@dataclass
class ConstArray:
    cname: str
    ctype: str
    data: np.ndarray  # flattened, C order
    comment: str
    external: bool  # True: lives in weights.bin and reaches the top function through its own m_axi port
    offset: int = 0


@dataclass
class Port:
    cname: str
    ctype: str
    size: int
    value: str  # graph value name
    shape: tuple[int, ...]
    dtype: str


@dataclass
class Emitter:
    """Emission state for one graph: C names of values, constant arrays, the model body."""

    g: Graph
    hw: HardwareParams
    inline_limit: int
    names: dict[str, str] = field(default_factory=dict)
    consts: list[ConstArray] = field(default_factory=list)
    buffers: list[tuple[str, str, int, str]] = field(default_factory=list)  # cname, ctype, size, comment
    body: list[str] = field(default_factory=list)
    kernels: set[str] = field(default_factory=set)
    inputs: list[Port] = field(default_factory=list)
    outputs: list[Port] = field(default_factory=list)
    _n: int = 0

    def fresh(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def ctype(self, value: str, node: Node) -> str:
        dt = self.g.types[value].dtype
        if dt not in CTYPES:
            raise HardwareError(f"node {node.name!r} ({node.op}): value {value!r} has dtype {dt}, which the HLS "
                                f"backend does not support (supported: {', '.join(sorted(d.value for d in CTYPES))})")
        return CTYPES[dt]

    def shape(self, value: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.g.types[value].shape)

    def size(self, value: str) -> int:
        return int(np.prod(self.shape(value), dtype=np.int64))

    def const(self, array, ctype: str | None, comment: str) -> str:
        """A constant array (weights or attribute vectors); big ones go to weights.bin."""
        a = np.ascontiguousarray(np.asarray(array)).reshape(-1)
        if ctype is not None:
            a = a.astype({"float": np.float32, "double": np.float64, "int8_t": np.int8, "uint8_t": np.uint8,
                          "int16_t": np.int16, "uint16_t": np.uint16, "int32_t": np.int32, "uint32_t": np.uint32,
                          "int64_t": np.int64, "uint64_t": np.uint64}[ctype])
        else:
            ctype = ctype_of_array(a)
            if a.dtype == np.bool_:
                a = a.astype(np.uint8)
        if a.size == 0:
            a = np.zeros(1, a.dtype)  # C++ has no zero-length arrays; never read
        external = a.nbytes > self.inline_limit
        c = ConstArray(self.fresh("w" if external else "c"), ctype, a, comment, external)
        self.consts.append(c)
        return c.cname

    def value(self, name: str, node: Node) -> str:
        """C name of an input value of ``node`` (constants are materialized on first use)."""
        if name in self.names:
            return self.names[name]
        if name in self.g.constants:
            arr = self.g.constants[name]
            self.names[name] = self.const(arr, self.ctype(name, node), f"{name} {self.g.types[name]}")
            return self.names[name]
        raise HardwareError(f"node {node.name!r} ({node.op}): input {name!r} is neither computed nor constant")

    def define(self, name: str, node: Node) -> str:
        """C name of an output value (a top-level output port or a static buffer)."""
        for p in self.outputs:
            if p.value == name:
                self.names[name] = p.cname
                return p.cname
        cname = self.fresh("v")
        self.buffers.append((cname, self.ctype(name, node), self.size(name), f"{name} {self.g.types[name]}"))
        self.names[name] = cname
        return cname

    def emit(self, line: str) -> None:
        self.body.append("    " + line)

    def scratch(self, ctype: str, size: int, comment: str) -> str:
        """A static buffer that is no graph value (e.g. the integer attention mask)."""
        cname = self.fresh("s")
        self.buffers.append((cname, ctype, size, comment))
        return cname

    def epilogue(self, node: Node, channels: int) -> tuple[str, str]:
        """(the four epilogue arguments "mult, shift, fscale, params", output C type) from the node's
        requantization / float epilogue attrs."""
        act = node.attr("activation", "none")
        if act not in ("none", "relu"):
            raise HardwareError(f"node {node.name!r} ({node.op}): activation {act!r} in the epilogue is not "
                                "supported by the HLS backend (none/relu); keep that activation a separate node")
        relu = int(act == "relu")
        name = self.fresh("epi")
        if node.attr("out_dtype", "int8") == "float32":
            sc = np.asarray(node.attrs["out_scale"], np.float32).reshape(-1)
            self._check_channels(node, "out_scale", sc.size, channels)
            k = self.const(sc, "float", f"{node.name} out_scale")
            self.emit(f"const hwc::Epilogue {name} = {{0, 0, 0, 0, {int(sc.size > 1)}, {relu}}};")
            return f"hwc::kNoneI32, hwc::kNoneI32, {k}, {name}", "float"
        bits = int(node.attr("out_bits", 8))
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        m = np.asarray(node.attrs["multiplier"], np.int32).reshape(-1)
        s = np.asarray(node.attrs["shift"], np.int32).reshape(-1)
        self._check_channels(node, "multiplier", m.size, channels)
        if s.size != m.size or np.any(s < 1) or np.any(s > 62):
            raise HardwareError(f"node {node.name!r} ({node.op}): shift {s.tolist()[:4]} must match the multiplier "
                                "and lie in [1, 62]")
        km = self.const(m, "int32_t", f"{node.name} multiplier")
        ks = self.const(s, "int32_t", f"{node.name} shift")
        zp = int(node.attr("out_zero_point", 0))
        self.emit(f"const hwc::Epilogue {name} = {{{int(m.size > 1)}, {zp}, {c_literal(lo, 'int64_t')}, "
                  f"{c_literal(hi, 'int64_t')}, 0, {relu}}};")
        return f"{km}, {ks}, hwc::kNoneF32, {name}", {8: "int8_t", 16: "int16_t"}.get(bits, "int32_t")

    @staticmethod
    def _check_channels(node: Node, what: str, n: int, channels: int) -> None:
        if n not in (1, channels):
            raise HardwareError(f"node {node.name!r} ({node.op}): {what} has {n} entries for {channels} channels")


EmitFn = Callable[[Emitter, Node], None]
EMITTERS: dict[str, EmitFn] = {}


def emits(*ops: str) -> Callable[[EmitFn], EmitFn]:
    def deco(fn: EmitFn) -> EmitFn:
        for o in ops:
            EMITTERS[o] = fn
        return fn
    return deco


def gemm_tiles(hw: HardwareParams) -> tuple[int, int, int]:
    """(TM, TN, TK): TK = array rows (one K-slice per input line), TN = array columns, TM = output rows
    that fit both the accumulator scratchpad (one line per row) and the input scratchpad."""
    return min(hw.acc_lines, hw.input_lines), hw.cols, hw.rows


def _expect(e: Emitter, node: Node, value: str, ok: Callable[[DType], bool], what: str) -> None:
    dt = e.g.types[value].dtype
    if not ok(dt):
        raise HardwareError(f"node {node.name!r} ({node.op}): input {value!r} is {dt}, expected {what}")


def _is_int(dt: DType) -> bool:
    return dt.is_int and dt not in (DType.int4, DType.uint4)


# ---- quantized kernels ------------------------------------------------------------------------------------

@emits("qdense")
def _qdense(e: Emitter, n: Node) -> None:
    x, w = n.inputs[0], n.inputs[1]
    _expect(e, n, x, _is_int, "an integer activation")
    _expect(e, n, w, _is_int, "integer weights")
    k, nn = e.shape(w)
    m = e.size(x) // k
    bias = f"{e.value(n.input(2), n)}, 1" if n.input(2) else "hwc::kNoneI32, 0"
    xs, ws = e.value(x, n), e.value(w, n)
    epi, octype = e.epilogue(n, nn)
    y = e.define(n.outputs[0], n)
    e.emit(f"hwc::qdense<HWC_TM, HWC_TN, HWC_TK>({xs}, {ws}, {bias}, {m}, {k}, {nn}, {int(n.attr('x_zero_point', 0))}, "
           f"{epi}, {y});")
    e.kernels.add("qdense")


@emits("qattention")
def _qattention(e: Emitter, n: Node) -> None:
    if n.attr("softmax", "int") != "int":
        raise HardwareError(f"node {n.name!r} (qattention): softmax={n.attr('softmax')!r} is not supported by the "
                            "HLS backend (only the integer I-BERT softmax, softmax='int')")
    q, k, v = n.inputs[:3]
    for t in (q, k, v):
        _expect(e, n, t, _is_int, "integer q/k/v")
    h = int(n.attrs["num_heads"])
    b, sq, hd = e.shape(q)
    sk, hdv = e.shape(k)[1], e.shape(v)[2]
    d, dv = hd // h, hdv // h
    mask = "hwc::kNoneI64, 0, hwc::MaskStrides{0, 0, 0, 0}"
    ss = float(n.attrs["score_scale"])
    if n.input(3):
        mname = n.inputs[3]
        _expect(e, n, mname, lambda dt: dt is DType.float32, "a float32 additive mask")
        ms = e.shape(mname)
        if len(ms) > 4:
            raise HardwareError(f"node {n.name!r} (qattention): mask {mname!r} of rank {len(ms)} does not broadcast "
                                "to [B, H, Sq, Sk]")
        full = (1,) * (4 - len(ms)) + ms
        strides = [int(np.prod(full[i + 1:], dtype=np.int64)) if full[i] > 1 else 0 for i in range(4)]
        mi = e.scratch("int64_t", e.size(mname), f"{mname} in score units ({n.name})")
        e.emit(f"hwc::mask_to_int({e.value(mname, n)}, {e.size(mname)}, {c_literal(ss, 'double')}, {mi});")
        mask = f"{mi}, 1, hwc::MaskStrides{{{', '.join(map(str, strides))}}}"
    epi, octype = e.epilogue(n, hdv)
    y = e.define(n.outputs[0], n)
    e.emit(f"hwc::qattention<{sk}, {max(d, 1)}>({e.value(q, n)}, {e.value(k, n)}, {e.value(v, n)}, {mask}, {b}, {sq}, "
           f"{sk}, {h}, {d}, {dv}, {int(n.attr('causal', 0))}, "
           f"{c_literal(int(n.attrs['exp_ln2']), 'int64_t')}, {c_literal(int(n.attrs['exp_b']), 'int64_t')}, "
           f"{c_literal(int(n.attrs['exp_c']), 'int64_t')}, {int(n.attr('prob_bits', 8))}, {epi}, {y});")
    e.kernels.add("qattention")


@emits("int_gelu")
def _int_gelu(e: Emitter, n: Node) -> None:
    x = n.inputs[0]
    _expect(e, n, x, _is_int, "an integer input")
    ch = e.shape(x)[-1] if e.shape(x) else 1
    epi, _ = e.epilogue(n, ch)
    xs = e.value(x, n)
    y = e.define(n.outputs[0], n)
    e.emit(f"hwc::int_gelu({xs}, {e.size(x)}, {c_literal(int(n.attrs['b_int']), 'int64_t')}, "
           f"{c_literal(int(n.attrs['one_int']), 'int64_t')}, {ch}, {epi}, {y});")
    e.kernels.add("int_gelu")


@emits("int_layer_norm")
def _int_layer_norm(e: Emitter, n: Node) -> None:
    x = n.inputs[0]
    _expect(e, n, x, _is_int, "an integer input")
    c = e.shape(x)[-1]
    gam = np.broadcast_to(np.asarray(n.attrs["gamma_int"], np.int32), (c,))
    bet = np.broadcast_to(np.asarray(n.attrs["beta_int"], np.int32), (c,))
    frac = int(n.attr("frac_bits", 14))
    if not 0 <= frac <= 31:
        raise HardwareError(f"node {n.name!r} (int_layer_norm): frac_bits={frac} must lie in [0, 31]")
    epi, _ = e.epilogue(n, c)
    xs = e.value(x, n)
    kg, kb = e.const(gam, "int32_t", f"{n.name} gamma_int"), e.const(bet, "int32_t", f"{n.name} beta_int")
    y = e.define(n.outputs[0], n)
    e.emit(f"hwc::int_layer_norm<{c}>({xs}, {e.size(x) // c}, {c}, {kg}, {kb}, "
           f"{c_literal(int(n.attrs['eps_int']), 'int64_t')}, {frac}, {epi}, {y});")
    e.kernels.add("int_layer_norm")


@emits("int_softmax")
def _int_softmax(e: Emitter, n: Node) -> None:
    x = n.inputs[0]
    _expect(e, n, x, _is_int, "an integer input")
    c = e.shape(x)[-1]
    xs = e.value(x, n)
    y = e.define(n.outputs[0], n)
    e.emit(f"hwc::int_softmax<{c}>({xs}, {e.size(x) // c}, {c}, {c_literal(int(n.attrs['exp_ln2']), 'int64_t')}, "
           f"{c_literal(int(n.attrs['exp_b']), 'int64_t')}, {c_literal(int(n.attrs['exp_c']), 'int64_t')}, "
           f"{int(n.attr('prob_bits', 8))}, {y});")
    e.kernels.add("int_softmax")


def _scale_arg(e: Emitter, n: Node, channels: int) -> tuple[str, int]:
    sc = np.asarray(n.attrs["scale"], np.float32).reshape(-1)
    e._check_channels(n, "scale", sc.size, channels)
    return e.const(sc, "float", f"{n.name} scale"), int(sc.size > 1)


@emits("quantize")
def _quantize(e: Emitter, n: Node) -> None:
    x = n.inputs[0]
    _expect(e, n, x, lambda dt: dt is DType.float32, "float32")
    bits, signed = int(n.attr("bits", 8)), bool(n.attr("signed", 1))
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    ch = e.shape(x)[-1] if e.shape(x) else 1
    k, step = _scale_arg(e, n, ch)
    xs = e.value(x, n)
    y = e.define(n.outputs[0], n)
    e.emit(f"hwc::quantize({xs}, {e.size(x)}, {k}, {step}, {ch}, {c_literal(float(np.float32(n.attr('zero_point', 0))), 'float')}, "
           f"{c_literal(float(lo), 'float')}, {c_literal(float(hi), 'float')}, {y});")
    e.kernels.add("quantize")


@emits("dequantize")
def _dequantize(e: Emitter, n: Node) -> None:
    x = n.inputs[0]
    _expect(e, n, x, _is_int, "an integer input")
    ch = e.shape(x)[-1] if e.shape(x) else 1
    k, step = _scale_arg(e, n, ch)
    xs = e.value(x, n)
    y = e.define(n.outputs[0], n)
    e.emit(f"hwc::dequantize({xs}, {e.size(x)}, {k}, {step}, {ch}, {c_literal(int(n.attr('zero_point', 0)), 'int64_t')}, {y});")
    e.kernels.add("dequantize")
