"""Errors raised by hwcomp's schedule rules."""

from __future__ import annotations

try:
    from hwcomp.errors import HwcompError
except ImportError:  # the schedules are usable without the rest of hwcomp on the device machine
    class HwcompError(Exception):  # type: ignore[no-redef]
        exit_code = 2


class ScheduleError(HwcompError, ValueError):
    """A kernel cannot be scheduled for these shapes/dtypes (the message names the value and the fix)."""
