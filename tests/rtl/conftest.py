"""Fixtures for the RTL tests: the simulator parameter (skips cleanly when one is absent)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # same convention as tests/zoo: run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from sim.runner import SIMULATORS, missing_reason  # noqa: E402


@pytest.fixture(params=SIMULATORS)
def simulator(request: pytest.FixtureRequest) -> str:
    reason = missing_reason(request.param)
    if reason:
        pytest.skip(f"{request.param} unavailable: {reason}")
    return request.param
