"""`hwcomp tune --target llvm` end to end on one dense kernel: records, resume, interrupt, --tuning-db."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.tune.conftest import QUICK, counts, hwcomp_cli, records

pytestmark = pytest.mark.tvm


@pytest.fixture(scope="module")
def tuned_db(matmul_onnx, tmp_path_factory) -> Path:
    """4 trials of the one dense kernel (shared by the tests of this module; copy before changing it)."""
    db = tmp_path_factory.mktemp("tuned") / "db"
    r = hwcomp_cli("tune", matmul_onnx, *QUICK, "--trials", "4", "--db", db)
    assert r.returncode == 0, r.stdout + r.stderr
    return db


@pytest.mark.slow
def test_tune_llvm_writes_json_database_and_manifest(tuned_db):
    assert list(counts(tuned_db).values()) == [4]  # one workload (the dense kernel), 4 measured trials
    m = json.loads((tuned_db / "manifest.json").read_text())
    assert m["format"] == "hwcomp-tuning-db/1" and m["target_kind"] == "llvm" and m["arch"] == "llvm"
    task = m["tasks"]["fused_matmul_add_relu"]
    assert task["op_class"] == "dense" and task["records"] == 4 and task["best_us"] > 0
    assert m["sessions"][-1]["status"] == "complete"
    # MetaSchedule's own reader accepts the files.
    from tvm.s_tir import meta_schedule as ms
    db = ms.database.JSONDatabase(path_workload=str(tuned_db / "database_workload.json"),
                                  path_tuning_record=str(tuned_db / "database_tuning_record.json"))
    assert len(db.get_all_tuning_records()) == 4


@pytest.mark.slow
def test_tune_rerun_adds_only_missing_trials_without_repeating(tuned_db, matmul_onnx, tmp_path):
    db = tmp_path / "db"
    shutil.copytree(tuned_db, db)
    first = records(db)
    r = hwcomp_cli("tune", matmul_onnx, *QUICK, "--trials", "8", "--db", db)
    assert r.returncode == 0, r.stdout + r.stderr
    after = records(db)
    assert after[:4] == first and list(counts(db).values()) == [8]  # 4 kept as they were, 4 added
    traces = [json.dumps(rec[1][0], sort_keys=True) for rec in after]
    assert len(set(traces)) == len(traces), "a candidate was measured twice"
    assert _distinct_scheduled_modules(db) == 8  # nor two traces of one schedule
    # Same budget again: nothing to do, nothing written.
    r = hwcomp_cli("tune", matmul_onnx, *QUICK, "--trials", "8", "--db", db)
    assert r.returncode == 0 and "already has >= 8 trials" in r.stdout.replace("\n", " ")
    assert records(db) == after


def _dense_task(matmul_onnx):
    import hwcomp
    from hwcomp.backends.tvm_cuda import tuning
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax
    from hwcomp.passes import run_pipeline

    target = tuning.make_target("llvm", "")
    lm = lower_to_relax(run_pipeline(hwcomp.load_onnx(matmul_onnx, {}), "cuda"), "fp32", target="llvm")
    (task,) = tuning.extract_tasks(tuning.lowered_module(lm, target), target, {"dense"})
    return task, target


def _stored_candidates(db_dir: Path, target) -> list:
    """The database's records replayed on their workload (what MetaSchedule measured)."""
    from hwcomp.backends.tvm_cuda import tuning
    return [r.as_measure_candidate() for r in tuning.open_database(db_dir, target).get_all_tuning_records()]


def _distinct_scheduled_modules(db_dir: Path) -> int:
    from hwcomp.backends.tvm_cuda import tuning
    mods = tuning.MeasuredSet()
    return sum(mods.add(c.sch.mod) for c in _stored_candidates(db_dir, tuning.make_target("llvm", "")))


def _scripted_strategy(batches: list, calls: list):
    """A MetaSchedule search strategy that proposes the given batches (then None), recording what it is told:
    what EvolutionarySearch does on a resume when its population, seeded with the database's records, keeps
    them as its best candidates (MetaSchedule counts only this session's candidates as measured)."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.search_strategy import PySearchStrategy

    @derived_object
    class Scripted(PySearchStrategy):
        def _initialize_with_tune_context(self, context):
            calls.append(("init",))

        def pre_tuning(self, max_trials, num_trials_per_iter, design_spaces, database=None, cost_model=None):
            calls.append(("pre_tuning", database is not None))

        def post_tuning(self):
            calls.append(("post_tuning",))

        def generate_measure_candidates(self):
            calls.append(("generate",))
            return batches.pop(0) if batches else None

        def notify_runner_results(self, measure_candidates, results):
            calls.append(("notify", [c.sch.mod for c in measure_candidates], len(results)))

        def clone(self):
            return self._outer()  # the TVM object of this instance (derived_object keeps a weak reference)

    return Scripted()


def _fresh_candidate(task):
    """The workload as it is (unscheduled): a valid candidate that no tuning record holds."""
    import tvm
    from tvm.s_tir import meta_schedule as ms
    return ms.MeasureCandidate(tvm.s_tir.Schedule(task.mod), ms.arg_info.ArgInfo.from_entry_func(task.mod))


@pytest.mark.slow
def test_resumed_session_never_measures_a_database_record_again(tuned_db, matmul_onnx, tmp_path, monkeypatch):
    """Deterministic: the search re-proposes every stored candidate; only the new one is measured and stored."""
    import tvm_ffi
    from tvm.s_tir import meta_schedule as ms
    from hwcomp.backends.tvm_cuda import tuning

    db = tmp_path / "db"
    shutil.copytree(tuned_db, db)
    first = records(db)
    task, target = _dense_task(matmul_onnx)
    stored = _stored_candidates(db, target)
    fresh = _fresh_candidate(task)
    assert len(stored) == 4 and not any(tvm_ffi.structural_equal(fresh.sch.mod, c.sch.mod) for c in stored)
    # Batch 1 holds only stored candidates (all dropped, so the search is asked again); batch 2 a stored one
    # and the new one twice.
    calls: list = []
    scripted = _scripted_strategy([stored, [stored[0], fresh, fresh]], calls)
    monkeypatch.setattr(ms.search_strategy, "EvolutionarySearch", lambda **kw: scripted)
    session = tuning.tune([task], target, db, tuning.TuneOptions(trials=5, per_iter=4, seed=0, population=16))
    after = records(db)
    assert session["status"] == "complete" and session["added"] == {task.name: 1}
    assert after[:4] == first and len(after) == 5
    assert _distinct_scheduled_modules(db) == 5
    assert [c[0] for c in calls].count("generate") == 2
    (notify,) = [c for c in calls if c[0] == "notify"]  # the search hears of the one candidate measured
    assert len(notify[1]) == 1 and tvm_ffi.structural_equal(notify[1][0], fresh.sch.mod) and notify[2] == 1


@pytest.mark.slow
def test_search_that_only_repeats_measured_candidates_ends(tuned_db, matmul_onnx):
    """A search that keeps proposing stored candidates ends the task (None) instead of looping, and a batch
    with new candidates keeps them in order, without the stored ones and without repeats."""
    from hwcomp.backends.tvm_cuda import tuning
    from tvm.s_tir import meta_schedule as ms

    task, target = _dense_task(matmul_onnx)
    stored = _stored_candidates(tuned_db, target)
    fresh = _fresh_candidate(task)
    calls: list = []
    endless = [list(stored) for _ in range(tuning.MAX_MEASURED_BATCHES + 5)]
    s = tuning.skip_measured(_scripted_strategy(endless, calls))
    ms.TuneContext(task.mod, target=target, space_generator="post-order-apply", search_strategy=s, task_name="t")
    s.pre_tuning(8, 4, [], tuning.open_database(tuned_db, target), None)
    assert s.generate_measure_candidates() is None
    assert [c[0] for c in calls].count("generate") == tuning.MAX_MEASURED_BATCHES
    s.post_tuning()

    calls.clear()
    s = tuning.skip_measured(_scripted_strategy([stored[1:] + [fresh] + stored[:1] + [fresh]], calls))
    ms.TuneContext(task.mod, target=target, space_generator="post-order-apply", search_strategy=s, task_name="t")
    s.pre_tuning(8, 4, [], tuning.open_database(tuned_db, target), None)
    (only,) = s.generate_measure_candidates()
    assert only.same_as(fresh)
    assert s.generate_measure_candidates() is None  # the scripted search is done
    s.post_tuning()


@pytest.mark.slow
def test_tune_ctrl_c_leaves_database_that_resumes(matmul_onnx, tmp_path):
    db = tmp_path / "db"
    exe = str(Path(sys.executable).with_name("hwcomp"))
    p = subprocess.Popen([exe, "tune", str(matmul_onnx), *QUICK, "--per-iter", "2", "--trials", "8", "--db", str(db)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while sum(counts(db).values()) < 2 and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=120)
    assert p.returncode in (130, 0), out
    n = sum(counts(db).values())
    assert 2 <= n <= 8
    m = json.loads((db / "manifest.json").read_text())
    assert m["sessions"][-1]["status"] in ("interrupted", "complete")
    r = hwcomp_cli("tune", matmul_onnx, *QUICK, "--trials", "8", "--db", db)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list(counts(db).values()) == [8]


@pytest.mark.slow
def test_compile_with_tuning_db_uses_records_and_runs(tuned_db, matmul_onnx, tmp_path, cli):
    import hwcomp
    from hwcomp.backends.tvm_cuda import tuning
    from hwcomp.backends.tvm_cuda.relax_lowering import lower_to_relax
    from hwcomp.passes import run_pipeline

    g = run_pipeline(hwcomp.load_onnx(matmul_onnx, {}), "cuda")
    target = tuning.make_target("llvm", "")
    mod = tuning.apply_database(tuning.lowered_module(lower_to_relax(g, "fp32"), target), target, tuned_db)
    assert tuning.database_kernels(mod) == ["fused_matmul_add_relu"]
    assert mod["fused_matmul_add_relu"].attrs["tirx.is_scheduled"]

    out = tmp_path / "art"
    r = cli("compile", matmul_onnx, "--target", "llvm", "--tuning-db", tuned_db, "-o", out)
    assert r.code == 0, r.err
    x = np.random.default_rng(1).standard_normal((64, 64)).astype(np.float32)
    from hwcomp.artifact import run_artifact
    y = next(iter(run_artifact(out, {"x": x}).values()))
    import onnx
    from onnx import numpy_helper
    w, b = (numpy_helper.to_array(t) for t in onnx.load(matmul_onnx).graph.initializer)
    np.testing.assert_allclose(y, np.maximum(x @ w + b, 0), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_database_kept_compressed_reopens_from_xz_alone(tuned_db, tmp_path):
    """What git keeps (manifest + .xz copies) is a whole database: the JSON files come back on open."""
    from hwcomp.backends.tvm_cuda import tuning

    db = tmp_path / "db"
    shutil.copytree(tuned_db, db)
    assert (db / "database_tuning_record.json.xz").exists()
    original = (db / "database_tuning_record.json").read_bytes()
    for f in ("database_workload.json", "database_tuning_record.json"):
        (db / f).unlink()
    target = tuning.make_target("llvm", "llvm")
    assert len(tuning.open_database(db, target).get_all_tuning_records()) == 4
    assert (db / "database_tuning_record.json").read_bytes() == original


@pytest.mark.slow
def test_tuning_builder_compiles_hwcomp_kernels_as_compile_does():
    """MetaSchedule's builder workers build with hwcomp's CUDA hooks: a kernel calling a generated device function
    (the wgmma GEMM) gets its definition, which MetaSchedule's default build leaves out (so hwcomp's own kernels
    failed to build as the baselines a tuned record must beat)."""
    import tarfile

    import tvm
    from tvm.s_tir import meta_schedule as ms

    from hwcomp.backends.tvm_cuda import tuning
    from hwcomp.schedules import dense_wgmma

    target = tuning.make_target("cuda", "sm_90")
    mod = tvm.IRModule({"main": dense_wgmma.dense_f16_wgmma(256, 256, 128).with_attr("global_symbol", "main")})

    def built_blob(**kw) -> bytes:
        builder = ms.builder.LocalBuilder(max_workers=1, timeout_sec=600, **kw)
        (res,) = builder.build([ms.builder.BuilderInput(mod, target)])
        assert not res.error_msg, res.error_msg[-1000:]
        with tarfile.open(res.artifact_path) as tf:
            return b"".join(tf.extractfile(m).read() for m in tf.getmembers() if m.isfile())

    definition = b"hwcomp_gmma_desc(unsigned addr)"
    assert definition in built_blob(initializer=tuning.builder_worker_init, f_build=tuning.BUILD_FUNC)
    assert definition not in built_blob(initializer=tuning.import_tensor_intrinsics)  # MetaSchedule's default
