"""`hwcomp compile --quant int8` without --calib calibrates on the zoo's sentences: at least 8 of them, in as few
batches of the graph's bound shape as hold them (a batch-32 compile runs one batch through the interpreter, not
eight: 8x the time for the same sentences cycled)."""

from types import SimpleNamespace

import numpy as np
import pytest

from hwcomp.cli.compile import builtin_calibration
from hwcomp.errors import QuantizationError


def _graph(batch, seq=16, names=("input_ids", "attention_mask", "token_type_ids")):
    return SimpleNamespace(inputs=list(names), types={"input_ids": SimpleNamespace(shape=(batch, seq))})


@pytest.mark.parametrize("batch, sets", [(1, 8), (3, 3), (8, 1), (32, 1)])
def test_builtin_calibration_covers_eight_sentences_in_the_fewest_batches(batch, sets):
    cal = builtin_calibration(_graph(batch))
    assert len(cal) == sets
    for feed in cal:
        assert set(feed) == {"input_ids", "attention_mask", "token_type_ids"}
        assert feed["input_ids"].shape == (batch, 16) and not feed["token_type_ids"].any()
    rows = np.concatenate([f["input_ids"] for f in cal])
    assert len(rows) >= 8 and len({r.tobytes() for r in rows}) == len(rows)  # distinct sentences, none repeated


def test_builtin_calibration_needs_token_ids():
    with pytest.raises(QuantizationError, match="--calib"):
        builtin_calibration(_graph(1, names=("pixel_values",)))
