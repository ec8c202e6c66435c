"""Fixtures for `hwcomp tune`: a one-kernel model, a tuned database shared by the module, an RPC cluster
(tracker + two servers on 127.0.0.1) whose processes are killed by process group on teardown."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.builders import make_model

pytest.importorskip("tvm")

# Small and quick: a population of 16 keeps the evolutionary search at seconds per batch on a loaded box.
QUICK = ["--target", "llvm", "--ops", "dense", "--per-iter", "4", "--population", "16", "--seed", "0"]


@pytest.fixture(scope="session")
def matmul_onnx(tmp_path_factory) -> Path:
    """y = relu(x @ W + b), x: 64x64 -> one fused `dense` kernel."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 64)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    m = make_model([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["z"]),
                    helper.make_node("Relu", ["z"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 64])], {"w": w, "b": b})
    path = tmp_path_factory.mktemp("tune_model") / "mm.onnx"
    onnx.save(m, path)
    return path


def records(db: Path) -> list[list]:
    """The JSONDatabase's tuning records, one parsed line each: [workload index, [trace, run_secs, ...]]."""
    f = db / "database_tuning_record.json"
    return [json.loads(ln) for ln in f.read_text().splitlines() if ln.strip()] if f.exists() else []


def counts(db: Path) -> Counter:
    return Counter(r[0] for r in records(db))


def hwcomp_cli(*args: str, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).with_name("hwcomp")), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RPCCluster:
    """`python -m tvm.exec.rpc_tracker` and rpc_server processes, each in its own process group."""

    def __init__(self, logdir: Path):
        self.logdir = logdir
        self.procs: list[tuple[subprocess.Popen, Path]] = []
        self.port = 0

    def _spawn(self, name: str, args: list[str]) -> Path:
        log = self.logdir / f"{name}.log"
        fh = open(log, "w")
        p = subprocess.Popen([sys.executable, "-m", *args], stdout=fh, stderr=subprocess.STDOUT,
                             start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        fh.close()
        self.procs.append((p, log))
        return log

    def start_tracker(self) -> int:
        self.port = free_port()
        self._spawn("tracker", ["tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(self.port),
                                "--port-end", str(self.port + 1), "--silent"])
        from hwcomp.backends.tvm_cuda.rpc import RPCError, tracker_summary
        deadline = time.monotonic() + 180
        while True:
            try:
                tracker_summary("127.0.0.1", self.port, timeout=2)
                return self.port
            except RPCError:
                if time.monotonic() > deadline or self.procs[0][0].poll() is not None:
                    raise RuntimeError(f"rpc_tracker did not start: {self.procs[0][1].read_text()[-2000:]}")
                time.sleep(1)

    def start_server(self, key: str) -> Path:
        p = free_port()
        return self._spawn(f"server{len(self.procs)}", [
            "tvm.exec.rpc_server", "--tracker", f"127.0.0.1:{self.port}", "--key", key, "--host", "127.0.0.1",
            "--port", str(p), "--port-end", str(p + 1)])

    def wait_servers(self, key: str, n: int, timeout: float = 300) -> None:
        from hwcomp.backends.tvm_cuda.rpc import servers_for_key, tracker_summary
        deadline = time.monotonic() + timeout
        while servers_for_key(tracker_summary("127.0.0.1", self.port), key) < n:
            dead = [log for p, log in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"rpc servers did not register: {[log.read_text()[-1500:] for log in dead]}")
            time.sleep(1)

    def stop(self) -> None:
        for p, _ in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p, _ in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)


@pytest.fixture
def rpc_cluster(tmp_path):
    c = RPCCluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()
