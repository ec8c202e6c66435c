"""TVM start-up costs hwcomp works around: the fast import of TVM's tensor intrinsics lives beside the schedules
that need it (schedules/tensor_intrinsics.py); re-exported here for the backend's callers."""

from __future__ import annotations

from hwcomp.schedules.tensor_intrinsics import _fast_stack, import_tensor_intrinsics  # noqa: F401
