"""hwcomp's fused-op kernels on the CUDA path: definitions numerically right, every fused op scheduled by
hwcomp, and a tuning record taking precedence over hwcomp's schedule for its kernel (no GPU needed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tvm")

import hwcomp  # noqa: E402
from hwcomp import zoo  # noqa: E402
from hwcomp.interp import run as interpret  # noqa: E402
from hwcomp.passes import run_pipeline  # noqa: E402

pytestmark = [pytest.mark.tvm, pytest.mark.slow]


def _graph(name: str, batch: int, seq: int, **kw):
    feeds = zoo.sample_inputs(name, batch, seq, seed=3, **kw)
    if "attention_mask" in feeds and batch > 1:
        feeds["attention_mask"][1, seq // 2:] = 0  # padded keys in one sequence
    g = run_pipeline(hwcomp.load_onnx(zoo.get(name, **kw), {k: v.shape for k, v in feeds.items()}), "cuda")
    return g, feeds


def _run_on_cpu(lm, feeds) -> np.ndarray:
    """First output of a lowered model whose kernels are left as plain definitions, compiled for the CPU."""
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.compile(lm.mod, "llvm"), tvm.cpu())
    args = [tvm.runtime.tensor(feeds[i]) for i in lm.input_names] + \
           [tvm.runtime.tensor(lm.params[k]) for k in lm.param_names]
    out = vm["main"](*args)
    return (out if hasattr(out, "numpy") else out[0]).numpy()


@pytest.mark.parametrize("name,kw,seq", [("bert-tiny", {}, 32), ("gpt2-tiny", {"lm_head": True}, 32),
                                         ("bert-tiny", {}, 64), ("gpt2-tiny", {}, 64)])
def test_cuda_kernel_definitions_match_interpreter(name, kw, seq):
    """The CUDA lowering's kernels are plain TensorIR definitions until scheduled: compiled for the CPU as they
    are, the fp16 model must agree with hwcomp's interpreter (fp32) within fp16 tolerance, padding mask
    (BERT), causal mask and the vocabulary-wide LM head padded to whole tiles (GPT-2) included."""
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax

    g, feeds = _graph(name, 2, seq, **kw)
    lm = lower_to_relax(g, "fp16", target="cuda")
    assert {k.split("_")[1] for k in lm.kernel_schedules if k.startswith("attn")} == {"flash"}
    if kw:
        vocab = max(int(g.types[n.inputs[1]].shape[-1]) for n in g.nodes if n.op == "dense")
        assert vocab % 128 and any(f"x{-(-vocab // 128) * 128}x" in k for k in lm.kernel_schedules)
    kinds = {k.split("_f16")[0].split("_")[0] for k in lm.kernel_schedules}
    assert {"dense", "attn", "layer", "add"} <= kinds, sorted(lm.kernel_schedules)
    got = _run_on_cpu(lm, feeds)
    ref = interpret(g, feeds)[g.outputs[0]]
    err = float(np.abs(got - ref).max())
    print(f"{name}: max |fp16 kernels - interpreter| = {err:.4g} (output max {np.abs(ref).max():.3g})")
    assert err < 2e-2 * max(1.0, float(np.abs(ref).max()))


@pytest.fixture(scope="module")
def bert_tiny():
    return _graph("bert-tiny", 1, 128)[0]


def test_every_fused_op_gets_an_hwcomp_kernel_with_machine_code(bert_tiny):
    from hwcomp.backends.tvm_cuda.compile import build
    from hwcomp.backends.tvm_cuda.verify import verify_executable

    ex, lm = build(bert_tiny, "cuda", "sm_90", "fp16")
    g = lm.graph  # after the GPU's fuse_qkv: its Splits are read in place by the flash attention kernel
    fused = [n.name for n in g.nodes if n.op in ("dense", "attention", "layer_norm", "add_layer_norm", "Split")]
    assert sorted(lm.kernel_sources) == sorted(fused)
    assert sum(n.op == "attention" for n in g.nodes) == sum(n.op == "Split" for n in g.nodes) == 2
    report = verify_executable(ex, "sm_90")
    assert report.mma_instructions > 0


def test_tuning_record_takes_precedence_over_hwcomp_schedule(bert_tiny, tmp_path):
    """A database record for one kernel definition replaces hwcomp's schedule for that kernel only."""
    from tvm import s_tir
    from tvm.s_tir import meta_schedule as ms
    from hwcomp.backends.tvm_cuda import tuning
    from hwcomp.backends.tvm_cuda.compile import build
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax
    from hwcomp.schedules._mma import MmaConfig, schedule_mma

    target = tuning.make_target("cuda", "sm_90")
    mod = tuning.lowered_module(lower_to_relax(bert_tiny, "fp16", target="cuda"), target)
    task = next(t for t in tuning.extract_tasks(mod, target, {"dense"}) if "gelu" in t.name)
    workload_mod = task.mod
    sch = s_tir.Schedule(workload_mod)
    # not hwcomp's pick (the wgmma kernel): mma.sync, on the [N, K] weight that definition reads
    schedule_mma(sch, MmaConfig(1, 1, 1, 1), "float16", "float32", trans_b=True)
    db = tuning.open_database(tmp_path / "db", target, create=True)
    db.commit_tuning_record(ms.database.TuningRecord(sch.trace, db.commit_workload(workload_mod), [1e-5], target))

    _, lm = build(bert_tiny, "cuda", "sm_90", "fp16", tuning_db=str(tmp_path / "db"))
    assert lm.tuned_kernels == [task.name]


def _int8(name: str, batch: int, seq: int, **kw):
    from hwcomp.passes import PassContext

    g, feeds = _graph(name, batch, seq, **kw)
    calib = [zoo.sample_inputs(name, batch, seq, seed=s, **kw) for s in (1, 2)]
    g = run_pipeline(g, ["quantize_int8", "integer_nonlinear"],
                     PassContext(options={"calibrator": "minmax", "calib_inputs": calib}))
    return g, feeds


@pytest.mark.parametrize("arch", ["sm_90", "sm_75"])
@pytest.mark.parametrize("name,kw", [("bert-tiny", {}), ("gpt2-tiny", {"lm_head": True})])
def test_int8_cuda_kernel_definitions_are_bit_exact_with_interpreter(name, kw, arch):
    """The integer-only int8 graph as the CUDA lowering emits it (qdense on int8 tensor cores with the residual
    add and quantize fused into its epilogue, integer attention, integer layer norm, fp32 glue), compiled for the
    CPU as plain definitions (float glue without the CUDA-only IEEE intrinsics), gives the interpreter's bits.
    sm_80+: one-kernel integer attention fed fp16-carried int8 q/k/v by the GEMMs producing them, the warp
    sm_75: the three-kernel attention. The warp layer norm with the next GEMM's quantize fused: any arch."""
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax

    g, feeds = _int8(name, 2, 32, **kw)
    lm = lower_to_relax(g, "fp32", target="cuda", arch=arch, exact_fp=False)
    ks = sorted(lm.kernel_schedules)
    flash = arch != "sm_75"
    assert any(k.startswith("qdense_") for k in ks), ks
    assert any(k.startswith("qattn_flash_") for k in ks) == flash, ks
    assert any(k.startswith("qattn_softmax_") for k in ks) != flash, ks
    assert any(k.startswith("qdense_wgmma_") for k in ks) == (arch == "sm_90"), ks
    if name == "bert-tiny":  # post-LN: every output projection ends in residual add -> quantize(16) -> int LN
        assert any(k.startswith("int_layer_norm") for k in ks) and any("_resq_i16" in k for k in ks)
        assert any(k.startswith("int_layer_norm_warp_") and "_q8_z" in k for k in ks), ks  # any arch
        if arch == "sm_90":  # Q, K and V: one GEMM (fuse_qkv_int8) writing fp16, read in place by the attention
            assert any(k.startswith("qdense_wgmma_") and "_qkv_f16" in k for k in ks), ks
            assert any(k.startswith("qattn_flash_") and k.endswith("_qkv") for k in ks), ks
            assert any(k.endswith("_f16_none") and k.startswith("qdense_wgmma_") for k in ks), ks
            casts = [ln for ln in lm.mod["main"].script().splitlines() if "R.astype(" in ln]
            assert casts and not any('dtype="float16")' in ln for ln in casts), casts
    if kw.get("lm_head"):  # the logits: written unpadded as the graph output on sm_90 (no slice copy)
        assert any(k.startswith("qdense_wgmma_") and "_out" in k for k in ks) == (arch == "sm_90"), ks
    if name == "gpt2-tiny":  # c_attn quantized per slice in its epilogue, read in place by the attention
        assert any(k.startswith("qdense_wgmma_") and "_qkv_q8" in k for k in ks) == (arch == "sm_90"), ks
        assert any(k.startswith("qattn_flash_") and k.endswith("_qkv") for k in ks) == (arch == "sm_90"), ks
        # pre-LN residual adds: the GEMM writes the float32 sum and its int16 quantization for the next LN
        assert any(k.startswith("qdense_wgmma_") and "_resq_i16_z0_sum" in k for k in ks) == (arch == "sm_90"), ks
    # i-GELU and its per-channel requantization: in the FFN up-projection's epilogue on sm_90 (int32 in the
    # wgmma kernel), else one hwcomp kernel in int32 with a widening multiply -- never the int64 path
    assert any(n.op == "int_gelu" for n in g.nodes)
    fused_gelu = any(k.startswith("qdense_wgmma_") and "_igelu_" in k for k in ks)
    assert fused_gelu == (arch == "sm_90") and any(k.startswith("int_gelu") for k in ks) != fused_gelu, ks
    # the padding mask, where(attended, 0, min): its two values converted to score units at compile time, one
    # int32 where for all layers whose scales give the same two; no float64 division per layer
    script = lm.mod["main"].script()
    layers = sum(n.op == "qattention" for n in g.nodes)
    wheres = script.count('dtype="int32") = R.where(')
    assert 1 <= wheres <= layers and "float64" not in script, wheres
    got = _run_on_cpu(lm, feeds)
    np.testing.assert_array_equal(got, interpret(g, feeds)[g.outputs[0]])


def test_int8_padding_mask_takes_the_graphs_values_not_their_fp16_rounding():
    """The two-valued padding mask is converted to score units from the values the graph (and so the
    interpreter) holds, also when the fp16 lowering would round them: a mask value of -3.3 (fp16: -3.30078) gives
    each layer's clip(rint(-3.3 / score_scale)) in its int32 where, and the fp32 build stays bit-exact."""
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax

    g, feeds = _int8("bert-tiny", 2, 32)
    w = next(n for n in g.nodes if n.op == "Where")
    g.constants[w.inputs[2]] = np.full(np.shape(g.constants[w.inputs[2]]), -3.3, np.float32)
    want = {int(np.rint(np.float64(np.float32(-3.3)) / float(n.attrs["score_scale"])))
            for n in g.nodes if n.op == "qattention"}
    fp16_rounded = {int(np.rint(np.float64(np.float16(-3.3)) / float(n.attrs["score_scale"])))
                    for n in g.nodes if n.op == "qattention"}
    assert want.isdisjoint(fp16_rounded)  # the scales make the rounding visible
    script = lower_to_relax(g, "fp16", target="cuda", arch="sm_90").mod["main"].script()
    assert all(f'R.const({v}, "int32")' in script for v in want), want
    lm = lower_to_relax(g, "fp32", target="cuda", arch="sm_90", exact_fp=False)
    np.testing.assert_array_equal(_run_on_cpu(lm, feeds), interpret(g, feeds)[g.outputs[0]])


@pytest.mark.parametrize("name", ["bert-tiny", "gpt2-tiny"])
def test_fuse_qkv_int8_keeps_the_interpreters_integers(name):
    """Three int8 projections of an integer attention as one qdense (weights, biases, per-channel multipliers and
    shifts side by side) and a Split: the interpreter's output is unchanged, bit for bit."""
    from hwcomp.passes import get_pass

    g, feeds = _int8(name, 2, 32)
    before = sum(n.op == "qdense" for n in g.nodes)
    ref = interpret(g, feeds)[g.outputs[0]]
    fused = get_pass("fuse_qkv_int8")(g)
    layers = sum(n.op == "qattention" for n in fused.nodes)
    # BERT: q, k, v were three qdense each; GPT-2's c_attn is one projection already (its Split feeds quantizes)
    expected = before - 2 * layers if name == "bert-tiny" else before
    assert sum(n.op == "qdense" for n in fused.nodes) == expected
    np.testing.assert_array_equal(interpret(fused, feeds)[fused.outputs[0]], ref)


@pytest.mark.parametrize("arch", ["sm_90", "sm_80"])
def test_int8_cuda_build_has_machine_code_and_exact_float_glue(tmp_path, arch):
    """`hwcomp compile --quant int8 --target cuda` path: integer GEMMs on int8 tensor cores -- s8 wgmma on sm_90,
    IMMA mma.sync on sm_80 -- in machine code for the arch, float glue through __fdiv_rn/__fmul_rn, glue
    computed in fp32 (report precision)."""
    from hwcomp.backends.tvm_cuda.compile import build
    from hwcomp.backends.tvm_cuda.verify import cuda_source, verify_executable

    g, _ = _int8("bert-tiny", 1, 128)
    ex, lm = build(g, "cuda", arch, "fp16")
    covered = [n.name for n in lm.graph.nodes if n.op in ("qdense", "qattention", "int_layer_norm")]
    assert set(covered) <= set(lm.kernel_sources)  # (lm.graph: after fuse_qkv_int8 on sm_90)
    assert (len(covered) < sum(n.op in ("qdense", "qattention", "int_layer_norm") for n in g.nodes)) == (arch == "sm_90")
    src = cuda_source(ex)
    assert "__fdiv_rn" in src and "__fmul_rn" in src
    report = verify_executable(ex, arch)
    assert report.mma_instructions > 0  # attention's fp16 mma (and, sm_80, the GEMMs' IMMA)
    assert (report.wgmma_instructions > 0) == (arch == "sm_90")
    assert ".s32.s8.s8" in src and ("wgmma.mma_async" in src) == (arch == "sm_90")


def test_int4_wdense_decode_runs_as_gemv_kernel():
    """Weight-only int4 at decode shape (one token): wdense nodes whose K fits become hwcomp's GEMV kernel with
    the dequant fused, weights repacked once at compile time; the model (definitions on the CPU) stays within
    fp16 tolerance of the interpreter, and the GEMV builds to sm_90 machine code."""
    from hwcomp.backends.tvm_cuda.compile import build
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax
    from hwcomp.backends.tvm_cuda.verify import verify_executable
    from hwcomp.passes import PassContext

    g, feeds = _graph("gpt2-tiny", 1, 1)
    g = run_pipeline(g, ["quantize_w4"], PassContext(options={"group_size": 128}))
    lm = lower_to_relax(g, "fp16", target="cuda")
    gemv = [k for k in lm.kernel_schedules if k.startswith("gemv_int4")]
    assert gemv, sorted(lm.kernel_schedules)
    packed = [k for k in lm.param_names if lm.params[k].dtype == np.uint8]
    assert packed and all(lm.params[k].ndim == 2 for k in packed)
    got = _run_on_cpu(lm, feeds)
    ref = interpret(g, feeds)[g.outputs[0]]
    assert float(np.abs(got - ref).max()) < 2e-2 * max(1.0, float(np.abs(ref).max()))
    ex, _ = build(g, "cuda", "sm_90", "fp16")
    assert any(e.kind == "elf" and e.arch == 90 for e in verify_executable(ex, "sm_90").entries)


def test_long_k_dense_at_few_rows_splits_k_and_matches_interpreter(tmp_path):
    """An FFN-down-shaped dense at 128 rows (K=2048 >> N) runs split-K: partial GEMMs into fp32 [splits, M, N],
    then one kernel sums the splits with bias and ReLU. Its definitions (CPU) agree with the interpreter within
    fp16 tolerance, and its CUDA build holds tensor-core machine code."""
    import onnx
    from onnx import TensorProto, helper

    from hwcomp.backends.tvm_cuda.compile import build
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax
    from hwcomp.backends.tvm_cuda.verify import verify_executable
    from tests.builders import make_model

    rng = np.random.default_rng(7)
    k, n = 2048, 256
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    m = make_model([helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y0"]),
                    helper.make_node("Relu", ["y0"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [128, k])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [128, n])], {"w": w, "b": b})
    path = tmp_path / "ffn.onnx"
    onnx.save(m, path)
    g = run_pipeline(hwcomp.load_onnx(path), "cuda")
    lm = lower_to_relax(g, "fp16", target="cuda")
    assert any(name.endswith("_split2_partial") or name.endswith("_split4_partial") for name in lm.kernel_schedules), \
        sorted(lm.kernel_schedules)
    x = rng.standard_normal((128, k)).astype(np.float16)  # the fp16 module's input dtype
    got = _run_on_cpu(lm, {"x": x}).astype(np.float64)
    ref = interpret(g, {"x": x.astype(np.float32)})["y"]
    assert float(np.abs(got - ref).max()) < 2e-2 * max(1.0, float(np.abs(ref).max()))
    ex, _ = build(g, "cuda", "sm_90", "fp16")
    assert verify_executable(ex, "sm_90").mma_instructions > 0


def _wide_dense_graph(tmp_path, m: int, k: int, n: int, act_op: str | None = "Gelu"):
    import onnx
    from onnx import TensorProto, helper

    from tests.builders import make_model

    rng = np.random.default_rng(11)
    w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y0" if act_op else "y"])]
    if act_op:
        nodes.append(helper.make_node(act_op, ["y0"], ["y"]))
    m_ = make_model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], {"w": w, "b": b},
                    opset=20)
    path = tmp_path / "dense.onnx"
    onnx.save(m_, path)
    return run_pipeline(hwcomp.load_onnx(path), "cuda"), rng


def test_batch32_sized_dense_runs_as_wgmma_kernel_and_matches_interpreter(tmp_path):
    """A dense whose 128-row tiles fill the GPU (4096 x 512 here; BERT-base at batch 32) runs as the Hopper
    wgmma GEMM on sm_90: its weight is stored [N, K] (transposed once at compile time), its definition (CPU)
    agrees with the interpreter within fp16 tolerance, bias and GELU included, and the CUDA build holds sm_90a
    machine code issuing wgmma. For sm_80 the same graph keeps the mma.sync kernel and the [K, N] weight."""
    from hwcomp.backends.tvm_cuda.compile import build
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax
    from hwcomp.backends.tvm_cuda.verify import verify_executable

    m, k, n = 4096, 256, 512
    g, rng = _wide_dense_graph(tmp_path, m, k, n)
    lm = lower_to_relax(g, "fp16", target="cuda")
    names = sorted(lm.kernel_schedules)
    assert names == [f"dense_f16_wgmma_{m}x{n}x{k}_gelu_b_f32out{n}"], names  # the graph output: fp32
    assert sorted(p.shape for p in lm.params.values()) == sorted([(n,), (n, k)])
    x = rng.standard_normal((m, k)).astype(np.float16)
    got = _run_on_cpu(lm, {"x": x}).astype(np.float64)
    ref = interpret(g, {"x": x.astype(np.float32)})["y"]
    assert float(np.abs(got - ref).max()) < 2e-2 * max(1.0, float(np.abs(ref).max()))

    ex, _ = build(g, "cuda", "sm_90", "fp16")
    rep = verify_executable(ex, "sm_90")
    assert rep.wgmma_instructions > 0 and rep.mma_instructions == 0
    assert any(e.kind == "elf" and e.arch == 90 for e in rep.entries)

    lm80 = lower_to_relax(g, "fp16", target="cuda", arch="sm_80")
    assert sorted(lm80.kernel_schedules) == [f"dense_f16_{m}x{n}x{k}_gelu_b"]
    assert sorted(p.shape for p in lm80.params.values()) == sorted([(n,), (k, n)])


def test_wgmma_dense_writing_the_graph_output_gives_unpadded_fp32(tmp_path):
    """A wgmma dense whose output is the graph's (an LM head's logits) writes it as fp32, only the real columns:
    N=1000 is computed padded to 1024 (weight and bias zero-padded), with no slice or cast kernel after it, and
    the definition agrees with the interpreter within fp16 tolerance."""
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax

    m, k, n = 4096, 128, 1000
    g, rng = _wide_dense_graph(tmp_path, m, k, n, act_op=None)
    lm = lower_to_relax(g, "fp16", target="cuda")
    assert sorted(lm.kernel_schedules) == [f"dense_f16_wgmma_{m}x1024x{k}_none_b_f32out{n}"]
    assert sorted(p.shape for p in lm.params.values()) == sorted([(1024,), (1024, k)])
    text = str(lm.mod["main"])
    assert "strided_slice" not in text and "astype" not in text
    x = rng.standard_normal((m, k)).astype(np.float16)
    got = _run_on_cpu(lm, {"x": x})
    assert got.dtype == np.float32 and got.shape == (m, n)
    ref = interpret(g, {"x": x.astype(np.float32)})["y"]
    assert float(np.abs(got - ref).max()) < 2e-2 * max(1.0, float(np.abs(ref).max()))


@pytest.mark.parametrize("name", ["bert-tiny", "gpt2-tiny"])
def test_attention_reads_the_fused_qkv_projection_in_place(name):
    """BERT's three Q/K/V projections become one dense (fuse_qkv, on the fp16 CUDA path) and GPT-2 has one
    already: either way the flash attention kernel takes the projection's output whole, and no kernel copies
    the split heads out of it. The module's attention kernels are the fused-QKV flash variant only."""
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax

    g, feeds = _graph(name, 2, 64)
    lm = lower_to_relax(g, "fp16", target="cuda")
    h_in, h_out = g.op_histogram(), lm.graph.op_histogram()
    layers = h_in["attention"]
    assert h_out["attention"] == layers and h_out["Split"] == layers
    if name == "bert-tiny":
        assert h_out["dense"] == h_in["dense"] - 2 * layers and "Split" not in h_in
    assert sorted({k.split("_2x")[0] for k in lm.kernel_schedules if k.startswith("attn")}) == ["attn_flash"]
    assert all(k.endswith("_qkv") for k in lm.kernel_schedules if k.startswith("attn"))
    text = str(lm.mod["main"])
    assert "R.split" not in text and "strided_slice" not in text
    got = _run_on_cpu(lm, feeds)
    ref = interpret(g, feeds)[g.outputs[0]]
    assert float(np.abs(got - ref).max()) < 2e-2 * max(1.0, float(np.abs(ref).max()))


def test_few_row_dense_runs_as_one_warpgroup_wgmma_kernel(tmp_path):
    """At batch 1 (128 rows) 128-row tiles cannot fill the GPU: a dense with K < 2048 runs as the wgmma kernel with
    64x64 tiles of one warpgroup (schedules/dense_wgmma.py SMALL_M), definition within fp16 tolerance of the
    interpreter, sm_90a machine code issuing wgmma; sm_80 keeps mma.sync."""
    from hwcomp.backends.tvm_cuda.compile import build
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax
    from hwcomp.backends.tvm_cuda.verify import cuda_source, verify_executable

    m, k, n = 128, 256, 384
    g, rng = _wide_dense_graph(tmp_path, m, k, n)
    lm = lower_to_relax(g, "fp16", target="cuda")
    assert sorted(lm.kernel_schedules) == [f"dense_f16_wgmma_{m}x{n}x{k}_gelu_b_f32out{n}"]
    x = rng.standard_normal((m, k)).astype(np.float16)
    got = _run_on_cpu(lm, {"x": x}).astype(np.float64)
    ref = interpret(g, {"x": x.astype(np.float32)})["y"]
    assert float(np.abs(got - ref).max()) < 2e-2 * max(1.0, float(np.abs(ref).max()))
    ex, _ = build(g, "cuda", "sm_90", "fp16")
    assert "hwcomp_wgmma_dense_f16_m64n64s6_gelu_b_o32(" in cuda_source(ex)
    assert verify_executable(ex, "sm_90").wgmma_instructions > 0
    assert sorted(lower_to_relax(g, "fp16", target="cuda", arch="sm_80").kernel_schedules) == \
        [f"dense_f16_{m}x{n}x{k}_gelu_b"]
