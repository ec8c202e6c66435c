"""`hwcomp tune --rpc HOST:PORT --key KEY` against a real tracker and two rpc_servers on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from tests.tune.conftest import QUICK, counts, hwcomp_cli, records

pytestmark = [pytest.mark.tvm, pytest.mark.slow]


def test_tune_through_tracker_and_two_servers(rpc_cluster, matmul_onnx, tmp_path):
    port = rpc_cluster.start_tracker()
    logs = [rpc_cluster.start_server("hwcomp-test"), rpc_cluster.start_server("hwcomp-test")]
    rpc_cluster.wait_servers("hwcomp-test", 2)

    db = tmp_path / "db"
    r = hwcomp_cli("tune", matmul_onnx, *QUICK, "--trials", "4", "--db", db, "--rpc", f"127.0.0.1:{port}",
                   "--key", "hwcomp-test")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 server(s)" in r.stdout
    assert list(counts(db).values()) == [4]
    measured = [rec for rec in records(db) if min(rec[1][1]) < 1e9]
    assert measured, "no candidate was measured successfully through RPC"
    # Every measurement is one RPC session on some server: the servers' logs account for them.
    sessions = [log.read_text().count("connected from") for log in logs]
    assert sum(sessions) >= len(measured), sessions
    m = json.loads((db / "manifest.json").read_text())
    assert m["sessions"][-1]["runner"] == "RPCRunner"
    print(f"sessions per server: {sessions}")
