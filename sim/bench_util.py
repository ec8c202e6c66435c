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


def read_hex_bytes(path: str, n: int) -> np.ndarray:
    """A ``$writememh`` byte image (``// 0x..`` address comment lines are skipped)."""
    with open(path, encoding="ascii") as f:
        vals = [int(ln, 16) for ln in (raw.split("//")[0].strip() for raw in f) if ln]
    out = np.zeros(n, np.uint8)
    out[: len(vals)] = vals[:n]
    return out
