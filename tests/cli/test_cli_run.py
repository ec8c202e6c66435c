"""`hwcomp run` / `hwcomp inspect` on real files: outputs keyed by graph output names, checked with numpy."""

import numpy as np

from hwcomp import zoo


def test_run_writes_outputs_keyed_by_name(cli, mlp_model, tmp_path):
    path, w, b = mlp_model
    x = np.random.default_rng(3).standard_normal((5, 8)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    res = cli("run", path, "--inputs", tmp_path / "in.npz", "--output", tmp_path / "out.npz")
    assert res.code == 0, res.err
    out = np.load(tmp_path / "out.npz")
    assert list(out.files) == ["y"]
    np.testing.assert_allclose(out["y"], np.maximum(x @ w + b, 0), rtol=1e-6, atol=1e-6)


def test_inspect_reports_histogram_params_and_macs(cli, mlp_model):
    path, _, _ = mlp_model
    res = cli("inspect", path, "--shape", "x=2x8")
    assert res.code == 0, res.err
    assert "MatMul" in res.out and "Relu" in res.out
    assert "parameters: 36" in res.out  # 8*4 weights + 4 bias
    assert "64" in res.out  # 2*8*4 MACs


def test_inspect_ir_after_fusion_shows_dense(cli, mlp_model):
    path, _, _ = mlp_model
    res = cli("inspect", path, "--shape", "x=2x8", "--ir", "--after", "fuse_dense")
    assert res.code == 0, res.err
    assert "dense(" in res.out and "activation='relu'" in res.out
    assert "MatMul(" not in res.out


def test_run_zoo_model_matches_onnxruntime(cli, tmp_path):
    path = zoo.get("bert-tiny")
    feeds = zoo.sample_inputs("bert-tiny", batch=2, seq=16)
    np.savez(tmp_path / "in.npz", **feeds)
    res = cli("run", path, "--inputs", tmp_path / "in.npz", "--output", tmp_path / "out.npz")
    assert res.code == 0, res.err
    ref = zoo.ort_run(path, feeds)[0]
    got = np.load(tmp_path / "out.npz")["last_hidden_state"]
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()
