"""FLOPs / bytes / roofline floor of hwcomp's kernels, for report.json.

``floor_us = max(flops / peak_flops, bytes / bandwidth)``: each input read once, each output written once.
Peaks are measured figures of this workplace's GPUs (docs/baselines.md, device KINDS.md), not datasheets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Measured: dense bf16/fp16 GEMM TFLOP/s, int8 TOP/s, device-to-device copy TB/s (read + write).
PEAKS = {
    "h100": {"f16_tflops": 798.0, "i8_tops": 891.0 * 798 / 786, "f32_simt_tflops": 60.0, "tbps": 3.0},
    "h200": {"f16_tflops": 786.0, "i8_tops": 891.0, "f32_simt_tflops": 60.0, "tbps": 4.2},
}


@dataclass(frozen=True)
class KernelCost:
    name: str
    flops: float
    bytes: float
    unit: str  # which peak bounds the arithmetic: f16_tflops, i8_tops, f32_simt_tflops

    def floor_us(self, gpu: str = "h100") -> float:
        p = PEAKS[gpu]
        return max(self.flops / (p[self.unit] * 1e12), self.bytes / (p["tbps"] * 1e12)) * 1e6

    def as_dict(self, measured_us: float | None = None, gpu: str = "h100") -> dict:
        d = asdict(self) | {"floor_us": self.floor_us(gpu), "bound": self.bound(gpu)}
        if measured_us is not None:
            d |= {"measured_us": measured_us, "fraction_of_floor": self.floor_us(gpu) / measured_us,
                  "achieved_tflops": self.flops / measured_us / 1e6,
                  "achieved_tbps": self.bytes / measured_us / 1e6}
        return d

    def bound(self, gpu: str = "h100") -> str:
        p = PEAKS[gpu]
        return "compute" if self.flops / (p[self.unit] * 1e12) > self.bytes / (p["tbps"] * 1e12) else "memory"


def dense_cost(m: int, n: int, k: int, in_bytes: int = 2, out_bytes: int = 2, bias_bytes: int = 2,
               name: str = "dense_f16") -> KernelCost:
    unit = "i8_tops" if in_bytes == 1 else "f16_tflops"
    return KernelCost(name, 2.0 * m * n * k, (m * k + k * n) * in_bytes + m * n * out_bytes + n * bias_bytes, unit)


def qdense_cost(m: int, n: int, k: int, epilogue: str = "requant") -> KernelCost:
    out = 1 if epilogue == "requant" else 2
    c = dense_cost(m, n, k, 1, out, 0, f"qdense_{epilogue}")
    per_channel = n * (12 if epilogue == "requant" else 8)  # bias + multiplier + shift / bias + scale
    return KernelCost(c.name, c.flops, c.bytes + per_channel, c.unit)


def gemv_int4_cost(m: int, n: int, k: int, group: int = 128) -> KernelCost:
    return KernelCost("gemv_int4", 2.0 * m * n * k, m * k * 2 + n * k / 2 + 2 * n * (k // group) * 2 + m * n * 2,
                      "f16_tflops")


def layer_norm_cost(m: int, c: int, residual: bool = False) -> KernelCost:
    ios = 4 if residual else 2  # x, [residual], y, [sum]
    return KernelCost("add_layer_norm" if residual else "layer_norm", 8.0 * m * c, ios * m * c * 2 + 4 * c,
                      "f32_simt_tflops")


def gelu_cost(numel: int) -> KernelCost:
    return KernelCost("gelu", 20.0 * numel, 4.0 * numel, "f32_simt_tflops")


def attention_cost(b: int, s_q: int, s_k: int, h: int, d: int, fused: bool = False) -> KernelCost:
    """Fused floor (q, k, v, mask in, out once); ``fused=False`` adds the scores/probs round trips."""
    flops = 4.0 * b * h * s_q * s_k * d
    io = 2 * (b * s_q * h * d * 2 + b * s_k * h * d) + 4 * b * s_k
    if not fused:
        io += b * h * s_q * s_k * (4 + 4 + 2 + 2)  # scores fp32 write+read, probs fp16 write+read
    return KernelCost("attention" if fused else "attention_3kernel", flops, io, "f16_tflops")
