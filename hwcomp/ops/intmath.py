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


# ---- additions for the quantized ops (hwcomp/ops/quantized.py) ---------------------------------------------
# Everything below is exact integer arithmetic on int64 intermediates (floor division and arithmetic shifts
# round towards -inf). The compile-time constants (b_int, c_int, ...) are computed by the quantizer from
# float scales and handed to these functions as integers, so the run-time algorithm never touches floats.

def int_matmul_fast(a: np.ndarray, b: np.ndarray, a_zero: int | np.ndarray = 0) -> np.ndarray:
    """Same result as :func:`int_matmul` (b_zero = 0), computed with float64 BLAS when that is exact.

    float64 holds every integer below 2**53 exactly, and each partial sum of K products of magnitude at
    most |a|max*|b|max stays below K*|a|max*|b|max; when that bound is < 2**53 the BLAS result is exact.
    """
    a64 = np.asarray(a).astype(np.int64) - np.asarray(a_zero, dtype=np.int64)
    b64 = np.asarray(b).astype(np.int64)
    k = a64.shape[-1]
    bound = k * (int(np.abs(a64).max(initial=0)) * int(np.abs(b64).max(initial=0)))
    if bound < (1 << 53):
        af, bf = a64.astype(np.float64), b64.astype(np.float64)
        if bf.ndim == 2 and af.ndim > 2:  # one 2-D GEMM (numpy loops over batch dims otherwise)
            y = np.matmul(af.reshape(-1, k), bf).reshape(af.shape[:-1] + bf.shape[1:])
        else:
            y = np.matmul(af, bf)
        return wrap_int32(np.rint(y).astype(np.int64))
    return wrap_int32(np.matmul(a64, b64))


def i_exp(x: np.ndarray, ln2_int: int, b_int: int, c_int: int, max_shift: int = 30) -> np.ndarray:
    """I-BERT integer exp of x <= 0 (units S): returns e >= 0 in units a*S^2 (a = 0.35815147).

    ln2_int = floor(-ln2 / S) (< 0), b_int = floor((0.96963238/a) / S), c_int = floor((1/a) / S^2).
    x is clamped to >= max_shift*ln2_int; z = floor(x / ln2_int) >= 0; r = x - z*ln2_int in (ln2_int, 0];
    poly = r*(r + b_int) + c_int  (a*poly*S^2 ~ exp(r*S) on (-ln2, 0]); e = poly >> z.
    """
    x = np.maximum(np.asarray(x, dtype=np.int64), max_shift * ln2_int)
    z = x // ln2_int
    r = x - z * ln2_int
    poly = r * (r + b_int) + c_int
    return np.maximum(poly, 0) >> z


def int_softmax(x: np.ndarray, ln2_int: int, b_int: int, c_int: int, prob_bits: int = 8) -> np.ndarray:
    """Integer softmax over the last axis: x int (units S) -> probabilities p in [0, 2^prob_bits - 1]
    (units 2^-prob_bits).

    x -= rowmax(x); e = i_exp(x); s = rowsum(e) (>= 1); factor = floor(2^62 / s) (one division per row);
    p = min((e * factor) >> (62 - prob_bits), 2^prob_bits - 1). e*factor <= 2^62: no int64 overflow.
    """
    x = np.asarray(x, dtype=np.int64)
    x = x - x.max(axis=-1, keepdims=True)
    e = i_exp(x, ln2_int, b_int, c_int)
    s = np.maximum(e.sum(axis=-1, keepdims=True), 1)
    factor = (np.int64(1) << 62) // s
    p = (e * factor) >> (62 - prob_bits)
    return np.minimum(p, (1 << prob_bits) - 1)


def int_gelu(x: np.ndarray, b_int: int, one_int: int) -> np.ndarray:
    """I-BERT i-GELU on x int (units S, zero point 0): returns acc (int64) in units S*sc/2,
    sc = 0.2888*(S/sqrt2)^2, b_int = floor(1.769/(S/sqrt2)), one_int = floor(1/sc).

    erf_int = sign(x) * (one_int - (min(|x|, b_int) - b_int)^2)   (erf(x*S/sqrt2) ~ erf_int*sc)
    acc = x * (erf_int + one_int)                                     (gelu = x*S/2 * (1 + erf))
    """
    x = np.asarray(x, dtype=np.int64)
    t = np.minimum(np.abs(x), b_int) - b_int
    erf = np.sign(x) * (one_int - t * t)
    return x * (erf + one_int)


def isqrt(n: np.ndarray) -> np.ndarray:
    """floor(sqrt(n)) of int64 n >= 0 by Newton's iteration x' = (x + n // x) >> 1 from
    x0 = 2^ceil(bitlength(n)/2) (>= sqrt(n)), stopping when x' >= x. Returns 0 for n = 0."""
    n = np.asarray(n, dtype=np.int64)
    bl = np.zeros(n.shape, np.int64)
    t = n.copy()
    while np.any(t > 0):  # bit length, as the RTL's leading-zero count
        bl += t > 0
        t >>= 1
    x = np.where(n > 0, np.int64(1) << ((bl + 1) // 2), 0)
    active = n > 0
    while np.any(active):
        safe = np.where(active, x, 1)
        nx = (safe + n // safe) >> 1
        active = active & (nx < x)
        x = np.where(active, nx, x)
    return x


def int_layer_norm(x: np.ndarray, gamma_int: np.ndarray, beta_int: np.ndarray, eps_int: int,
                   frac_bits: int = 14) -> np.ndarray:
    """Integer layer norm over the last axis (C channels) of x int (units S, zero point 0); returns
    acc (int64) in units u = sqrt(C) * s_gamma / 2^frac_bits.

    mean = floor(sum(x) / C); y = x - mean; var = sum(y^2) + eps_int (eps_int = round(C*eps/S^2));
    std = isqrt(var) (>= 1 enforced); factor = floor(2^31 / std); z = (y * factor) >> (31 - frac_bits)
    (z ~ y/std * 2^frac_bits, i.e. the normalised value / sqrt(C)); acc = z * gamma_int + beta_int.
    """
    x = np.asarray(x, dtype=np.int64)
    c = x.shape[-1]
    mean = x.sum(axis=-1, keepdims=True) // c
    y = x - mean
    var = (y * y).sum(axis=-1, keepdims=True) + int(eps_int)
    std = np.maximum(isqrt(var), 1)
    factor = (np.int64(1) << 31) // std
    z = (y * factor) >> (31 - frac_bits)
    return z * np.asarray(gamma_int, np.int64) + np.asarray(beta_int, np.int64)
