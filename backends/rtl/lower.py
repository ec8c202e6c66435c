"""Lower a quantized hwcomp graph (after ``quantize_int8`` + ``integer_nonlinear``) to the accelerator.

The result is a :class:`Plan`: a static DRAM image (weights, folded biases, requant parameters), a table of
DRAM-resident tensors, and an ordered list of steps, each either

* a :class:`HwSegment`: consecutive hardware nodes lowered to one instruction stream (split into chunks of
  at most ``imem_depth`` words, each ending in HALT); the host writes the segment's host-produced inputs into
  DRAM before it and reads its outputs back after it; or
* a :class:`HostStep`: a node (or a matmul's epilogue) the host executes in numpy with the interpreter's own
  op implementation. Host steps are listed by name in ``report.json``; they never count as hardware.

What runs where (WS dataflow):

==============================  =============================================================================
hardware                        ``qdense`` with int8 x, constant int8 [K, N] weights: the matmul on the array
                                (x zero point folded into the int32 bias: ``bias - x_zp * colsum(w)``, exact mod
                                2^32), and, for an int8 output, the requantization (requant unit) and relu
                                (vector unit ``MAX`` against a line of zero points)
host epilogue                   ``qdense`` with a float32 or 16-bit epilogue: the hardware stores the raw int32
                                accumulators, the host applies ``float32(acc) * out_scale`` / 16-bit requantize
vector unit (table)             ``int_gelu`` with an int8 output: a 256-entry table (LUT_WRITE, then LUT)
host (no vector kernel yet)     ``qattention``'s softmax, ``int_softmax``, ``int_layer_norm``, ``quantize``,
                                ``dequantize``, residual ``Add`` and the embedding / mask glue (``GLUE_OPS``),
                                float sentence-embedding pooling after the encoder (``POOL_OPS``)
rejected (HardwareError)        float compute (``dense``, ``MatMul``, ``attention``, ``Softmax``, ...), ``wdense``
==============================  =============================================================================

DRAM layout: int8 activations are ``[M, Cp]`` row-major (M = product of the leading dims, Cp = C rounded up
to lcm(rows, cols)); raw accumulators ``[M, Np]`` int32 (Np = N rounded up to cols). Padding bytes are never
read as data: padded weight rows are zero. Every region is 64-byte aligned; constants come first, then
activations in order of first definition (no reuse: simple and debuggable).

WS tiling of one qdense ``[M, K] x [K, N]`` for the decoupled LD/EX/ST units (``_qdense_tiles`` /
``_qdense_program``): the weights are stored tile-major (``[K tile][N tile][rows][cols]``) so one LOAD brings
a K tile of ``gn`` N tiles; a group of ``gn`` N tiles x ``tm`` rows accumulates over K with ``gn`` MATMULs per
K step, which chain back to back in the array; the loads of step i+1 are issued before the MATMULs of step i
into rotating input/weight slots (the whole input stays resident when it fits); the accumulator and vector
halves alternate between groups so requantization and stores overlap the next group. ``tm``/``gn`` come from
a throughput estimate over what fits the scratchpads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hwcomp.errors import HardwareError
from hwcomp.hardware import HardwareParams
from hwcomp.ir.graph import Graph, Node
from hwcomp.ir.types import DType

from .isa import Buffer, Halt, Instr, Load, Matmul, Requant, Store, Vector, VecLutOp, VecOp
from .isa_model import schedule

ALIGN = 64
MAX_STRIDE = (1 << 20) - 1

# Ops the host runs with the interpreter's implementation, and why (shown in report.json).
HOST_OPS: dict[str, str] = {
    "qattention": "integer attention: no softmax kernel in the vector unit yet",
    "int_softmax": "no i-exp/row-sum kernel in the vector unit yet",
    "int_gelu": "per-channel or non-int8 epilogue (the vector unit's one table maps int8 to int8, per tensor)",
    "int_layer_norm": "no mean/isqrt kernel in the vector unit yet",
    "quantize": "float -> int conversion of model inputs / residual sums (float on the host)",
    "dequantize": "int -> float conversion for the float residual path",
}
GLUE_OPS = {"Gather", "Add", "Sub", "Mul", "Cast", "Flatten", "Reshape", "Where", "And", "Or", "Not", "Equal",
            "Unsqueeze", "Squeeze", "Expand", "Concat", "Slice", "Shape", "ConstantOfShape", "Transpose",
            "Split", "Identity", "Range", "Less", "Greater", "Neg", "Div"}
# int8 -> int8 element-wise ops the vector unit runs as a 256-entry table (exact: the compiler tabulates the
# op's own implementation over every int8 input).
LUT_OPS = {"int_gelu"}
# Float post-processing after the encoder (sentence-embedding mean pooling and L2 normalisation).
POOL_OPS = {"ReduceSum", "ReduceL2", "Clip", "Max", "Min", "Sqrt"}
FLOAT_COMPUTE = {"dense", "MatMul", "Gemm", "attention", "Softmax", "layer_norm", "add_layer_norm", "gelu",
                 "LayerNormalization", "Gelu", "Erf", "Tanh", "Pow", "ReduceMean", "Conv"}


def _ceil(a: int, b: int) -> int:
    return -(-a // b) * b


def _align(x: int) -> int:
    return _ceil(x, ALIGN)


@dataclass(frozen=True)
class Tensor2D:
    """A DRAM-resident value: ``[m, cp]`` row-major elements of ``dtype`` (int8 or int32) at ``addr``;
    the logical value is ``[:, :c]`` reshaped to ``shape``."""

    value: str
    addr: int
    m: int
    c: int
    cp: int
    dtype: str
    shape: tuple[int, ...]

    @property
    def elem(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def nbytes(self) -> int:
        return self.m * self.cp * self.elem

    def pack(self, x: np.ndarray) -> np.ndarray:
        buf = np.zeros((self.m, self.cp), self.dtype)
        buf[:, : self.c] = np.asarray(x).reshape(self.m, self.c)
        return buf.view(np.uint8).reshape(-1)

    def unpack(self, raw: np.ndarray) -> np.ndarray:
        a = np.ascontiguousarray(raw[: self.nbytes]).view(self.dtype).reshape(self.m, self.cp)
        return a[:, : self.c].reshape(self.shape).copy()

    def to_json(self) -> dict:
        return {"value": self.value, "addr": self.addr, "m": self.m, "c": self.c, "cp": self.cp,
                "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: dict) -> Tensor2D:
        return cls(d["value"], d["addr"], d["m"], d["c"], d["cp"], d["dtype"], tuple(d["shape"]))


@dataclass
class Phase:
    """One node's share of a segment (for per-phase cycles and MAC utilisation)."""

    node: str
    op: str
    macs: int
    first: int      # index of the node's first instruction in the segment's flat program
    count: int      # number of its instructions

    def to_json(self) -> dict:
        return {"node": self.node, "op": self.op, "macs": self.macs, "first": self.first, "count": self.count}


@dataclass
class HwSegment:
    index: int
    program: list[Instr]                       # flat, without HALTs
    writes: list[str] = field(default_factory=list)   # values the host writes before the segment
    reads: list[str] = field(default_factory=list)    # values read back after it
    phases: list[Phase] = field(default_factory=list)

    def chunks(self, imem_depth: int) -> list[list[Instr]]:
        """The program in pieces of at most ``imem_depth`` words, each ending with HALT (scratchpads and the
        requant parameters persist across a HALT/start, so a split point needs no state)."""
        n = imem_depth - 1
        return [self.program[i: i + n] + [Halt()] for i in range(0, max(len(self.program), 1), n)]

    @property
    def macs(self) -> int:
        return sum(p.macs for p in self.phases)


@dataclass
class HostStep:
    node: str
    op: str
    kind: str      # "node": run the op; "epilogue": the node's epilogue on its raw accumulators;
                   # "transpose": K -> K^T per (batch, head); "softmax": qattention's mask + int_softmax
    reason: str


@dataclass
class Plan:
    hw: HardwareParams
    image: np.ndarray                          # static DRAM image (uint8, hw.dram_bytes)
    tensors: dict[str, Tensor2D]
    steps: list[HwSegment | HostStep]
    const_bytes: int
    act_bytes: int
    used_bytes: int = 0                        # DRAM bytes in use (the image is zero beyond)

    @property
    def segments(self) -> list[HwSegment]:
        return [s for s in self.steps if isinstance(s, HwSegment)]


def acc_name(value: str) -> str:
    """Name of the raw-accumulator tensor of a qdense whose epilogue runs on the host."""
    return f"{value}#acc"


def pack_params(cols: int, multiplier: np.ndarray, shift: np.ndarray, zero_point: np.ndarray) -> np.ndarray:
    """Per-channel requant records (int32 multiplier, u8 shift, i8 zero point, 2 pad) for the PARAM buffer;
    padded channels get a harmless 2^30 >> 31."""
    n = multiplier.size
    np_ = _ceil(n, cols)
    mult = np.full(np_, 1 << 30, np.int64)
    sh = np.full(np_, 31, np.int64)
    zp = np.zeros(np_, np.int64)
    mult[:n], sh[:n], zp[:n] = multiplier, shift, zero_point
    rec = np.zeros((np_, 8), np.uint8)
    rec[:, 0:4] = mult.astype("<i4").view(np.uint8).reshape(np_, 4)
    rec[:, 4] = sh.astype(np.uint8)
    rec[:, 5] = zp.astype(np.int8).view(np.uint8)
    return rec.reshape(-1)


class _Lowerer:
    def __init__(self, g: Graph, hw: HardwareParams) -> None:
        if hw.dataflow != "ws":
            raise HardwareError(f"dataflow {hw.dataflow!r}: the compiler lowers whole models for the weight-"
                                "stationary array only (os needs transposed activations in DRAM, which the line-"
                                "granular DMA cannot produce); compile with --dataflow ws")
        self.g, self.hw = g, hw
        self.pad = math.lcm(hw.rows, hw.cols)
        self.chunks: list[tuple[int, np.ndarray]] = []   # (addr, bytes) of the static image
        self.off = 0
        self.tensors: dict[str, Tensor2D] = {}
        self.steps: list[HwSegment | HostStep] = []
        self.seg: HwSegment | None = None
        self.on_host: set[str] = set(g.inputs) | set(g.constants)   # values the host holds
        self.in_dram: set[str] = set()
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(g.nodes):
            for v in n.inputs:
                if v:
                    self.consumers.setdefault(v, []).append(i)

    # ---- DRAM allocation ---------------------------------------------------------------------------
    def _alloc(self, nbytes: int) -> int:
        addr = self.off
        self.off = _align(self.off + nbytes)
        return addr

    def const(self, data: np.ndarray) -> int:
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        addr = self._alloc(raw.size)
        self.chunks.append((addr, raw))
        return addr

    def tensor(self, value: str, dtype: str, shape: tuple[int, ...], *, cp: int | None = None) -> Tensor2D:
        t = self.tensors.get(value)
        if t is not None:
            return t
        c = shape[-1] if shape else 1
        m = int(np.prod(shape[:-1], dtype=np.int64)) if len(shape) > 1 else 1
        t = Tensor2D(value, 0, m, c, cp or _ceil(c, self.pad), dtype, tuple(shape))
        t = Tensor2D(value, self._alloc(t.nbytes), t.m, t.c, t.cp, t.dtype, t.shape)
        self.tensors[value] = t
        return t

    # ---- steps ---------------------------------------------------------------------------------------
    def _segment(self) -> HwSegment:
        if self.seg is None:
            self.seg = HwSegment(len([s for s in self.steps if isinstance(s, HwSegment)]), [])
            self.steps.append(self.seg)
        return self.seg

    def _host(self, node: Node, kind: str, reason: str) -> None:
        self._close()
        self.steps.append(HostStep(node.name, node.op, kind, reason))

    def _close(self) -> None:
        """End the current hardware segment: read back what the host (or the caller) needs later."""
        self.seg = None

    def _need_input(self, value: str, shape: tuple[int, ...] | None = None) -> Tensor2D:
        """A value a hardware node reads: host-held values are written into DRAM before the segment."""
        tt = self.tensor(value, "int8", shape or self.g.types[value].shape)
        if value not in self.in_dram:
            seg = self._segment()
            seg.writes.append(value)
            self.in_dram.add(value)
        return tt

    def _produced(self, value: str, raw: Tensor2D) -> None:
        seg = self._segment()
        seg.reads.append(raw.value)
        self.in_dram.add(raw.value)

    # ---- nodes ---------------------------------------------------------------------------------------
    def lower(self) -> Plan:
        g = self.g
        if not any(n.op in ("qdense", "qattention") for n in g.nodes):
            float_ops = sorted({n.op for n in g.nodes if n.op in FLOAT_COMPUTE or n.op == "wdense"})
            raise HardwareError("the model is not quantized (no qdense/qattention nodes"
                                + (f"; float ops: {', '.join(float_ops)}" if float_ops else "")
                                + "): the fpga/asic backends run int8 models only; quantize with --quant int8")
        for n in g.nodes:
            if n.op == "qdense" and self._qdense_on_hw(n):
                self._qdense(n)
            elif n.op == "qattention" and self._qattention_on_hw(n):
                self._qattention(n)
            elif n.op in LUT_OPS and self._lut_on_hw(n):
                self._lut(n)
            elif n.op in HOST_OPS:
                if n.op == "qattention" and n.attr("softmax", "int") != "int":
                    raise HardwareError(f"node {n.name!r} (qattention) uses a float softmax, which the RTL path does "
                                        "not have (--keep-float/host fallback is not available for RTL): compile "
                                        "with integer-only nonlinear ops (--integer-only)")
                self._host(n, "node", HOST_OPS[n.op])
            elif n.op in GLUE_OPS:
                self._host(n, "node", "glue (embedding gather, mask, float residual, reshape) on the host")
            elif n.op in POOL_OPS:
                self._host(n, "node", "float pooling / normalisation after the encoder on the host")
            else:
                hint = ("a float op: quantize with --quant int8 (integer-only nonlinears)"
                        if n.op in FLOAT_COMPUTE or n.op == "wdense" else "the accelerator has no unit for it")
                raise HardwareError(f"node {n.name!r} ({n.op}) cannot run on the fpga/asic accelerator: {hint}; "
                                    "--keep-float/host fallback is not available for RTL")
        self._close()
        const_bytes = sum(raw.size for _, raw in self.chunks)
        size = max(self.off, 1024)
        dram_bytes = 1 << (size - 1).bit_length()
        if dram_bytes > 1 << 32:
            raise HardwareError(f"the model needs {size} bytes of DRAM; the ISA addresses 4 GiB")
        # The DRAM grows to fit the model and never shrinks below the configured size (one simulator build
        # serves every model that fits).
        hw = self.hw.replace(dram_bytes=max(dram_bytes, self.hw.dram_bytes))
        image = np.zeros(hw.dram_bytes, np.uint8)
        for addr, raw in self.chunks:
            image[addr: addr + raw.size] = raw
        # Reads are only needed where the host (or the caller: graph outputs) uses the value.
        for seg in self.segments_of():
            seg.reads = [v for v in dict.fromkeys(seg.reads)]
        return Plan(hw, image, self.tensors, self.steps, const_bytes, self.off - const_bytes, self.off)

    def segments_of(self) -> list[HwSegment]:
        return [s for s in self.steps if isinstance(s, HwSegment)]

    def _qdense_on_hw(self, n: Node) -> bool:
        g = self.g
        x, w = n.inputs[0], n.inputs[1]
        bias = n.inputs[2] if len(n.inputs) > 2 else ""
        if g.types[x].dtype != DType.int8:
            raise HardwareError(f"node {n.name!r} (qdense): input {x!r} is {g.types[x].dtype}; the array takes int8")
        if w not in g.constants or g.constants[w].dtype != np.int8 or g.constants[w].ndim != 2:
            raise HardwareError(f"node {n.name!r} (qdense): weight {w!r} must be a constant int8 [K, N] matrix "
                                "(activation x activation products are qattention's)")
        if bias and bias not in g.constants:
            raise HardwareError(f"node {n.name!r} (qdense): bias {bias!r} must be a constant")
        return True

    def _qdense(self, n: Node) -> None:
        g, hw = self.g, self.hw
        r, c = hw.rows, hw.cols
        x, wname = n.inputs[0], n.inputs[1]
        w = g.constants[wname].astype(np.int64)
        k, nn = w.shape
        out = n.outputs[0]
        bias = g.constants[n.inputs[2]].astype(np.int64) if len(n.inputs) > 2 and n.inputs[2] else np.zeros(nn, np.int64)
        xzp = int(n.attr("x_zero_point", 0))
        bias = bias - xzp * w.sum(axis=0)                       # (x - zp) @ w + b == x @ w + (b - zp * colsum(w))
        int8_out = n.attr("out_dtype", "int8") != "float32" and int(n.attr("out_bits", 8)) == 8
        act = n.attr("activation", "none")
        xt = self._need_input(x)
        kp, np_ = _ceil(k, r), _ceil(nn, c)
        if xt.cp < kp:
            raise HardwareError(f"node {n.name!r}: input row of {xt.cp} bytes shorter than K={kp}")
        wp = np.zeros((kp, np_), np.int8)
        wp[:k, :nn] = w
        # tile-major weights: [K tile][N tile][rows][cols], so one LOAD brings a K tile of several N tiles
        w_addr = self.const(np.ascontiguousarray(wp.reshape(kp // r, r, np_ // c, c).transpose(0, 2, 1, 3)))
        bp = np.zeros(np_, "<i4")
        bp[:nn] = bias.astype(np.int64).astype(np.int32)       # int32 wrap, as the accumulator
        b_addr = self.const(bp)
        seg = self._segment()
        first = len(seg.program)
        prog = seg.program
        m = xt.m
        p_addr = zline = None
        if int8_out:
            mult = np.broadcast_to(np.asarray(n.attrs["multiplier"], np.int64).reshape(-1), (nn,))
            sh = np.broadcast_to(np.asarray(n.attrs["shift"], np.int64).reshape(-1), (nn,))
            zp = int(n.attr("out_zero_point", 0))
            if np.any((sh < 1) | (sh > 62)) or not -128 <= zp <= 127:
                raise HardwareError(f"node {n.name!r} (qdense): requant shift must be 1..62 and the zero point int8")
            p_addr = self.const(pack_params(c, mult, sh, np.full(nn, zp)))
            zline = self.const(np.full(c, zp, np.int8)) if act == "relu" else None
            yt = self.tensor(out, "int8", g.types[out].shape)
        else:
            yt = self.tensor(acc_name(out), "int32", g.types[out].shape, cp=np_)
        relu = zline is not None
        for s_, what in ((xt.cp, "input row"), (yt.cp * yt.elem, "output row")):
            if s_ > MAX_STRIDE:
                raise HardwareError(f"node {n.name!r}: {what} stride {s_} bytes exceeds the ISA's 20-bit stride field")
        ktiles, ntiles = kp // r, np_ // c
        tm, gn, resident, acc2, v2, sin, sw = self._qdense_tiles(m, ktiles, ntiles, relu, int8_out)
        self._qdense_program(prog, m=m, ktiles=ktiles, ntiles=ntiles, tm=tm, gn=gn, resident=resident, acc2=acc2,
                             v2=v2, sin=sin, sw=sw,
                             x_addr=xt.addr, x_cp=xt.cp, w_addr=w_addr, b_addr=b_addr,
                             p_addr=p_addr if int8_out else None, zline=zline, y_addr=yt.addr,
                             y_cp=yt.cp, int8_out=int8_out)
        seg.phases.append(Phase(n.name, n.op, m * k * nn, first, len(prog) - first))
        self._produced(out, yt)
        if not int8_out:
            self._host(n, "epilogue", "float32 / 16-bit epilogue of the hardware's int32 accumulators "
                                      "(the requant unit writes int8)")

    def _qdense_tiles(self, m: int, ktiles: int, ntiles: int, relu: bool, int8_out: bool) -> tuple:
        """(tm, gn, resident, acc2, v2, sin, sw): M rows per tile, N tiles per group (one K step streams gn
        MATMULs of tm rows), whole input resident in the input scratchpad, accumulator / vector halves
        alternating between groups, input / weight slots rotating between K steps (3 when they fit). Picked by a
        throughput estimate: per K step the array streams gn*tm rows while the DMA moves tm input lines (unless
        resident) and gn*rows weight lines; each group adds its drain, bias loads and epilogue."""
        hw = self.hw
        r, c = hw.rows, hw.cols
        cands = sorted({m, *[1 << i for i in range(0, 16) if (1 << i) < m]}, reverse=True)
        best = None
        for tm in cands:
            for gn in range(1, min(ntiles, 16) + 1):
                mt = min(tm, m)
                resident = m * ktiles <= hw.input_lines and tm >= m
                sin = 3 if resident else min(3, hw.input_lines // mt)
                sw = min(3, hw.weight_lines // (gn * r))
                if sin < 1 or sw < 1 or gn * mt > hw.acc_lines or mt > 1 << 15:
                    continue
                v2 = 2 * gn * mt + (mt if relu else 0) <= hw.vector_lines
                if int8_out and not v2 and gn * mt + (mt if relu else 0) > hw.vector_lines:
                    continue
                acc2 = 2 * gn * mt <= hw.acc_lines
                ld = (0 if resident else hw.beats(r) * mt + 4) + hw.beats(c) * gn * r + 4
                step = max(gn * mt, ld + 2) if min(sin, sw) > 2 else gn * mt + ld + r + 4
                groups = -(-ntiles // gn) * -(-m // tm)
                epi = r + c + 4 + gn * (mt + 6 + 2 * (hw.beats(8 * c) + 5)) + r + 20
                if not int8_out:
                    epi += gn * (mt * hw.beats(4 * c) + 4)
                est = groups * (ktiles * step + epi) + (m * ktiles * hw.beats(r) if resident else 0)
                key = (est, -mt, gn)
                if best is None or key < best[0]:
                    best = (key, (tm, gn, resident, acc2, v2, sin, sw))
        if best is None:
            raise HardwareError(f"qdense with M={m} does not fit the scratchpads of {hw.name}")
        return best[1]

    def _qdense_program(self, prog: list[Instr], *, m: int, ktiles: int, ntiles: int, tm: int, gn: int,
                        resident: bool, acc2: bool, v2: bool, sin: int, sw: int, x_addr: int, x_cp: int, w_addr: int, b_addr: int,
                        p_addr: int | None, zline: int | None, y_addr: int, y_cp: int, int8_out: bool) -> None:
        """Software-pipelined tile program: the loads of K step i+1 are issued before the MATMULs of step i
        (three rotating input/weight slots), each group's epilogue (requant, relu, store) overlaps the next
        group's loads and MATMULs (accumulator and vector halves alternate); the scoreboard orders the rest."""
        hw = self.hw
        r, c = hw.rows, hw.cols
        wl = gn * r                                # weight lines per slot
        glines = gn * min(tm, m)                   # accumulator / vector lines per group
        zbase = (2 if v2 else 1) * glines if int8_out else 0
        if zline is not None:
            prog.append(Load(Buffer.VECTOR, zbase, min(tm, m), zline, 0))
        if resident:
            for kt in range(ktiles):
                prog.append(Load(Buffer.INPUT, kt * m, m, x_addr + kt * r, x_cp))
        groups = [(n0t, m0) for n0t in range(0, ntiles, gn) for m0 in range(0, m, tm)]
        steps = [(gi, kt) for gi in range(len(groups)) for kt in range(ktiles)]

        def loads(si: int) -> list[Instr]:
            gi, kt = steps[si]
            n0t, m0 = groups[gi]
            mt, g = min(tm, m - m0), min(gn, ntiles - n0t)
            out: list[Instr] = []
            if not resident:
                out.append(Load(Buffer.INPUT, (si % sin) * tm, mt, x_addr + m0 * x_cp + kt * r, x_cp))
            out.append(Load(Buffer.WEIGHT, (si % sw) * wl, g * r, w_addr + (kt * ntiles + n0t) * r * c, c))
            return out

        pending: list[list[Instr]] = []            # deferred STOREs of the previous group, one per step
        ahead = min(sin, sw) > 1                   # prefetch one K step ahead (needs two slots)
        if ahead:
            prog += loads(0)
        for si, (gi, kt) in enumerate(steps):
            n0t, m0 = groups[gi]
            mt, g = min(tm, m - m0), min(gn, ntiles - n0t)
            abase = (gi % 2) * glines if acc2 else 0
            if ahead and si + 1 < len(steps):
                prog += loads(si + 1)
            elif not ahead:
                prog += loads(si)
            if kt == 0:
                if gi > 0:
                    for p in pending:
                        prog += p
                    pending = self._qdense_epilogue(prog, gi - 1, groups, tm, gn, m, ntiles, acc2, v2, glines, zbase,
                                                    p_addr, zline, y_addr, y_cp, int8_out)
                for jj in range(g):
                    prog.append(Load(Buffer.ACC, abase + jj * mt, mt, b_addr + 4 * (n0t + jj) * c, 0))
            a = kt * m + m0 if resident else (si % sin) * tm
            for jj in range(g):
                prog.append(Matmul(a, (si % sw) * wl + jj * r, abase + jj * mt, mt, accumulate=True, load_weights=True))
            if pending:
                prog += pending.pop(0)
        for p in pending:
            prog += p
        pending = self._qdense_epilogue(prog, len(groups) - 1, groups, tm, gn, m, ntiles, acc2, v2, glines, zbase,
                                        p_addr, zline, y_addr, y_cp, int8_out)
        for p in pending:
            prog += p

    def _qdense_epilogue(self, prog: list[Instr], gi: int, groups, tm: int, gn: int, m: int, ntiles: int,
                         acc2: bool, v2: bool, glines: int, zbase: int, p_addr: int | None, zline: int | None, y_addr: int,
                         y_cp: int, int8_out: bool) -> list[list[Instr]]:
        """Requant (+ relu) group ``gi`` now; return its STOREs, to be interleaved with the next group."""
        c = self.hw.cols
        n0t, m0 = groups[gi]
        mt, g = min(tm, m - m0), min(gn, ntiles - n0t)
        abase = (gi % 2) * glines if acc2 else 0
        stores: list[list[Instr]] = []
        for jj in range(g):
            n0 = (n0t + jj) * c
            if int8_out:
                vb = ((gi % 2) * glines if v2 else 0) + jj * mt
                prog.append(Load(Buffer.PARAM, 0, 1, p_addr + n0 * 8, 0))
                prog.append(Requant(abase + jj * mt, vb, mt))
                if zline is not None:
                    prog.append(Vector(VecOp.MAX, vb, zbase, vb, mt))
                stores.append([Store(Buffer.VECTOR, vb, mt, y_addr + m0 * y_cp + n0, y_cp)])
            else:
                prog.append(Store(Buffer.ACC, abase + jj * mt, mt, y_addr + 4 * (m0 * y_cp + n0), 4 * y_cp))
        return stores

    # ---- int8 -> int8 element-wise ops as a vector-unit table ---------------------------------------------
    def _lut_on_hw(self, n: Node) -> bool:
        g, hw = self.g, self.hw
        x, y = g.types[n.inputs[0]], g.types[n.outputs[0]]
        per_tensor = all(np.size(n.attrs.get(a, 1)) == 1 for a in ("multiplier", "shift", "out_zero_point"))
        return per_tensor and x.dtype == DType.int8 and y.dtype == DType.int8 and 256 % hw.cols == 0 \
            and hw.vector_lines >= 256 // hw.cols and len([i for i in n.inputs if i]) == 1

    def _lut(self, n: Node) -> None:
        from hwcomp.ops import run_op

        hw = self.hw
        with np.errstate(all="ignore"):
            table = run_op(n, [np.arange(256, dtype=np.uint8).view(np.int8)])[0].astype(np.int8)
        t_addr = self.const(table)
        xt = self._need_input(n.inputs[0])
        yt = self.tensor(n.outputs[0], "int8", self.g.types[n.outputs[0]].shape)
        assert yt.cp == xt.cp
        seg = self._segment()
        prog, first = seg.program, len(seg.program)
        tl, c = 256 // hw.cols, hw.cols
        prog.append(Load(Buffer.VECTOR, 0, tl, t_addr, c))
        prog.append(Vector(VecLutOp.LUT_WRITE, 0, 0, 0, tl))
        total = xt.m * xt.cp // c
        step = min(hw.vector_lines, 1 << 15)
        for l0 in range(0, total, step):
            t = min(step, total - l0)
            prog.append(Load(Buffer.VECTOR, 0, t, xt.addr + l0 * c, c))
            prog.append(Vector(VecLutOp.LUT, 0, 0, 0, t))
            prog.append(Store(Buffer.VECTOR, 0, t, yt.addr + l0 * c, c))
        seg.phases.append(Phase(n.name, n.op, 0, first, len(prog) - first))
        self._produced(n.outputs[0], yt)

    # ---- qattention: QK^T and PV on the array, mask + int_softmax on the host ---------------------------
    def _qattention_on_hw(self, n: Node) -> bool:
        """The array path needs int8 q/k/v with zero point 0, an int8 epilogue and heads whose width D is a
        multiple of rows and cols (a head's K tiles and N tiles must not spill into the next head)."""
        g, hw = self.g, self.hw
        if n.attr("softmax", "int") != "int" or n.attr("out_dtype", "int8") == "float32" \
                or int(n.attr("out_bits", 8)) != 8 or int(n.attr("prob_bits", 8)) != 8:
            return False
        q, k, v = (g.types[x] for x in n.inputs[:3])
        if any(t.dtype != DType.int8 or t.rank != 3 for t in (q, k, v)) or q.shape != k.shape or q.shape != v.shape:
            return False
        if any(t.quant is not None and np.any(np.asarray(t.quant.zero_point) != 0) for t in (q, k, v)):
            return False
        h = int(n.attrs["num_heads"])
        d = q.shape[2] // h
        s = q.shape[1]
        return d % hw.rows == 0 and d % hw.cols == 0 and d <= hw.weight_lines and _ceil(s, hw.rows) <= hw.weight_lines \
            and hw.acc_lines > 1 and hw.input_lines > 1

    def _qattention(self, n: Node) -> None:
        g, hw = self.g, self.hw
        r, c = hw.rows, hw.cols
        qn, kn, vn = n.inputs[:3]
        out = n.outputs[0]
        b, s, hd = g.types[qn].shape
        h = int(n.attrs["num_heads"])
        d = hd // h
        sp_c = _ceil(s, c)            # score columns (N of QK^T) padded to cols
        s_r = _ceil(s, r)             # PV reduction length padded to rows
        tm = min(hw.acc_lines - 1, hw.input_lines - 1, hw.vector_lines, 1 << 15)
        # 1. the host transposes K per (batch, head) into [B*H*D, S] (the DMA moves whole lines only)
        kt_name = f"{out}#kT"
        self._host(n, "transpose", "layout: K^T per head for the QK^T weight operand (the line DMA cannot "
                                   "transpose); from the hardware's own K")
        qt = self._need_input(qn)
        ktt = self._need_input(kt_name, (b * h * d, s))
        sc = self.tensor(f"{out}#scores", "int32", (b * h * s, s), cp=sp_c)
        seg = self._segment()
        prog, first = seg.program, len(seg.program)
        for bi in range(b):
            for hi in range(h):
                bh = bi * h + hi
                for n0 in range(0, sp_c, c):
                    prog.append(Load(Buffer.WEIGHT, 0, d, ktt.addr + bh * d * ktt.cp + n0, ktt.cp))
                    for m0 in range(0, s, tm):
                        mt = min(tm, s - m0)
                        for kt in range(d // r):
                            prog.append(Load(Buffer.INPUT, 0, mt, qt.addr + (bi * s + m0) * qt.cp + hi * d + kt * r, qt.cp))
                            prog.append(Matmul(0, kt * r, 0, mt, accumulate=kt > 0, load_weights=True))
                        prog.append(Store(Buffer.ACC, 0, mt, sc.addr + 4 * ((bh * s + m0) * sc.cp + n0), 4 * sc.cp))
        seg.phases.append(Phase(n.name + "/qk", "qattention.qk", b * h * s * s * d, first, len(prog) - first))
        self._produced(sc.value, sc)
        # 2. the host adds the mask, applies int_softmax and writes P - 128 as int8
        self._host(n, "softmax", "mask + I-BERT int_softmax (no i-exp/row-sum kernel in the vector unit yet); "
                                 "P is written as P - 128 (int8)")
        pt = self._need_input(f"{out}#p", (b * h * s, s))
        vt = self._need_input(vn)
        yt = self.tensor(out, "int8", g.types[out].shape)
        # per-tensor or per-channel (smoothed consumers) requantization over the H*D merged channels
        mult = np.broadcast_to(np.asarray(n.attrs["multiplier"], np.int64).reshape(-1), (hd,))
        sh = np.broadcast_to(np.asarray(n.attrs["shift"], np.int64).reshape(-1), (hd,))
        zp = int(n.attr("out_zero_point", 0))
        if np.any((sh < 1) | (sh > 62)) or not -128 <= zp <= 127:
            raise HardwareError(f"node {n.name!r} (qattention): requant shift must be 1..62 and the zero point int8")
        p_addr = self.const(pack_params(c, mult, sh, np.full(hd, zp)))
        ones = np.zeros((s_r // r, r), np.int8)         # 64 where k < S: two passes give 128 * colsum(V)
        ones.reshape(-1)[:s] = 64
        ones_addr = self.const(ones)
        corr = self._alloc(4 * c)                        # scratch line: 128 * colsum(V_h) for one N tile
        lc, li = hw.acc_lines - 1, hw.input_lines - 1
        seg = self._segment()
        prog, first = seg.program, len(seg.program)
        for bi in range(b):
            for hi in range(h):
                bh = bi * h + hi
                for n0 in range(0, d, c):
                    col = hi * d + n0
                    prog.append(Load(Buffer.PARAM, 0, 1, p_addr + col * 8, 0))
                    prog.append(Load(Buffer.WEIGHT, 0, s_r, vt.addr + bi * s * vt.cp + col, vt.cp))
                    # P @ V = (P - 128) @ V + 128 * colsum(V): the correction line, on the array
                    for kt in range(s_r // r):
                        prog.append(Load(Buffer.INPUT, li, 1, ones_addr + kt * r, 0))
                        prog.append(Matmul(li, kt * r, lc, 1, accumulate=kt > 0, load_weights=True))
                        prog.append(Matmul(li, kt * r, lc, 1, accumulate=True, load_weights=False))
                    prog.append(Store(Buffer.ACC, lc, 1, corr, 0))
                    for m0 in range(0, s, tm):
                        mt = min(tm, s - m0)
                        prog.append(Load(Buffer.ACC, 0, mt, corr, 0))
                        for kt in range(s_r // r):
                            prog.append(Load(Buffer.INPUT, 0, mt, pt.addr + (bh * s + m0) * pt.cp + kt * r, pt.cp))
                            prog.append(Matmul(0, kt * r, 0, mt, accumulate=True, load_weights=True))
                        prog.append(Requant(0, 0, mt))
                        prog.append(Store(Buffer.VECTOR, 0, mt, yt.addr + (bi * s + m0) * yt.cp + col, yt.cp))
        seg.phases.append(Phase(n.name + "/pv", "qattention.pv", b * h * s * s * d, first, len(prog) - first))
        self._produced(out, yt)


def lower(g: Graph, hw: HardwareParams) -> Plan:
    """Quantized graph -> :class:`Plan` (raises HardwareError naming the node for what the hardware lacks)."""
    return _Lowerer(g, hw).lower()


def plan_cycles(plan: Plan) -> dict:
    """Predicted cycles per segment (sum of its chunks' schedules, HALTs included), busy cycles by opcode
    (units overlap, so these do not add up to the total) and per phase (the advance of the completion
    frontier over the phase's instructions)."""
    hw = plan.hw
    segs = []
    for seg in plan.segments:
        chunks = seg.chunks(hw.imem_depth)
        cyc = 0
        by_op: dict[str, int] = {}
        done: list[int] = []                   # per program instruction, on the segment's time line
        for ch in chunks:
            sch = schedule(hw, ch)
            for i, b in zip(ch, sch.busy):
                by_op[i.opcode.name] = by_op.get(i.opcode.name, 0) + b
            done += [cyc + t for t in sch.done[:-1]]
            cyc += sch.cycles
        phases = []
        front = 0
        for k, p in enumerate(seg.phases):
            end = max([front, *done[p.first: p.first + p.count]])
            if k == len(seg.phases) - 1:
                end = cyc
            pc = end - front
            front = end
            phases.append({**p.to_json(), "cycles": pc,
                           "mac_utilization": p.macs / (hw.rows * hw.cols * pc) if pc else 0.0})
        segs.append({"index": seg.index, "cycles": cyc, "chunks": len(chunks), "instructions": len(seg.program),
                     "cycles_by_opcode": dict(sorted(by_op.items())), "macs": seg.macs,
                     "mac_utilization": seg.macs / (hw.rows * hw.cols * cyc) if cyc else 0.0, "phases": phases})
    return {"segments": segs, "total_cycles": sum(s["cycles"] for s in segs)}
