"""RPC measurement for `hwcomp tune --rpc HOST:PORT --key KEY`: check the tracker up front, build the runner.

The tracker and the servers are TVM's own (see README, "Autotuning"):

    python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port 9190
    python -m tvm.exec.rpc_server --tracker TRACKER_HOST:9190 --key h100   # on each GPU host

Before any tuning starts, :func:`check_tracker` connects with a socket timeout, speaks the tracker's
handshake and asks for its summary, so an unreachable tracker or a key with no servers is one clear error
within ``timeout`` seconds instead of MetaSchedule's minute of retries per candidate.
"""

from __future__ import annotations

import logging
import socket
import struct
from dataclasses import dataclass

from hwcomp.errors import BackendError

log = logging.getLogger(__name__)

TRACKER_TIMEOUT_S = 5.0


class RPCError(BackendError):
    """The RPC tracker is unreachable, is not a tracker, or has no servers under the requested key."""


@dataclass(frozen=True)
class RPCTarget:
    host: str
    port: int
    key: str

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"


def parse_rpc(rpc: str, key: str | None) -> RPCTarget:
    """'HOST:PORT' and a key -> RPCTarget; bad spellings are one clear error."""
    if not rpc:
        raise RPCError(f"--key {key} needs --rpc TRACKER_HOST:PORT (the rpc_tracker the servers registered with)")
    host, sep, port = rpc.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RPCError(f"--rpc {rpc!r}: expected TRACKER_HOST:PORT, e.g. 127.0.0.1:9190")
    if not key:
        raise RPCError(f"--rpc {rpc} needs --key KEY: the key the rpc servers registered with "
                       "(python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY)")
    return RPCTarget(host, int(port), key)


def tracker_summary(host: str, port: int, timeout: float = TRACKER_TIMEOUT_S) -> dict:
    """The tracker's summary dict ({"queue_info": {key: {"free", "pending"}}, "server_info": [...]}),
    or RPCError within about ``timeout`` seconds."""
    from tvm.rpc import base

    where = f"RPC tracker {host}:{port}"
    hint = ("start one with `python -m tvm.exec.rpc_tracker --host 0.0.0.0 --port PORT` (ports above 9199 "
            "also need --port-end) and check the host, port and firewall")
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.timeout:
        raise RPCError(f"{where} did not answer within {timeout:g} s; {hint}") from None
    except OSError as e:
        raise RPCError(f"cannot reach {where} ({e.strerror or e}); {hint}") from None
    try:
        sock.settimeout(timeout)
        sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
        magic = struct.unpack("<i", base.recvall(sock, 4))[0]
        if magic != base.RPC_TRACKER_MAGIC:
            raise RPCError(f"{host}:{port} answered but is not an RPC tracker (is it an rpc_server port?)")
        base.sendjson(sock, [base.TrackerCode.SUMMARY])
        value = base.recvjson(sock)
        if value[0] != base.TrackerCode.SUCCESS:
            raise RPCError(f"{where} refused the summary request: {value!r}")
        return value[1]
    except (socket.timeout, OSError, struct.error, ValueError, RuntimeError) as e:
        raise RPCError(f"{where} accepted the connection but did not complete the tracker handshake within "
                       f"{timeout:g} s ({type(e).__name__}: {e}); is {host}:{port} a tvm rpc_tracker?") from None
    finally:
        sock.close()


def servers_for_key(summary: dict, key: str) -> int:
    """How many servers are registered under ``key`` (free or busy)."""
    n = sum(1 for s in summary.get("server_info", []) if s.get("key", "").split(":", 1)[-1] == key)
    q = summary.get("queue_info", {}).get(key, {})
    return max(n, int(q.get("free", 0)))


def check_tracker(rpc: RPCTarget, timeout: float = TRACKER_TIMEOUT_S) -> int:
    """Fail fast unless the tracker answers and has at least one server under the key; returns their count."""
    summary = tracker_summary(rpc.host, rpc.port, timeout)
    n = servers_for_key(summary, rpc.key)
    if n == 0:
        keys = sorted({s.get("key", "").split(":", 1)[-1] for s in summary.get("server_info", [])}
                      | set(summary.get("queue_info", {})))
        raise RPCError(f"RPC tracker {rpc.addr} has no servers under key {rpc.key!r} (keys there: "
                       f"{', '.join(keys) if keys else 'none'}); start one on each GPU host with `python -m "
                       f"tvm.exec.rpc_server --tracker {rpc.addr} --key {rpc.key}`")
    log.info("RPC tracker %s: %d server(s) under key %r", rpc.addr, n, rpc.key)
    return n


def make_rpc_runner(rpc: RPCTarget, n_servers: int, evaluator_config, session_timeout_s: int = 120):
    """MetaSchedule's RPCRunner against the tracker, one concurrent session per server."""
    from tvm.s_tir import meta_schedule as ms

    config = ms.runner.RPCConfig(tracker_host=rpc.host, tracker_port=rpc.port, tracker_key=rpc.key,
                                 session_timeout_sec=session_timeout_s)
    return ms.runner.RPCRunner(rpc_config=config, evaluator_config=evaluator_config, max_workers=max(1, n_servers))
