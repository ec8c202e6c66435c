"""`hwcomp compile --quant int8` without --calib calibrates on the zoo's sentences: at least 32 distinct ones, in as
few batches of the graph's bound shape as hold them (a batch-32 compile runs one batch through the interpreter, not
a fixed number of batches of 32 cycling the same 96 sentences)."""

from types import SimpleNamespace

import numpy as np
import pytest

from hwcomp.cli.compile import builtin_calibration
from hwcomp.errors import QuantizationError


def _graph(batch, seq=16, names=("input_ids", "attention_mask", "token_type_ids")):
    return SimpleNamespace(inputs=list(names), types={"input_ids": SimpleNamespace(shape=(batch, seq))})


@pytest.mark.parametrize("batch, sets", [(1, 32), (3, 11), (8, 4), (32, 1), (64, 1)])
def test_builtin_calibration_covers_32_sentences_in_the_fewest_batches(batch, sets):
    cal = builtin_calibration(_graph(batch))
    assert len(cal) == sets
    for feed in cal:
        assert set(feed) == {"input_ids", "attention_mask", "token_type_ids"}
        assert feed["input_ids"].shape == (batch, 16) and not feed["token_type_ids"].any()
    rows = np.concatenate([f["input_ids"] for f in cal])
    distinct = len({r.tobytes() for r in rows})
    assert len(rows) >= 32 and distinct == min(len(rows), 96)  # no sentence repeated until all 96 are used


def test_builtin_calibration_needs_token_ids():
    with pytest.raises(QuantizationError, match="--calib"):
        builtin_calibration(_graph(1, names=("pixel_values",)))
