"""ONNX export (legacy TorchScript exporter or the dynamo exporter) + validation in onnxruntime."""
from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np

from . import _cache, _data, _models

DEFAULT_OPSET = {"legacy": 17, "dynamo": 18}
DYN_EXAMPLE = (2, 16)  # example (batch, seq) traced for dynamic exports; >1 so nothing specialises
DYN_CHECK = (3, 11)  # a second shape run through ORT to prove the axes really are dynamic


class ZooExportError(RuntimeError):
    pass


def output_axes(out_name: str) -> dict[int, str]:
    return {0: "batch"} if out_name == "sentence_embedding" else {0: "batch", 1: "seq"}


def _to_torch(d: dict):
    import torch

    return tuple(torch.from_numpy(v) for v in d.values())


def torch_forward(module, inputs: dict) -> list[np.ndarray]:
    import torch

    with torch.inference_mode():
        out = module(*_to_torch(inputs))
    out = out if isinstance(out, tuple) else (out,)
    return [o.detach().numpy() for o in out]


def ort_session(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _short(msg: str, n: int = 300) -> str:
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= n else msg[:n] + "..."


def _padded(x: dict) -> dict:
    """Make sure the example has at least one padded position, so no tracer can specialise the
    attention mask away (transformers drops an all-ones mask for SDPA when it is not tracing)."""
    m = x["attention_mask"]
    if m.shape[1] > 1 and m.all():
        m = m.copy()
        m[-1, -1] = 0
        x = dict(x, attention_mask=m)
    return x


def _unpadded(x: dict) -> dict:
    return dict(x, attention_mask=np.ones_like(x["attention_mask"]))


def _fix_names(path: Path, in_names, out_names, out_last_dims) -> None:
    """Make sure graph I/O carry the expected names (the dynamo exporter takes them from the
    forward signature; rename defensively) and that there is no external data."""
    import onnx

    m = onnx.load(str(path), load_external_data=True)
    changed = False
    for vi, want in list(zip(m.graph.input, in_names)) + list(zip(m.graph.output, out_names)):
        if vi.name != want:
            old = vi.name
            for node in m.graph.node:
                node.input[:] = [want if x == old else x for x in node.input]
                node.output[:] = [want if x == old else x for x in node.output]
            vi.name = want
            changed = True
    for vi, last in zip(m.graph.output, out_last_dims):
        dims = vi.type.tensor_type.shape.dim
        if dims and not dims[-1].dim_value:  # legacy exporter leaves e.g. 'Reshapelast_hidden_state_dim_2'
            dims[-1].ClearField("dim_param")
            dims[-1].dim_value = int(last)
            changed = True
    ext = any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    if changed or ext:
        onnx.save_model(m, str(path), save_as_external_data=False)
    data = Path(str(path) + ".data")
    if data.exists():
        data.unlink()


def export(name: str, exporter: str, attn: str, cfg: dict, *, static: bool, batch: int, seq: int,
           opset: int | None, force: bool = False, validate: bool = True) -> Path:
    spec = _models.SPECS[name]
    if exporter not in DEFAULT_OPSET:
        raise ValueError(f"exporter must be 'legacy' or 'dynamo', got {exporter!r}")
    opset = opset or DEFAULT_OPSET[exporter]
    if exporter == "dynamo" and opset < 18:
        raise ValueError("the dynamo exporter needs opset >= 18")
    params = dict(name=name, family=spec.family, exporter=exporter, attn=attn, cfg=cfg, static=static,
                  opset=opset, shape=[batch, seq] if static else None)
    key = _cache.cache_key(params)
    tag = f"b{batch}s{seq}" if static else "dyn"
    final = _cache.cache_dir() / f"{name}-{exporter}-{attn}-{tag}-op{opset}-{key}.onnx"
    if final.exists() and not force:
        return final

    import torch

    module, in_names, out_names = _models.build_torch_model(spec.family, cfg, attn)
    module.eval()
    eb, es = (batch, seq) if static else DYN_EXAMPLE
    example = _padded(_data.random_inputs(spec.family, cfg, in_names, eb, es, seed=1234))
    args = _to_torch(example)
    tmp = _cache.tmp_path_near(final, ".onnx")
    caught: list[str] = []
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        with warnings.catch_warnings(record=True) as wlist:
            warnings.simplefilter("always")
            if exporter == "legacy":
                dyn = None if static else {
                    **{n: {0: "batch", 1: "seq"} for n in in_names},
                    **{n: output_axes(n) for n in out_names},
                }
                torch.onnx.export(module, args, str(tmp), dynamo=False, opset_version=opset,
                                  input_names=in_names, output_names=out_names, dynamic_axes=dyn,
                                  do_constant_folding=True)
            else:
                dshapes = None
                if not static:
                    from torch.export import Dim

                    b = Dim("batch", min=1, max=4096)
                    s = Dim("seq", min=1, max=int(cfg["max_positions"]))
                    dshapes = tuple({0: b, 1: s} for _ in in_names)
                prog = torch.onnx.export(module, args, dynamo=True, opset_version=opset,
                                         input_names=in_names, output_names=out_names,
                                         dynamic_shapes=dshapes, optimize=True, external_data=False, verbose=False,
                                         report=False, verify=False)
                prog.save(str(tmp), external_data=False)
        export_s, export_cpu = time.perf_counter() - t0, time.process_time() - c0
        seen = set()
        for w in wlist:
            where = "/".join(Path(w.filename).parts[-2:])
            m = f"{w.category.__name__}: {_short(w.message, 160)} [{where}:{w.lineno}]"
            if m not in seen:
                seen.add(m)
                caught.append(m)
        last = [cfg["vocab_size"] if n == "logits" else cfg["hidden"] for n in out_names]
        _fix_names(tmp, in_names, out_names, last)

        checks = {}
        if validate:
            sess = ort_session(tmp)
            got_in = [i.name for i in sess.get_inputs()]
            got_out = [o.name for o in sess.get_outputs()]
            if got_in != in_names or got_out != out_names:
                raise ZooExportError(f"{name}: graph I/O {got_in}->{got_out}, expected {in_names}->{out_names}")
            feeds = [("padded", _padded(_data.random_inputs(spec.family, cfg, in_names, eb, es, seed=7))),
                     ("full", _unpadded(_data.random_inputs(spec.family, cfg, in_names, eb, es, seed=8)))]
            if not static:
                feeds.append(("padded", _data.random_inputs(spec.family, cfg, in_names, *DYN_CHECK, seed=9)))
                feeds.append(("full", _data.random_inputs(spec.family, cfg, in_names, 1, 7, seed=10)))
            for kind, x in feeds:
                b_, s_ = x["input_ids"].shape
                ref = torch_forward(module, x)
                got = sess.run(None, x)
                for n, r, g in zip(out_names, ref, got):
                    if r.shape != g.shape or not np.isfinite(g).all():
                        raise ZooExportError(f"{name}/{n}: ORT shape {g.shape} vs torch {r.shape} "
                                             f"(finite={np.isfinite(g).all()})")
                    err = float(np.abs(r - g).max())
                    scale = float(np.abs(r).max()) or 1.0
                    checks[f"{n}@{b_}x{s_}/{kind}"] = {"max_abs_err": err, "ref_max_abs": scale}
                    if err > 1e-3 * max(1.0, scale):
                        raise ZooExportError(f"{name}/{n}@{b_}x{s_}: ORT vs torch max err {err:g} "
                                             f"(scale {scale:g})")
        import onnx

        g = onnx.load(str(tmp), load_external_data=False).graph
        hist: dict[str, int] = {}
        for node in g.node:
            k = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
            hist[k] = hist.get(k, 0) + 1
        meta = dict(params, key=key, file=final.name, inputs=in_names, outputs=out_names,
                    export_seconds=round(export_s, 2), export_cpu_seconds=round(export_cpu, 2), warnings=caught, ort_checks=checks,
                    nodes=len(g.node), op_histogram=dict(sorted(hist.items())),
                    bytes=tmp.stat().st_size, versions={p: _cache._pkg_version(p) for p in
                                                        ("torch", "transformers", "onnx", "onnxscript")})
        _cache.atomic_write_text(final.with_suffix(".json"), json.dumps(meta, indent=1, default=str))
        os.replace(tmp, final)
    finally:
        for p in (tmp, Path(str(tmp) + ".data")):
            if p.exists():
                p.unlink()
    return final
