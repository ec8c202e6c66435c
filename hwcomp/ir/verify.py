"""IR verifier: names the first malformed node."""

from __future__ import annotations

from ..errors import HwcompError, VerifyError


def verify(g, *, check_types: bool = True) -> None:
    """Raise VerifyError naming the first problem: undefined or doubly defined values, ops without a
    definition, out-of-order nodes, or recorded output types that disagree with the op's type rule."""
    from ..ops import OPS

    defined: set[str] = set()
    for i in g.inputs:
        if i not in g.types:
            raise VerifyError(f"graph input {i!r} has no type")
        defined.add(i)
    for c in g.constants:
        if c in defined:
            raise VerifyError(f"constant {c!r} is also a graph input")
        if c not in g.types:
            raise VerifyError(f"constant {c!r} has no type")
        defined.add(c)
    for n in g.nodes:
        if n.op not in OPS:
            raise VerifyError(f"node {n.name!r}: op {n.op!r} is not defined in hwcomp.ops")
        for i in n.inputs:
            if i and i not in defined:
                raise VerifyError(f"node {n.name!r} ({n.op}): input {i!r} is not defined before it")
        for o in n.outputs:
            if o in defined:
                raise VerifyError(f"node {n.name!r} ({n.op}): output {o!r} is defined twice")
            if o not in g.types:
                raise VerifyError(f"node {n.name!r} ({n.op}): output {o!r} has no type")
            defined.add(o)
        if check_types:
            ins = [g.types[i] if i else None for i in n.inputs]
            consts = [g.constants.get(i) if i else None for i in n.inputs]
            try:
                expect = OPS[n.op].infer(n, ins, consts)
            except HwcompError as e:
                raise VerifyError(f"node {n.name!r} ({n.op}): {e}") from None
            for o, t in zip(n.outputs, expect):
                got = g.types[o]
                if o and (got.shape != t.shape or got.dtype != t.dtype):
                    raise VerifyError(f"node {n.name!r} ({n.op}): output {o!r} recorded as {got.dtype}{list(got.shape)}"
                                      f" but the op gives {t.dtype}{list(t.shape)}")
    for o in g.outputs:
        if o not in defined:
            raise VerifyError(f"graph output {o!r} is not defined")
