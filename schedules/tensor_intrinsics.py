"""TVM start-up costs hwcomp works around: ``tvm.s_tir.tensor_intrin``, imported quickly (schedules/_mma.py
imports it through here, so that importing any schedule is fast too)."""

from __future__ import annotations


def _fast_stack(context: int = 1) -> list:
    """``inspect.stack()`` without module lookups: frame, file, line, function and the current line only."""
    import inspect
    import linecache
    import sys

    out, f = [], sys._getframe(1)
    while f is not None:
        fn, ln = f.f_code.co_filename, f.f_lineno
        out.append(inspect.FrameInfo(f, fn, ln, f.f_code.co_name, [linecache.getline(fn, ln)], 0))
        f = f.f_back
    return out


def import_tensor_intrinsics() -> None:
    """Import ``tvm.s_tir.tensor_intrin`` (MetaSchedule's rules need it) quickly.

    Its few hundred TVMScript prim_funcs each call ``inspect.stack()``, which looks up every frame's module
    in ``sys.modules``; in a process with ~2,000 modules on a loaded 2-core box the import took 560 s.
    With a light stack (all the parser reads: frames, f_locals, the decorator line) it takes ~14 s.
    """
    import inspect
    import sys

    if "tvm.s_tir.tensor_intrin" in sys.modules:
        return
    orig, inspect.stack = inspect.stack, _fast_stack
    try:
        import tvm.s_tir.tensor_intrin  # noqa: F401
    finally:
        inspect.stack = orig
