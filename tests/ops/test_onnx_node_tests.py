"""ONNX's backend node tests, for every op hwcomp claims to support, through hwcomp's frontend + interpreter."""

import warnings

import numpy as np
import pytest

from hwcomp.frontend.onnx_backend import HwcompBackend, _arr, node_test_cases
from hwcomp.ops import supported_ops

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    CASES = node_test_cases(supported_ops())

RESULTS = {"passed": 0}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node(case):
    for inputs, outputs in case.data_sets:
        got = HwcompBackend.run_model(case.model, [_arr(a) for a in inputs])
        assert len(got) == len(outputs)
        for g, r in zip(got, outputs):
            r = _arr(r)
            assert g.shape == r.shape, f"{case.name}: shape {g.shape} != {r.shape}"
            np.testing.assert_allclose(g.astype(np.float64), r.astype(np.float64), rtol=case.rtol, atol=case.atol,
                                       equal_nan=True)
    RESULTS["passed"] += 1


def test_node_suite_covers_every_supported_onnx_op():
    """Every ONNX op hwcomp registers is exercised by at least one node test (hwcomp's own ops excluded)."""
    covered = {n.op_type for c in CASES for n in c.model.graph.node}
    onnx_ops = {o for o in supported_ops() if o[0].isupper()}
    missing = sorted(onnx_ops - covered)
    print(f"\nONNX node tests selected: {len(CASES)} covering {len(covered & onnx_ops)}/{len(onnx_ops)} supported ONNX ops")
    assert len(missing) <= 3, f"supported ONNX ops without a node test: {missing}"
