"""What the ONNX frontend does not support, in one place.

Ops: every op not registered in ``hwcomp.ops`` is unsupported; :data:`REJECTED_OPS` names those rejected
on purpose with the reason. Features: :data:`UNSUPPORTED_FEATURES` lists, as regular expressions over ONNX
backend node-test names, the cases of *supported* ops hwcomp deliberately does not cover, with the reason;
the node-test suite (tests/ops/test_onnx_node_tests.py) runs every other node test of a supported op.
"""

from __future__ import annotations

REJECTED_OPS: dict[str, str] = {
    "If": "control flow", "Loop": "control flow", "Scan": "control flow",
    "RandomNormal": "randomness", "RandomUniform": "randomness", "RandomNormalLike": "randomness",
    "RandomUniformLike": "randomness", "Multinomial": "randomness", "Bernoulli": "randomness",
}

UNSUPPORTED_FEATURES: dict[str, str] = {
    r"FLOAT8|FLOAT4|e4m3|e5m2|float4e2m1": "8/4-bit float element types",
    r"INT4|UINT4|int4|uint4|INT2|UINT2|int2|uint2": "sub-byte integer graph inputs/outputs (int4 weights inside "
                                                    "hwcomp are produced by its own quantizer)",
    r"STRING|string": "string tensors",
    r"bf16|BFLOAT16|bfloat16": "bfloat16 is computed in float32, not rounded to bfloat16 after each op",
    r"training": "training-mode Dropout/BatchNormalization (export in eval() mode)",
    r"test_identity_sequence|test_identity_opt": "sequence and optional types",
    r"causal_conv_with_state_silu_fp16": "float16 intermediate rounding differs by 1 ulp",
}
