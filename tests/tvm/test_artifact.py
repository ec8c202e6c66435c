"""GPU backend artifacts: the same Relax lowering compiled for LLVM runs on this CPU and matches the
interpreter; CUDA artifacts build for sm_90/sm_80 without a GPU; bad input gets one clear error."""

import json

import numpy as np
import pytest

pytest.importorskip("tvm")

from hwcomp import zoo  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    path = zoo.get("bert-tiny")
    feeds = zoo.sample_inputs("bert-tiny", batch=2, seq=32, seed=4)
    np.savez(d / "in.npz", **feeds)
    return path, d, feeds


def _shape_args(feeds):
    out = []
    for k, v in feeds.items():
        out += ["--shape", f"{k}={'x'.join(map(str, v.shape))}"]
    return out


def test_llvm_artifact_matches_interpreter_and_onnxruntime(cli, tiny):
    path, d, feeds = tiny
    res = cli("compile", path, "--target", "llvm", "-o", d / "cpu", *_shape_args(feeds))
    assert res.code == 0, res.err
    res = cli("run", d / "cpu", "--inputs", d / "in.npz", "--output", d / "out.npz")
    assert res.code == 0, res.err
    got = np.load(d / "out.npz")["last_hidden_state"]
    ref = zoo.ort_run(path, feeds)[0]
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
def test_cuda_artifact_builds_without_gpu(cli, tiny, arch):
    path, d, feeds = tiny
    out = d / f"cuda_{arch}"
    res = cli("compile", path, "--target", "cuda", "--arch", arch, "--precision", "fp16", "-o", out, *_shape_args(feeds))
    assert res.code == 0, res.err
    rep = json.loads((out / "report.json").read_text())
    assert rep["target"] == "cuda" and rep["arch"] == arch
    assert (out / "model.so").stat().st_size > 10_000
    assert rep["predicted_total_us"] > 0 and len(rep["kernels"]) > 5
    assert {k["op"] for k in rep["kernels"]} >= {"dense", "attention"}
    # 64 rows: on sm_90 the one-warpgroup wgmma GEMM (sm_90a, runs on compute capability 9.0 only); sm_80: mma.sync
    assert rep["needs_sm90a"] is (arch == "sm_90")


def test_wgmma_artifact_refuses_other_gpus_with_one_clear_error(cli, tiny, tmp_path):
    """At batch 32 x seq 128 bert-tiny's FFN-up runs as the Hopper wgmma kernel: the report says the library needs
    compute capability 9.0, and running it on another GPU is one error naming the arch to recompile for."""
    from hwcomp.backends.tvm_cuda.compile import check_device_arch
    from hwcomp.errors import BackendError

    path, _, _ = tiny
    feeds = zoo.sample_inputs("bert-tiny", batch=32, seq=128, seed=4)
    res = cli("compile", path, "--target", "cuda", "-o", tmp_path / "b32", *_shape_args(feeds))
    assert res.code == 0, res.err
    rep = json.loads((tmp_path / "b32" / "report.json").read_text())
    assert rep["needs_sm90a"] is True
    check_device_arch(rep, "9.0")
    with pytest.raises(BackendError, match=r"compute capability 9.0.*8.6.*--arch sm_86"):
        check_device_arch(rep, "8.6", "NVIDIA RTX A6000")


def test_cuda_artifact_without_gpu_is_one_clear_error(cli, tiny):
    path, d, feeds = tiny
    out = d / "cuda_sm_90"
    if not out.exists():
        assert cli("compile", path, "--target", "cuda", "-o", out, *_shape_args(feeds)).code == 0
    import tvm
    if tvm.cuda(0).exist:
        pytest.skip("this machine has a GPU")
    res = cli("run", out, "--inputs", d / "in.npz")
    assert res.code == 2 and res.err.startswith("error:") and "no CUDA GPU" in res.err


def test_unknown_arch_leaves_no_output_dir(cli, tiny):
    path, d, feeds = tiny
    res = cli("compile", path, "--target", "cuda", "--arch", "sm_99", "-o", d / "bad", *_shape_args(feeds))
    assert res.code == 2 and "unknown CUDA arch 'sm_99'" in res.err
    assert not (d / "bad").exists()


def test_dynamic_shape_without_shape_flag(cli, tiny):
    path, d, _ = tiny
    res = cli("compile", path, "--target", "cuda", "-o", d / "dyn")
    assert res.code == 2 and "--shape" in res.err
    assert not (d / "dyn").exists()


def test_unknown_target(cli, tiny):
    path, d, feeds = tiny
    res = cli("compile", path, "--target", "tpu", "-o", d / "tpu", *_shape_args(feeds))
    assert res.code == 2 and "unknown target 'tpu'" in res.err


def test_int8_integer_only_llvm_artifact_is_bit_exact_with_interpreter(cli, tiny):
    """The integer-only int8 graph (I-BERT softmax/GELU/layer norm) gives the interpreter's bits when
    compiled through TVM: the cross-check users get between the reference, the GPU and the RTL."""
    import hwcomp
    from hwcomp.cli.compile import quantize_graph
    from hwcomp.passes import run_pipeline

    path, d, feeds = tiny
    res = cli("compile", path, "--target", "llvm", "--quant", "int8", "--integer-only", "-o", d / "int8",
              *_shape_args(feeds))
    assert res.code == 0, res.err
    res = cli("run", d / "int8", "--inputs", d / "in.npz", "--output", d / "int8_out.npz")
    assert res.code == 0, res.err
    got = np.load(d / "int8_out.npz")["last_hidden_state"]
    g = hwcomp.load(d / "int8" / "graph.hwir")
    assert "qattention" in g.op_histogram() and "int_layer_norm" in g.op_histogram()
    ref = hwcomp.run(g, feeds)["last_hidden_state"]
    np.testing.assert_array_equal(got, ref)
