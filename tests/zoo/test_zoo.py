"""Tests for hwcomp.zoo: exports load in onnxruntime and match torch; MiniLM embeddings behave."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hwcomp import zoo  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _torch_out(name, attn, feeds, **kw):
    import torch

    mod, ins, _ = zoo.build_torch(name, attn=attn, **kw)
    with torch.inference_mode():
        out = mod(*[torch.from_numpy(feeds[n]) for n in ins])
    out = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in out]


def _assert_close(ref, got, rel=1e-4):
    scale = max(1.0, float(np.abs(ref).max()))
    assert ref.shape == got.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=rel * scale)


def _dims(vi):
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


# --------------------------------------------------------------------------------------- cheap
def test_import_does_not_import_torch():
    code = "import sys, hwcomp.zoo as z; z.MODELS; z.sample_inputs('bert-tiny', 2, 8); " \
           "z.tokenize(['hi'], 8); z.eval_sentences(); " \
           "assert not {'torch', 'transformers'} & set(sys.modules), 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_registry_and_names():
    assert set(zoo.MODELS) >= {"bert-tiny", "bert-small", "bert-base", "gpt2-tiny", "gpt2-small", "minilm-l6"}
    assert zoo.DEFAULT_MODEL == ("minilm-l6", "legacy", "eager")
    assert zoo.config("bert-small")["hidden"] == 256 and zoo.config("bert-base")["layers"] == 12
    assert zoo.config("gpt2-small")["hidden"] == 768
    assert zoo.input_names("bert-tiny") == ["input_ids", "attention_mask"]
    assert zoo.input_names("bert-tiny", token_type_ids=True)[-1] == "token_type_ids"
    assert zoo.output_names("gpt2-tiny") == ["last_hidden_state"]
    assert zoo.output_names("gpt2-tiny", lm_head=True) == ["logits"]
    assert zoo.output_names("minilm-l6") == ["sentence_embedding"]
    with pytest.raises(TypeError):
        zoo.config("bert-tiny", nonsense=1)
    with pytest.raises(TypeError):
        zoo.config("minilm-l6", layers=2)
    with pytest.raises(KeyError):
        zoo.get("no-such-model")


def test_sentences_split():
    recs = zoo.load_sentences()
    assert len(recs) >= 120
    assert len({r.topic for r in recs}) >= 6
    cal, ev = zoo.calibration_sentences(), zoo.eval_sentences()
    assert len(cal) + len(ev) == len(recs) and not set(cal) & set(ev)
    assert cal == zoo.calibration_sentences() and len(ev) >= 24
    pairs = zoo.eval_pairs()
    assert len(pairs) >= 12 and len({t for _, _, t in pairs}) >= 6


def test_sample_inputs():
    for name in ("bert-tiny", "gpt2-tiny", "minilm-l6"):
        x = zoo.sample_inputs(name, batch=4, seq=32, seed=3)
        assert list(x) == zoo.input_names(name)
        ids, m = x["input_ids"], x["attention_mask"]
        assert ids.dtype == np.int64 and m.dtype == np.int64 and ids.shape == m.shape == (4, 32)
        assert ids.min() >= 0 and ids.max() < zoo.config(name)["vocab_size"]
        assert m[0].all() and (m[1:].sum(1) < 32).all() and (m[1:].sum(1) >= 16).all()
        np.testing.assert_array_equal(ids, zoo.sample_inputs(name, batch=4, seq=32, seed=3)["input_ids"])
    cal = zoo.calibration_inputs("gpt2-tiny", n=3, seq=16, batch=2)
    assert len(cal) == 3 and cal[0]["input_ids"].shape == (2, 16)


def test_tokenize():
    t = zoo.tokenize(["Hello world", "The cat sat on the mat."], 12)
    assert t["input_ids"].dtype == np.int64 and t["input_ids"].shape == (2, 12)
    assert t["input_ids"][0, :4].tolist() == [101, 7592, 2088, 102] and t["attention_mask"][0].sum() == 4
    long = zoo.tokenize(["word " * 50], 8)
    assert long["attention_mask"].all() and long["input_ids"][0, -1] == 102  # truncated, [SEP] kept
    cal = zoo.calibration_inputs("minilm-l6", n=2, seq=32, batch=4)
    assert len(cal) == 2 and cal[1]["input_ids"].shape == (4, 32)


# --------------------------------------------------------------------------- export vs torch
GRID = [(n, e, a) for n in ("bert-tiny", "gpt2-tiny") for e in ("legacy", "dynamo") for a in ("eager", "sdpa")]
# a dynamo export costs ~10 s of CPU: keep one GPT-2 dynamo case in the fast tier
SLOW_GRID = {("gpt2-tiny", "dynamo", "eager")}


@pytest.mark.parametrize("name,exporter,attn", [
    pytest.param(*c, marks=[pytest.mark.slow] if c in SLOW_GRID else []) for c in GRID])
def test_export_matches_torch(name, exporter, attn):
    import onnx

    path = zoo.get(name, exporter=exporter, attn=attn)
    assert path.suffix == ".onnx" and path.exists() and not Path(str(path) + ".data").exists()
    g = onnx.load(str(path)).graph
    assert [i.name for i in g.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in g.output] == ["last_hidden_state"]
    assert _dims(g.input[0]) == ["batch", "seq"] and _dims(g.output[0]) == ["batch", "seq", 128]
    assert zoo.info(path)["exporter"] == exporter
    for batch, seq, seed in [(2, 24, 0), (1, 9, 1)]:
        feeds = zoo.sample_inputs(name, batch, seq, seed)
        if batch == 1:
            feeds["attention_mask"][0, -3:] = 0  # padding in a single row too
        got = zoo.ort_run(path, feeds)
        ref = _torch_out(name, attn, feeds)
        _assert_close(ref[0], got[0])


def test_static_export_and_cache(zoo_cache):
    import onnx

    p = zoo.get("bert-tiny", exporter="legacy", attn="eager", static=True, batch=2, seq=16)
    assert _dims(onnx.load(str(p)).graph.input[0]) == [2, 16]
    p_dyn = zoo.get("bert-tiny", exporter="legacy", attn="eager")
    assert p != p_dyn
    assert zoo.get("bert-tiny", exporter="legacy", attn="eager", static=True, batch=2, seq=16) == p
    assert zoo.get("bert-tiny", exporter="legacy", attn="eager", seed=1) != p_dyn  # keyed by params
    feeds = zoo.sample_inputs("bert-tiny", 2, 16, 5)
    _assert_close(_torch_out("bert-tiny", "eager", feeds)[0], zoo.ort_run(p, feeds)[0])
    assert not list(Path(zoo.cache_dir()).glob(".tmp-*"))


def test_failed_export_leaves_nothing(monkeypatch, tmp_path):
    from hwcomp.zoo import _export

    monkeypatch.setenv("HWCOMP_CACHE", str(tmp_path))

    def boom(path):
        raise RuntimeError("killed")

    monkeypatch.setattr(_export, "ort_session", boom)
    with pytest.raises(RuntimeError, match="killed"):
        zoo.get("bert-tiny", exporter="legacy", attn="sdpa")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------ MiniLM
@pytest.fixture(scope="module")
def minilm_path():
    return zoo.default_model()


def test_minilm_matches_torch_and_unit_norm(minilm_path):
    import onnx

    g = onnx.load(str(minilm_path)).graph
    assert [o.name for o in g.output] == ["sentence_embedding"] and _dims(g.output[0]) == ["batch", 384]
    feeds = zoo.tokenize(zoo.eval_sentences()[:8], 32)
    got = zoo.ort_run(minilm_path, feeds)[0]
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    _assert_close(_torch_out("minilm-l6", "eager", feeds)[0], got)


def test_minilm_paraphrases_closer(minilm_path):
    recs = zoo.eval_records()
    emb = zoo.ort_run(minilm_path, zoo.tokenize([r.text for r in recs], 48))[0]
    sim = emb @ emb.T
    grp = np.array([r.group for r in recs])
    top = np.array([r.topic for r in recs])
    off = ~np.eye(len(recs), dtype=bool)
    para = sim[(grp[:, None] == grp[None, :]) & off]
    cross = sim[top[:, None] != top[None, :]]
    assert para.mean() > cross.mean() + 0.4
    # every sentence's paraphrase beats every cross-topic sentence
    for i in range(len(recs)):
        assert sim[i][(grp == grp[i]) & off[i]].min() > sim[i][top != top[i]].max()
    np.fill_diagonal(sim, -1)
    assert np.mean(grp[sim.argmax(1)] == grp) >= 0.9


@pytest.mark.slow
def test_minilm_dynamo_sdpa_matches_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from hwcomp.zoo._models import minilm_dir

    sents = zoo.eval_sentences()[:16]
    p = zoo.get("minilm-l6", exporter="dynamo", attn="sdpa", with_hidden=True)
    got = zoo.ort_run(p, zoo.tokenize(sents, 64))
    assert got[1].shape == (16, 64, 384)
    ref = SentenceTransformer(str(minilm_dir()), device="cpu").encode(sents, normalize_embeddings=True)
    np.testing.assert_allclose(got[0], ref, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_variants(exporter):
    cases = [("gpt2-tiny", "sdpa", dict(lm_head=True)), ("bert-tiny", "eager", dict(token_type_ids=True)),
             ("bert-small", "sdpa", {})]
    for name, attn, kw in cases:
        p = zoo.get(name, exporter=exporter, attn=attn, **kw)
        feeds = zoo.sample_inputs(name, 2, 20, 0, **kw)
        _assert_close(_torch_out(name, attn, feeds, **kw)[0], zoo.ort_run(p, feeds)[0])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bert-base", "gpt2-small"])
def test_base_models(name):
    for exporter in ("legacy", "dynamo"):
        p = zoo.get(name, exporter=exporter, attn="eager")
        feeds = zoo.sample_inputs(name, 2, 32, 0)
        _assert_close(_torch_out(name, "eager", feeds)[0], zoo.ort_run(p, feeds)[0])
