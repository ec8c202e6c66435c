"""QDQ ONNX export of a quantized hwcomp graph.

The float ONNX model the graph came from is patched in place, MatMul by MatMul, so every other node
(embeddings, attention with its float mask arithmetic, layer norms, pooling) is the original:

- ``qdense`` (static int8): the activation input A becomes ``DequantizeLinear(QuantizeLinear(A, s*c, zp),
  s, zp)`` (c: the per-channel smoothing vector, absent without smoothing) and the weight initializer
  becomes ``DequantizeLinear(Wq int8 [K, N], w_scale [N], axis=1)`` (Wq already multiplied by c); a bias
  ``Add`` right after the MatMul gets hwcomp's int32 bias, dequantized (``bias_q * s * w_scale``), so
  ONNX Runtime computes the same real numbers hwcomp's integer pipeline does up to float rounding.
- ``wdense`` (weight-only): ``DequantizeLinear(codes, scale, zero, axis=0, block_size=group)`` with
  UINT4/UINT8 codes (blocked DequantizeLinear needs opset 21: the model is converted with
  ``onnx.version_converter`` when it is older); when the wdense reads an AWQ-scaled value (an IR ``Mul``
  with attr ``awq``), the same ``Mul`` by 1 / s is inserted before the MatMul, once per activation.

The I-BERT integer ops (``qattention``, ``int_gelu``, ``int_layer_norm``) have no QDQ equivalent;
exporting a graph that contains them raises QuantizationError.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError, QuantizationError
from ..ir.graph import Graph

log = logging.getLogger(__name__)

_NO_QDQ = ("qattention", "int_gelu", "int_layer_norm", "int_softmax")


def export_qdq(model, q: Graph, out_path: str | Path | None = None):
    """Patch the float ONNX ``model`` (ModelProto or path) with the quantization of ``q``; returns the
    ModelProto (and saves it to ``out_path`` when given)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if not isinstance(model, onnx.ModelProto):
        from ..frontend.onnx import load_model_proto
        model = load_model_proto(model)
    else:
        model = onnx.ModelProto.FromString(model.SerializeToString())
    bad = sorted({n.op for n in q.nodes if n.op in _NO_QDQ})
    if bad:
        raise QuantizationError(f"QDQ export cannot express the integer ops {bad}: export a graph quantized "
                                "without integer_nonlinear (the interpreter and backends run them)")
    qnodes = [n for n in q.nodes if n.op in ("qdense", "wdense")]
    if any(n.op == "wdense" for n in qnodes):
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
        if opset < 21:
            from onnx import version_converter
            try:
                model = version_converter.convert_version(model, 21)
            except Exception as e:  # the converter's own failures
                raise QuantizationError(f"weight-only export needs opset 21 (blocked DequantizeLinear) and the "
                                        f"opset {opset} model could not be converted: {e}") from None
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    by_name = {n.attrs.get("weight_name"): n for n in qnodes if n.attrs.get("weight_name")}
    consumers: dict[str, list] = {}
    for node in g.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)

    new_nodes, new_inits, done = [], [], set()
    qcache: dict[str, str] = {}
    producers = q.producers()
    scaled: dict[str, str] = {}  # ONNX activation -> its AWQ-scaled copy

    def const(name: str, arr: np.ndarray, dtype: int | None = None) -> str:
        name = f"{name}"
        if dtype is None:
            t = numpy_helper.from_array(np.asarray(arr), name)
        else:
            t = helper.make_tensor(name, dtype, np.shape(arr), np.asarray(arr).ravel().tolist())
        new_inits.append(t)
        return name

    for node in list(g.node):
        if node.op_type != "MatMul" or node.input[1] not in inits:
            new_nodes.append(node)
            continue
        wname = node.input[1]
        qn = by_name.get(wname)
        if qn is None:
            new_nodes.append(node)
            continue
        base = wname.replace(":", "_")
        a = node.input[0]
        if qn.op == "qdense":
            sx = float(qn.attrs["x_scale"])
            zx = int(qn.attrs["x_zero_point"])
            smooth = qn.attrs.get("smooth")
            key = (a, sx, zx)
            if key not in qcache:
                qs = np.float32(sx) if smooth is None else (np.float32(sx) * np.asarray(smooth, np.float32)).astype(np.float32)
                zq = np.int8(zx) if smooth is None else np.full(qs.shape, zx, np.int8)
                qa = f"{a}_quantized_{len(qcache)}"
                qattrs = {} if smooth is None else {"axis": -1}
                new_nodes.append(helper.make_node("QuantizeLinear", [a, const(qa + "_scale", qs), const(qa + "_zp", zq)],
                                                  [qa], name=qa + "_Q", **qattrs))
                da = qa + "_dq"
                new_nodes.append(helper.make_node("DequantizeLinear", [qa, const(qa + "_dscale", np.float32(sx)),
                                                                       const(qa + "_dzp", np.int8(zx))], [da], name=da))
                qcache[key] = da
            wq = q.constants[qn.inputs[1]]
            sw = np.asarray(qn.attrs["w_scale"], np.float32)
            wdq = base + "_dq"
            new_nodes.append(helper.make_node("DequantizeLinear", [const(base + "_int8", wq.astype(np.int8)),
                                                                   const(base + "_wscale", sw)], [wdq], name=wdq, axis=1))
            new_nodes.append(helper.make_node("MatMul", [qcache[key], wdq], list(node.output), name=node.name))
            # hwcomp's int32 bias, dequantized, into the bias Add that follows (when it is private to it)
            if qn.input(2):
                users = consumers.get(node.output[0], [])
                if len(users) == 1 and users[0].op_type == "Add":
                    add = users[0]
                    bi = [i for i in add.input if i != node.output[0] and i in inits]
                    if bi and len(consumers.get(bi[0], [])) == 1:
                        bq = q.constants[qn.inputs[2]].astype(np.float64)
                        bdq = (bq * np.asarray(qn.attrs["acc_scale"], np.float64)).astype(np.float32)
                        inits[bi[0]].CopyFrom(numpy_helper.from_array(bdq, bi[0]))
        else:  # wdense
            codes = q.constants[qn.inputs[1]]
            scale = q.constants[qn.inputs[2]].astype(np.float32)
            zero = q.constants[qn.inputs[3]]
            bits, group = int(qn.attrs["bits"]), int(qn.attrs["group_size"])
            dt = TensorProto.UINT4 if bits <= 4 else TensorProto.UINT8
            wdq = base + "_dq"
            new_nodes.append(helper.make_node(
                "DequantizeLinear", [const(base + f"_u{bits}", codes.astype(np.int64), dt), const(base + "_gscale", scale),
                                     const(base + "_gzero", zero.astype(np.int64), dt)], [wdq], name=wdq,
                axis=0, block_size=group))
            awq_mul = producers.get(qn.inputs[0])
            if awq_mul is not None and awq_mul.op == "Mul" and awq_mul.attr("awq"):  # x * (1 / s), shared
                if a not in scaled:
                    scaled[a] = f"{a}_awq_scaled"
                    inv = const(f"{a}_awq_inv_scale", q.constants[awq_mul.inputs[1]].astype(np.float32))
                    new_nodes.append(helper.make_node("Mul", [a, inv], [scaled[a]], name=scaled[a]))
                a = scaled[a]
            new_nodes.append(helper.make_node("MatMul", [a, wdq], list(node.output), name=node.name))
        done.add(wname)
    missing = [n.name for n in qnodes if n.attrs.get("weight_name") not in done]
    if missing:
        log.warning("%d quantized layers had no matching ONNX MatMul (e.g. %s); they stay float in the export",
                    len(qnodes) - len(done), missing[:3])
    del g.node[:]
    g.node.extend(new_nodes)
    g.initializer.extend(new_inits)
    keep = {i for n in g.node for i in n.input}
    kept = [t for t in g.initializer if t.name in keep]
    del g.initializer[:]
    g.initializer.extend(kept)
    model.producer_name = "hwcomp"
    if out_path is not None:
        out_path = Path(out_path)
        if not out_path.parent.exists():
            raise ModelLoadError(f"{out_path}: directory {out_path.parent} does not exist")
        if model.ByteSize() > 1_800_000_000:
            onnx.save(model, str(out_path), save_as_external_data=True, location=out_path.name + ".data")
        else:
            onnx.save(model, str(out_path))
    return model
