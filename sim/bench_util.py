"""Helpers shared by the cocotb benches: config I/O, clock/reset, signed packing of lane buses."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from hwcomp.hardware import HardwareParams


def load_config() -> dict:
    with open(os.environ["HWCOMP_BENCH_CFG"], encoding="utf-8") as f:
        return json.load(f)


def save_outputs(outputs: dict) -> None:
    with open(os.environ["HWCOMP_BENCH_OUT"], "w", encoding="utf-8") as f:
        json.dump(outputs, f, sort_keys=True)


def hw_from(cfg: dict) -> HardwareParams:
    return HardwareParams(**cfg["hw"])


def pack(values: Sequence[int], bits: int) -> int:
    """Lane i of a bus is bits [bits*i +: bits] (two's complement)."""
    mask = (1 << bits) - 1
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & mask) << (bits * i)
    return out


def unpack(word: int, bits: int, n: int) -> list[int]:
    mask = (1 << bits) - 1
    half = 1 << (bits - 1)
    return [(((word >> (bits * i)) & mask) ^ half) - half for i in range(n)]


_HEXDIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)


def hex_lines(raw: np.ndarray) -> bytes:
    """Bytes as ``$readmemh`` text for ``reg [7:0] mem[]``: two hex digits and a newline per byte (vectorised:
    a 4 MB image in a few ms)."""
    b = np.asarray(raw, np.uint8).ravel()
    out = np.empty((b.size, 3), np.uint8)
    out[:, 0] = _HEXDIGITS[b >> 4]
    out[:, 1] = _HEXDIGITS[b & 15]
    out[:, 2] = 10
    return out.tobytes()


def parse_hex_bytes(text: bytes) -> np.ndarray:
    """The bytes of ``$writememh`` text of a byte memory: ``//`` comments and ``@`` address lines skipped."""
    if b"/" in text or b"@" in text:
        text = b"\n".join(ln for ln in (raw.split(b"//")[0].strip() for raw in text.splitlines())
                          if ln and not ln.startswith(b"@"))
    try:
        return np.frombuffer(bytes.fromhex(text.decode("ascii")), np.uint8).copy()   # skips whitespace
    except ValueError:   # not two digits per line (e.g. a simulator that drops leading zeros)
        return np.array([int(v, 16) for v in text.split()], np.uint8)


def read_hex_bytes(path: str, n: int) -> np.ndarray:
    """A ``$writememh`` byte image, zero-padded or cut to ``n`` bytes."""
    with open(path, "rb") as f:
        vals = parse_hex_bytes(f.read())
    out = np.zeros(n, np.uint8)
    out[: min(n, vals.size)] = vals[:n]
    return out
