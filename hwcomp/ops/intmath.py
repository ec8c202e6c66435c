"""Integer arithmetic shared by the interpreter, the quantizer, the RTL and the GPU backends.

Everything here is bit-exact by definition: this file *is* the specification the hardware implements.

Requantization (int32 accumulator -> int8) follows TFLite's single-rounding scheme:
a real multiplier ``r > 0`` is represented as ``multiplier * 2**-shift`` with ``multiplier`` an int32 in
[2**30, 2**31) and ``shift`` a right-shift amount in [1, 62]. Then::

    y = clamp(((acc * multiplier + 2**(shift-1)) >> shift) + zero_point, qmin, qmax)

where the product is formed in int64, ``>>`` is an arithmetic shift (floor), so the rounding is
round-half-up (towards +inf), and the clamp saturates. One 32x32->64 multiply, one add, one shift:
cheap in RTL, exact on every target.
"""

from __future__ import annotations

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def quantize_multiplier(real: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Split real multipliers (> 0) into (multiplier int32 in [2^30, 2^31), right shift in [1, 62])."""
    r = np.atleast_1d(np.asarray(real, dtype=np.float64))
    if np.any(~np.isfinite(r)) or np.any(r <= 0):
        raise ValueError(f"requantization multipliers must be finite and > 0, got min {r.min()!r}")
    mant, exp = np.frexp(r)  # r = mant * 2**exp, mant in [0.5, 1)
    m = np.round(mant * (1 << 31)).astype(np.int64)
    carry = m == (1 << 31)
    m[carry] //= 2
    exp = exp + carry
    shift = 31 - exp
    # Multipliers too small for the shift range flush towards the smallest representable value.
    too_small = shift > 62
    m[too_small] = np.maximum(m[too_small] >> np.minimum(shift[too_small] - 62, 63), 0)
    shift = np.clip(shift, None, 62)
    if np.any(shift < 1):
        raise ValueError(f"requantization multiplier {r.max():.6g} too large (needs shift < 1)")
    return m.astype(np.int32), shift.astype(np.int32)


def requantize(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray, zero_point: int | np.ndarray,
               qmin: int = -128, qmax: int = 127) -> np.ndarray:
    """int32 accumulator -> saturated int of [qmin, qmax], multiplier/shift broadcast along the last axis."""
    acc64 = np.asarray(acc).astype(np.int64)
    m = np.asarray(multiplier).astype(np.int64)
    s = np.asarray(shift).astype(np.int64)
    y = (acc64 * m + (np.int64(1) << (s - 1))) >> s
    y = y + np.asarray(zero_point, dtype=np.int64)
    return np.clip(y, qmin, qmax).astype(np.int8 if qmax <= 127 and qmin >= -128 else np.int32)


def wrap_int32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of an int64 array into int32 (what a 32-bit accumulator does on overflow)."""
    return np.asarray(x).astype(np.int64).astype(np.int32)


def int_matmul(a: np.ndarray, b: np.ndarray, a_zero: int | np.ndarray = 0, b_zero: int | np.ndarray = 0) -> np.ndarray:
    """(a - a_zero) @ (b - b_zero) accumulated exactly and wrapped to int32, batched like np.matmul."""
    a64 = np.asarray(a).astype(np.int64) - np.asarray(a_zero, dtype=np.int64)
    b64 = np.asarray(b).astype(np.int64) - np.asarray(b_zero, dtype=np.int64)
    return wrap_int32(np.matmul(a64, b64))


def round_half_even_clip(x: np.ndarray, qmin: int, qmax: int) -> np.ndarray:
    """ONNX QuantizeLinear rounding: round half to even, then saturate."""
    return np.clip(np.rint(x), qmin, qmax)
