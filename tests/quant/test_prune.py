"""Pruning passes: exact sparsity patterns, sparsity records on the weight types, head removal equivalence."""

from __future__ import annotations

import numpy as np
import pytest

from hwcomp.errors import PassError
from hwcomp.interp import run
from hwcomp.ir import verify
from hwcomp.passes import PassContext, run_pipeline


def _dense_weights(g):
    return [(n, g.constants[n.inputs[1]], g.types[n.inputs[1]]) for n in g.nodes if n.op == "dense"]


def test_two_four_sparsity_has_exactly_two_zeros_in_every_group_of_four(bert_tiny):
    _, g, _, ev = bert_tiny
    p = run_pipeline(g, ["prune_n_m"], PassContext(verify_each=True))
    for n, w, t in _dense_weights(p):
        groups = (w.reshape(w.shape[0] // 4, 4, w.shape[1]) == 0).sum(axis=1)
        assert np.all(groups == 2), n.name
        assert t.sparsity == {"kind": "n:m", "n": 2, "m": 4, "axis": 0, "ratio": 0.5}
    run(p, ev[0])


def test_two_four_keeps_the_two_largest_magnitudes():
    from hwcomp.passes.prune import n_m_mask

    w = np.array([[1.0], [-4.0], [3.0], [0.5]])
    assert n_m_mask(w, 2, 4)[:, 0].tolist() == [False, True, True, False]


def test_magnitude_pruning_hits_the_target_and_zeroes_the_smallest(bert_tiny):
    _, g, _, _ = bert_tiny
    p = run_pipeline(g, ["prune_magnitude"], PassContext({"sparsity": 0.7}))
    for (n0, w0, _), (n, w, t) in zip(_dense_weights(g), _dense_weights(p)):
        assert t.sparsity["kind"] == "unstructured" and abs(t.sparsity["ratio"] - 0.7) < 1e-3
        assert np.abs(w0[w == 0]).max() <= np.abs(w0[w != 0]).min()


def test_head_pruning_equals_zeroing_the_heads(bert_tiny):
    _, g, _, ev = bert_tiny
    att = next(n for n in g.nodes if n.op == "attention")
    p = run_pipeline(g, ["prune_heads"], PassContext({"heads": {att.name: [1]}}, verify_each=True))
    pa = next(n for n in p.nodes if n.name == att.name)
    assert pa.attrs["num_heads"] == att.attrs["num_heads"] - 1
    # reference: the same model with head 1's V columns zeroed (its output contribution vanishes)
    z = g.copy()
    prod = z.producers()
    v = prod[att.inputs[2]]
    d = z.types[att.inputs[0]].shape[-1] // att.attrs["num_heads"]
    wv = z.constants[v.inputs[1]].copy()
    wv[:, d:2 * d] = 0
    bv = z.constants[v.inputs[2]].copy()
    bv[d:2 * d] = 0
    z.constants[v.inputs[1]], z.constants[v.inputs[2]] = wv, bv
    a, b = run(p, ev[0]), run(z, ev[0])
    assert np.allclose(a["last_hidden_state"], b["last_hidden_state"], atol=1e-4)


def test_head_pruning_by_importance_and_errors(bert_tiny):
    _, g, _, _ = bert_tiny
    p = run_pipeline(g, ["prune_heads"], PassContext({"head_fraction": 0.5}))
    verify(p)
    assert all(n.attrs["num_heads"] == 1 for n in p.nodes if n.op == "attention")
    att = next(n for n in g.nodes if n.op == "attention")
    with pytest.raises(PassError, match="leaves none"):
        run_pipeline(g, ["prune_heads"], PassContext({"heads": {att.name: [0, 1]}}))
    with pytest.raises(PassError, match="sparsity 1.5"):
        run_pipeline(g, ["prune_magnitude"], PassContext({"sparsity": 1.5}))
