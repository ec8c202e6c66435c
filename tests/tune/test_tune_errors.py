"""Errors of `hwcomp tune` / `--tuning-db`: foreign databases, RPC trouble, bad options, torn files.
These fail before any tuning, so they are quick."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from hwcomp.backends.tvm_cuda import tuning

pytestmark = pytest.mark.tvm


def _foreign_db(path: Path, **manifest) -> Path:
    import tvm
    path.mkdir(parents=True)
    m = {"format": tuning.DB_FORMAT, "tvm_version": tvm.__version__, "target_kind": "llvm", "arch": "llvm",
         "target": "{}", "tasks": {}}
    m.update(manifest)
    (path / tuning.MANIFEST).write_text(json.dumps(m))
    (path / tuning.WORKLOAD_FILE).write_text('["123", "not parsed before the manifest check"]\n')
    (path / tuning.RECORD_FILE).write_text('[0, ["trace"]]\n')
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in sorted(path.iterdir()))).hexdigest()


@pytest.mark.parametrize("manifest, needle", [
    ({"target_kind": "cuda", "arch": "sm_80"}, r"arch 'sm_80' \(this run: 'llvm'\)"),
    ({"tvm_version": "0.19.0"}, r"tvm_version '0.19.0' \(this run: '0.27"),
])
def test_tune_db_from_other_arch_or_tvm_version_is_one_error_and_left_intact(cli, matmul_onnx, tmp_path, manifest,
                                                                             needle):
    db = _foreign_db(tmp_path / "db", **manifest)
    before = _digest(db)
    r = cli("tune", matmul_onnx, "--target", "llvm", "--trials", "2", "--db", db)
    assert r.code == 2
    assert r.err.startswith("error:") and "tuning database is for another setup" in r.err
    import re
    assert re.search(needle, r.err.replace("\n", ""))
    assert _digest(db) == before


def test_compile_tuning_db_from_other_arch_is_one_error(cli, matmul_onnx, tmp_path):
    db = _foreign_db(tmp_path / "db", target_kind="cuda", arch="sm_80")
    r = cli("compile", matmul_onnx, "--target", "llvm", "--tuning-db", db, "-o", tmp_path / "out")
    assert r.code == 2 and "tuning database is for another setup" in r.err
    assert not (tmp_path / "out").exists()


def test_records_without_manifest_are_refused(cli, matmul_onnx, tmp_path):
    db = tmp_path / "db"
    db.mkdir()
    (db / tuning.WORKLOAD_FILE).write_text("")
    r = cli("tune", matmul_onnx, "--target", "llvm", "--trials", "2", "--db", db)
    assert r.code == 2 and "no manifest.json next to MetaSchedule records" in r.err.replace("\n", " ")
    assert not (db / tuning.MANIFEST).exists()


def test_unreachable_tracker_fails_fast(cli, matmul_onnx, tmp_path):
    from tests.tune.conftest import free_port
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    r = cli("tune", matmul_onnx, "--target", "llvm", "--trials", "2", "--db", tmp_path / "db",
            "--rpc", f"127.0.0.1:{port}", "--key", "k")
    assert r.code == 2 and f"cannot reach RPC tracker 127.0.0.1:{port}" in r.err.replace("\n", " ")
    assert time.monotonic() - t0 < 30
    assert not (tmp_path / "db").exists()


def test_silent_tracker_address_times_out_within_bound():
    """A host that drops packets (TEST-NET-1, RFC 5737) answers nothing: the check gives up at its timeout."""
    from hwcomp.backends.tvm_cuda.rpc import RPCError, tracker_summary
    t0 = time.monotonic()
    with pytest.raises(RPCError, match="RPC tracker 192.0.2.1:9190|cannot reach RPC tracker 192.0.2.1:9190"):
        tracker_summary("192.0.2.1", 9190, timeout=2)
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("args, match", [
    (["--rpc", "localhost", "--key", "k"], "expected TRACKER_HOST:PORT"),
    (["--rpc", "127.0.0.1:9190"], "needs --key KEY"),
    (["--key", "k"], "needs --rpc TRACKER_HOST:PORT"),
    (["--ops", "dense,conv"], "--ops conv: unknown op class"),
    (["--target", "fpga"], "hwcomp tune supports cuda and llvm"),
    (["--target", "cuda", "--arch", "sm_1"], "unknown CUDA arch 'sm_1'"),
])
def test_bad_options_are_one_error(cli, matmul_onnx, tmp_path, args, match):
    base = ["tune", matmul_onnx, "--trials", "2", "--db", tmp_path / "db"]
    if "--target" not in args:
        base += ["--target", "llvm"]
    r = cli(*base, *args)
    assert r.code == 2 and match in r.err.replace("\n", " "), r.err


def test_unknown_key_is_one_error(cli, matmul_onnx, tmp_path, rpc_cluster):
    port = rpc_cluster.start_tracker()
    r = cli("tune", matmul_onnx, "--target", "llvm", "--trials", "2", "--db", tmp_path / "db",
            "--rpc", f"127.0.0.1:{port}", "--key", "no-such-key")
    assert r.code == 2 and "has no servers under key 'no-such-key'" in r.err.replace("\n", " ")


def test_torn_record_line_is_dropped_on_open(tmp_path):
    """A kill in the middle of an append leaves half a line; opening the database drops it."""
    target = tuning.make_target("llvm", "")
    db = tmp_path / "db"
    tuning.open_database(db, target, create=True)
    (db / tuning.RECORD_FILE).write_text('[0, ["tr')  # torn
    tuning.open_database(db, target)
    assert (db / tuning.RECORD_FILE).read_text().strip() == ""
