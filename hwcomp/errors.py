"""Error types. The library raises these; only the CLI catches them and prints one line."""

from __future__ import annotations


class HwcompError(Exception):
    """Base of every error hwcomp reports to a user. The message names the problem and the fix."""

    exit_code = 2


class ModelLoadError(HwcompError):
    """The model file is missing, truncated, not ONNX, or its external data is missing."""


class UnsupportedOpError(HwcompError):
    """An op the frontend, interpreter or a backend does not implement."""


class ShapeError(HwcompError):
    """A symbolic dimension without a bound, or shapes that do not agree."""


class InputError(HwcompError):
    """Inputs (.npz) missing names, with wrong dtype or shape."""


class VerifyError(HwcompError):
    """The IR verifier found a malformed node."""


class PassError(HwcompError):
    """Unknown pass name or a pass that cannot run on this graph."""


class QuantizationError(HwcompError):
    """Bad calibration data, bit widths or quantization settings."""


class HardwareError(HwcompError):
    """Impossible hardware parameters or a model the accelerator cannot run."""


class BackendError(HwcompError):
    """A code generator or runtime failed (no GPU, unknown arch, missing toolchain)."""


class SimulationError(HwcompError):
    """A simulation mismatched the interpreter, hung, or its simulator is missing."""
