// hwcomp HLS kernel library: the integer kernels of a quantized hwcomp graph in synthesizable C++.
//
// Vitis HLS style (PIPELINE / ARRAY_PARTITION pragmas, fixed-width integer types only, no ap_int) so that
// the same source compiles with g++ for C simulation. Every kernel is bit-exact with hwcomp/ops/intmath.py,
// the integer specification:
//   * int32 accumulators wrap (two's complement) like intmath.wrap_int32;
//   * int64 intermediates wrap like numpy int64 (products and sums go through uint64, so no C++ UB);
//   * `>>` is an arithmetic shift (floor), `/` of possibly-negative numbers goes through floor_div.
// Copied verbatim into every generated project by backends/hls/generate.py. Do not edit the copy.
#pragma once

#include <math.h>
#include <stdint.h>

namespace hwc {

// ---- wrapping integer helpers -----------------------------------------------------------------------------

static inline int32_t add32(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int64_t add64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t sub64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t mul64(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// floor(a / b) for b != 0 (numpy's //); C++ '/' truncates towards zero.
static inline int64_t floor_div(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q -= 1;
    return q;
}

// ---- requantization epilogue (intmath.requantize / quantized._epilogue) -----------------------------------

// y = clamp(((acc * m + 2^(s-1)) >> s) + zp, lo, hi); int64 product, arithmetic shift (round half up).
static inline int64_t requantize(int64_t acc, int32_t m, int32_t s, int32_t zp, int64_t lo, int64_t hi) {
#pragma HLS INLINE
    int64_t y = add64(mul64(acc, (int64_t)m), (int64_t)1 << (s - 1)) >> s;
    return clamp64(y + (int64_t)zp, lo, hi);
}

// The epilogue of one output channel: integer requantization (+ relu as max(y, zp)) or the float dequant
// epilogue float32(acc) * out_scale (+ relu). Only scalars here (no pointers in structs, for synthesis): the
// per-channel vectors travel as separate array arguments `mult`, `shift`, `fscale` (a one-entry dummy where
// unused, see kNone*); `m_step` / `f_step` are 1 for per-channel vectors, 0 for per-tensor scalars.
struct Epilogue {
    int m_step;
    int32_t zp;
    int64_t lo, hi;
    int f_step;
    int relu;
};

static const int32_t kNoneI32[1] = {0};
static const float kNoneF32[1] = {0.0f};
static const int64_t kNoneI64[1] = {0};

template <typename OutT>
struct Epi {
    static inline OutT apply(int64_t acc, int ch, const int32_t* mult, const int32_t* shift, const float* fscale,
                             const Epilogue& e) {
#pragma HLS INLINE
        int64_t y = requantize(acc, mult[ch * e.m_step], shift[ch * e.m_step], e.zp, e.lo, e.hi);
        if (e.relu && y < e.zp) y = e.zp;
        return (OutT)y;
    }
};

template <>
struct Epi<float> {
    static inline float apply(int64_t acc, int ch, const int32_t* mult, const int32_t* shift, const float* fscale,
                              const Epilogue& e) {
#pragma HLS INLINE
        float y = (float)acc * fscale[ch * e.f_step];
        if (e.relu && y < 0.0f) y = 0.0f;
        return y;
    }
};

#define HWC_EPI_ARGS const int32_t *mult, const int32_t *shift, const float *fscale, const Epilogue &e
#define HWC_EPI mult, shift, fscale, e

// ---- tiled int8 GEMM with the requantization epilogue (qdense) --------------------------------------------

// y[M, N] = epilogue(wrap_int32(sum_k (x[m, k] - x_zp) * w[k, n] + bias[n])).
// TM x TN output tiles (TN = array columns), K consumed TK (= array rows) at a time; the inner TK x TN
// multiply-accumulate is the systolic array: fully unrolled, one row of A per cycle (II=1).
// Partial tiles are padded with x_zp (A) and 0 (W), which contribute exactly 0 to every sum.
template <int TM, int TN, int TK, typename XT, typename WT, typename OutT>
void qdense(const XT* x, const WT* w, const int32_t* bias, int has_bias, int M, int K, int N, int32_t x_zp,
            HWC_EPI_ARGS, OutT* y) {
    XT a_buf[TM][TK];
    WT w_buf[TK][TN];
    int32_t acc[TM][TN];
#pragma HLS ARRAY_PARTITION variable=a_buf complete dim=2
#pragma HLS ARRAY_PARTITION variable=w_buf complete dim=0
#pragma HLS ARRAY_PARTITION variable=acc complete dim=2
    for (int m0 = 0; m0 < M; m0 += TM) {
        const int mt = (M - m0) < TM ? (M - m0) : TM;
        for (int n0 = 0; n0 < N; n0 += TN) {
        init:
            for (int i = 0; i < mt; ++i) {
#pragma HLS PIPELINE II=1
                for (int j = 0; j < TN; ++j) acc[i][j] = (has_bias && n0 + j < N) ? bias[n0 + j] : 0;
            }
            for (int k0 = 0; k0 < K; k0 += TK) {
            load_w:
                for (int kk = 0; kk < TK; ++kk) {
#pragma HLS PIPELINE II=1
                    for (int j = 0; j < TN; ++j)
                        w_buf[kk][j] = (k0 + kk < K && n0 + j < N) ? w[(int64_t)(k0 + kk) * N + n0 + j] : (WT)0;
                }
            load_a:
                for (int i = 0; i < mt; ++i) {
#pragma HLS PIPELINE II=1
                    for (int kk = 0; kk < TK; ++kk)
                        a_buf[i][kk] = (k0 + kk < K) ? x[(int64_t)(m0 + i) * K + k0 + kk] : (XT)x_zp;
                }
            mac:
                for (int i = 0; i < mt; ++i) {
#pragma HLS PIPELINE II=1
                    for (int j = 0; j < TN; ++j) {
                        int32_t s = acc[i][j];
                        for (int kk = 0; kk < TK; ++kk)
                            s = add32(s, ((int32_t)a_buf[i][kk] - x_zp) * (int32_t)w_buf[kk][j]);
                        acc[i][j] = s;
                    }
                }
            }
        store:
            for (int i = 0; i < mt; ++i) {
                for (int j = 0; j < TN; ++j) {
#pragma HLS PIPELINE II=1
                    if (n0 + j < N) y[(int64_t)(m0 + i) * N + n0 + j] = Epi<OutT>::apply(acc[i][j], n0 + j, HWC_EPI);
                }
            }
        }
    }
}

// ---- I-BERT integer nonlinears (intmath.i_exp / int_softmax / int_gelu / isqrt / int_layer_norm) ----------

// i-exp of x <= 0: clamp to 30*ln2, z = floor(x / ln2), r = x - z*ln2, poly = r*(r + b) + c, max(poly, 0) >> z.
static inline int64_t i_exp(int64_t x, int64_t ln2, int64_t b, int64_t c) {
#pragma HLS INLINE
    x = max64(x, mul64(30, ln2));
    const int64_t z = floor_div(x, ln2);
    const int64_t r = sub64(x, mul64(z, ln2));
    const int64_t poly = add64(mul64(r, add64(r, b)), c);
    return max64(poly, 0) >> z;
}

// Integer softmax of one row of n values (in place into p): x -= max; e = i_exp(x); s = max(sum e, 1);
// factor = 2^62 / s; p = min((e * factor) >> (62 - pb), 2^pb - 1). `e` is scratch of n entries.
template <int NMAX>
void softmax_row(const int64_t* x, int n, int64_t ln2, int64_t b, int64_t c, int pb, int64_t* p) {
    int64_t e[NMAX];
    int64_t mx = x[0];
row_max:
    for (int j = 1; j < n; ++j) {
#pragma HLS PIPELINE II=1
        mx = max64(mx, x[j]);
    }
    int64_t s = 0;
row_exp:
    for (int j = 0; j < n; ++j) {
#pragma HLS PIPELINE II=1
        e[j] = i_exp(sub64(x[j], mx), ln2, b, c);
        s = add64(s, e[j]);
    }
    const int64_t factor = ((int64_t)1 << 62) / max64(s, 1);
    const int64_t pmax = ((int64_t)1 << pb) - 1;
row_norm:
    for (int j = 0; j < n; ++j) {
#pragma HLS PIPELINE II=1
        p[j] = min64(mul64(e[j], factor) >> (62 - pb), pmax);
    }
}

// Standalone int_softmax over the last axis: rows x n int values -> unsigned probabilities (units 2^-pb).
template <int NMAX, typename InT, typename OutT>
void int_softmax(const InT* x, int rows, int n, int64_t ln2, int64_t b, int64_t c, int pb, OutT* y) {
    int64_t xr[NMAX], pr[NMAX];
    for (int r = 0; r < rows; ++r) {
    load:
        for (int j = 0; j < n; ++j) {
#pragma HLS PIPELINE II=1
            xr[j] = (int64_t)x[(int64_t)r * n + j];
        }
        softmax_row<NMAX>(xr, n, ln2, b, c, pb, pr);
    store:
        for (int j = 0; j < n; ++j) {
#pragma HLS PIPELINE II=1
            y[(int64_t)r * n + j] = (OutT)pr[j];
        }
    }
}

// i-GELU, elementwise: t = min(|x|, b) - b; erf = sign(x) * (one - t*t); acc = x * (erf + one); epilogue.
template <typename InT, typename OutT>
void int_gelu(const InT* x, int64_t n, int64_t b_int, int64_t one_int, int channels, HWC_EPI_ARGS, OutT* y) {
gelu:
    for (int64_t i = 0; i < n; ++i) {
#pragma HLS PIPELINE II=1
        const int64_t v = (int64_t)x[i];
        const int64_t t = sub64(min64(v < 0 ? -v : v, b_int), b_int);
        const int64_t sgn = v > 0 ? 1 : (v < 0 ? -1 : 0);
        const int64_t erf = mul64(sgn, sub64(one_int, mul64(t, t)));
        y[i] = Epi<OutT>::apply(mul64(v, add64(erf, one_int)), (int)(i % channels), HWC_EPI);
    }
}

// floor(sqrt(n)) by Newton from 2^ceil(bitlength(n)/2), stopping when the iterate stops decreasing.
static inline int64_t isqrt(int64_t n) {
    if (n <= 0) return 0;
    int bl = 0;
bitlen:
    for (int i = 0; i < 63; ++i) {
#pragma HLS UNROLL
        if ((n >> i) != 0) bl = i + 1;
    }
    int64_t x = (int64_t)1 << ((bl + 1) / 2);
newton:
    for (int it = 0; it < 64; ++it) {
#pragma HLS PIPELINE II=1
        const int64_t nx = (x + n / x) >> 1;
        if (nx >= x) break;
        x = nx;
    }
    return x;
}

// Integer layer norm over rows of C channels: mean = floor(sum / C); y = x - mean;
// var = sum(y^2) + eps; std = max(isqrt(var), 1); factor = 2^31 / std; z = (y * factor) >> (31 - frac);
// acc = z * gamma + beta; epilogue per channel.
template <int CMAX, typename InT, typename OutT>
void int_layer_norm(const InT* x, int rows, int C, const int32_t* gamma, const int32_t* beta, int64_t eps,
                    int frac, HWC_EPI_ARGS, OutT* y) {
    int64_t xr[CMAX];
    for (int r = 0; r < rows; ++r) {
        int64_t sum = 0;
    ln_sum:
        for (int j = 0; j < C; ++j) {
#pragma HLS PIPELINE II=1
            xr[j] = (int64_t)x[(int64_t)r * C + j];
            sum = add64(sum, xr[j]);
        }
        const int64_t mean = floor_div(sum, C);
        int64_t var = 0;
    ln_var:
        for (int j = 0; j < C; ++j) {
#pragma HLS PIPELINE II=1
            const int64_t d = sub64(xr[j], mean);
            var = add64(var, mul64(d, d));
        }
        var = add64(var, eps);
        const int64_t sd = max64(isqrt(var), 1);
        const int64_t factor = ((int64_t)1 << 31) / sd;
    ln_out:
        for (int j = 0; j < C; ++j) {
#pragma HLS PIPELINE II=1
            const int64_t z = mul64(sub64(xr[j], mean), factor) >> (31 - frac);
            y[(int64_t)r * C + j] = Epi<OutT>::apply(add64(mul64(z, gamma[j]), beta[j]), j, HWC_EPI);
        }
    }
}

// ---- integer multi-head attention (quantized.qattention, softmax="int") ------------------------------------

// The additive float mask in score units, converted once per mask element (not per head and score):
// m = clip(rint(float64(mask) / score_scale), -2^30, 2^30) (quantized.qattention's host-side conversion).
static void mask_to_int(const float* mask, int64_t n, double score_scale, int64_t* m) {
mask_cvt:
    for (int64_t i = 0; i < n; ++i) {
#pragma HLS PIPELINE II=1
        const double big = (double)((int64_t)1 << 30);
        double t = rint((double)mask[i] / score_scale);
        t = t < -big ? -big : (t > big ? big : t);
        m[i] = (int64_t)t;
    }
}

// Element strides of the integer mask broadcast to [B, H, Sq, Sk] (0 on broadcast dims).
struct MaskStrides {
    int64_t sb, sh, sq, sk;
};

// q [B, Sq, H*D], k [B, Sk, H*D], v [B, Sk, H*Dv] int8 (zero point 0) -> y [B, Sq, H*Dv]:
// scores = wrap_int32(q_h . k_h) + mask_int (has_mask; see mask_to_int) (causal: -2^30 above the
// diagonal), p = softmax_row (I-BERT), acc = wrap_int32(p . v_h), epilogue per output channel h*Dv + d.
template <int SKMAX, int DMAX, typename QT, typename OutT>
void qattention(const QT* q, const QT* k, const QT* v, const int64_t* mask, int has_mask, MaskStrides ms, int B,
                int Sq, int Sk, int H, int D, int Dv, int causal, int64_t ln2, int64_t eb, int64_t ec, int pb,
                HWC_EPI_ARGS, OutT* y) {
    int64_t sc[SKMAX], p[SKMAX];
    QT qrow[DMAX];
#pragma HLS ARRAY_PARTITION variable=qrow complete
    const int HD = H * D, HDv = H * Dv;
    const int64_t big = (int64_t)1 << 30;
    for (int b = 0; b < B; ++b) {
        for (int h = 0; h < H; ++h) {
            for (int i = 0; i < Sq; ++i) {
                for (int d = 0; d < D; ++d) qrow[d] = q[((int64_t)b * Sq + i) * HD + h * D + d];
            scores:
                for (int j = 0; j < Sk; ++j) {
#pragma HLS PIPELINE II=1
                    int32_t s = 0;
                    for (int d = 0; d < D; ++d)
                        s = add32(s, (int32_t)qrow[d] * (int32_t)k[((int64_t)b * Sk + j) * HD + h * D + d]);
                    int64_t t = (int64_t)s;
                    if (has_mask) t = add64(t, mask[b * ms.sb + h * ms.sh + i * ms.sq + j * ms.sk]);
                    if (causal && j > i + (Sk - Sq)) t = -big;
                    sc[j] = t;
                }
                softmax_row<SKMAX>(sc, Sk, ln2, eb, ec, pb, p);
            pv:
                for (int d = 0; d < Dv; ++d) {
#pragma HLS PIPELINE II=1
                    int32_t s = 0;
                    for (int j = 0; j < Sk; ++j)
                        s = add32(s, (int32_t)p[j] * (int32_t)v[((int64_t)b * Sk + j) * HDv + h * Dv + d]);
                    y[((int64_t)b * Sq + i) * HDv + h * Dv + d] = Epi<OutT>::apply(s, h * Dv + d, HWC_EPI);
                }
            }
        }
    }
}

// ---- quantize / dequantize (ONNX QuantizeLinear / DequantizeLinear, float32) -------------------------------

// q = clip(rint(x / scale) + zp, lo, hi) in float32 (round half to even), scale per tensor or per channel.
template <typename OutT>
void quantize(const float* x, int64_t n, const float* scale, int s_step, int channels, float zp, float lo, float hi,
              OutT* y) {
quant:
    for (int64_t i = 0; i < n; ++i) {
#pragma HLS PIPELINE II=1
        float t = rintf(x[i] / scale[(i % channels) * s_step]) + zp;
        t = t < lo ? lo : (t > hi ? hi : t);
        y[i] = (OutT)t;
    }
}

// x = float32(q - zp) * scale.
template <typename InT>
void dequantize(const InT* q, int64_t n, const float* scale, int s_step, int channels, int64_t zp, float* y) {
dequant:
    for (int64_t i = 0; i < n; ++i) {
#pragma HLS PIPELINE II=1
        y[i] = (float)((int64_t)q[i] - zp) * scale[(i % channels) * s_step];
    }
}

}  // namespace hwc
