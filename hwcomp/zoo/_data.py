"""Text data, tokenizer and input generators (numpy only; no torch)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SENTENCES_FILE = DATA_DIR / "sentences.txt"

EVAL_EVERY = 3  # within each topic, paraphrase group k goes to eval when k % EVAL_EVERY == EVAL_EVERY - 1


@dataclass(frozen=True)
class Sentence:
    text: str
    topic: str
    group: int  # global paraphrase-group id: sentences with the same group are near-paraphrases
    split: str  # "calib" | "eval"


@functools.lru_cache(maxsize=None)
def load_sentences(path: str | None = None) -> tuple[Sentence, ...]:
    """Parse ``sentences.txt``: ``# topic: NAME`` starts a topic; consecutive non-blank lines form a
    paraphrase group; a blank line ends a group. Other ``#`` lines are comments."""
    p = Path(path) if path else SENTENCES_FILE
    out: list[Sentence] = []
    topic, gid, k_in_topic, cur = None, -1, -1, []

    def flush():
        nonlocal gid, k_in_topic, cur
        if cur:
            if topic is None:
                raise ValueError(f"{p}: sentence before any '# topic:' header")
            gid += 1
            k_in_topic += 1
            split = "eval" if k_in_topic % EVAL_EVERY == EVAL_EVERY - 1 else "calib"
            out.extend(Sentence(t, topic, gid, split) for t in cur)
            cur = []

    for raw in p.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.lower().startswith("# topic:"):
            flush()
            topic, k_in_topic = line.split(":", 1)[1].strip(), -1
        elif line.startswith("#"):
            continue
        elif not line:
            flush()
        else:
            cur.append(line)
    flush()
    return tuple(out)


def calibration_sentences() -> list[str]:
    return [s.text for s in load_sentences() if s.split == "calib"]


def eval_sentences() -> list[str]:
    return [s.text for s in load_sentences() if s.split == "eval"]


def eval_records() -> list[Sentence]:
    return [s for s in load_sentences() if s.split == "eval"]


def eval_pairs() -> list[tuple[str, str, str]]:
    """Paraphrase pairs ``(a, b, topic)`` from the eval split (first two sentences of each group)."""
    groups: dict[int, list[Sentence]] = {}
    for s in eval_records():
        groups.setdefault(s.group, []).append(s)
    return [(g[0].text, g[1].text, g[0].topic) for g in groups.values() if len(g) >= 2]


# ---------------------------------------------------------------------------------------- tokenizer
@functools.lru_cache(maxsize=None)
def _tokenizer():
    from tokenizers import Tokenizer

    from ._models import minilm_dir

    return Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))


def tokenizer_path() -> Path:
    from ._models import minilm_dir

    return minilm_dir() / "tokenizer.json"


def tokenize(sentences, seq_len: int = 128) -> dict[str, np.ndarray]:
    """MiniLM (BERT uncased WordPiece) tokenisation: ``[CLS] ... [SEP]`` then ``[PAD]`` (id 0) up to
    ``seq_len``; longer sentences are truncated (keeping ``[SEP]``). Returns int64 ``input_ids`` and
    ``attention_mask`` of shape ``[len(sentences), seq_len]``."""
    if isinstance(sentences, str):
        sentences = [sentences]
    tok = _tokenizer()
    # tokenizer.json ships with padding/truncation to 128 enabled: do our own, per call.
    tok.no_padding()
    tok.enable_truncation(max_length=seq_len)  # truncation keeps [CLS] ... [SEP]
    ids = np.zeros((len(sentences), seq_len), np.int64)
    mask = np.zeros((len(sentences), seq_len), np.int64)
    for i, e in enumerate(tok.encode_batch(list(sentences))):
        n = len(e.ids)
        ids[i, :n] = e.ids
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask}


# ------------------------------------------------------------------------------------ random inputs
def random_inputs(family: str, cfg: dict, input_names: list[str], batch: int, seq: int, seed: int):
    """Random int64 ids within the vocabulary; row 0 is unpadded, rows >= 1 are right-padded to a
    random length in ``[ceil(seq/2), seq-1]`` (when seq > 1)."""
    rng = np.random.default_rng(seed)
    vocab = int(cfg["vocab_size"])
    lengths = np.full(batch, seq, np.int64)
    if seq > 1 and batch > 1:
        lengths[1:] = rng.integers((seq + 1) // 2, seq, size=batch - 1)
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int64)
    if family in ("bert", "minilm"):
        lo = 999 if vocab > 2000 else 1  # skip [PAD]/[unused*]/[UNK]/[CLS]/[SEP]/[MASK] in the BERT vocab
        ids = rng.integers(lo, vocab, size=(batch, seq), dtype=np.int64)
        if vocab > 2000 and seq >= 2:
            ids[:, 0] = 101  # [CLS]
            ids[np.arange(batch), lengths - 1] = 102  # [SEP]
        pad = 0
    else:  # gpt2
        ids = rng.integers(0, vocab - 1, size=(batch, seq), dtype=np.int64)
        pad = vocab - 1  # <|endoftext|>
    ids = np.where(mask == 1, ids, pad).astype(np.int64)
    out = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names:
        out["token_type_ids"] = np.zeros((batch, seq), np.int64)
    return {k: out[k] for k in input_names}
