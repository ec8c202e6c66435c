"""Layout tracing through Reshape/Transpose chains, used to fold attention's head split/merge.

A tensor's layout is described as groups of named atoms: the base activation [B, S, H*D] is
``[[b], [s], [hd]]``; reshaping it to [B, S, H, D] splits the atom ``hd`` into ``hd.0`` (size H) and
``hd.1`` (size D). Replaying the exporter's actual Reshape/Transpose chain and comparing with the replay
of the canonical chain proves the chain is a head split (or merge) whatever ops the exporter chose.
Size-1 atoms are dropped, so batch 1 and single-head graphs need no special cases.
"""

from __future__ import annotations



from ..ir.graph import Graph, Node

Atom = tuple[str, int]
Layout = list[list[Atom]]

_VIEW_OPS = ("Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten")


def _reshape(layout: Layout, shape: tuple[int, ...]) -> Layout | None:
    atoms = [a for grp in layout for a in grp if a[1] != 1]
    out: Layout = []
    for n in shape:
        need, grp = int(n), []
        while need > 1:
            if not atoms:
                return None
            name, size = atoms[0]
            if need % size == 0:
                grp.append(atoms.pop(0))
                need //= size
            elif size % need == 0:
                grp.append((name + ".0", need))
                atoms[0] = (name + ".1", size // need)
                need = 1
            else:
                return None
        out.append(grp)
    return None if atoms else out


def _apply(g: Graph, layout: Layout, n: Node) -> Layout | None:
    if n.op == "Transpose":
        perm = n.attr("perm") or list(range(len(layout)))[::-1]
        return [layout[p] for p in perm]
    return _reshape(layout, g.types[n.outputs[0]].shape)


def _replay(g: Graph, layout: Layout, chain: list[Node]) -> Layout | None:
    for n in chain:
        layout = _apply(g, layout, n)
        if layout is None:
            return None
    return layout


def _canon(shape: tuple[int, ...], steps: list[tuple[str, tuple[int, ...]]], start: Layout) -> Layout | None:
    lay: Layout | None = start
    for kind, arg in steps:
        if lay is None:
            return None
        lay = [lay[p] for p in arg] if kind == "T" else _reshape(lay, arg)
    return lay


def _norm(lay: Layout | None) -> list[list[Atom]] | None:
    if lay is None:
        return None
    return [[a for a in grp if a[1] != 1] for grp in lay]


def _same(a: Layout | None, b: Layout | None) -> bool:
    """Equal up to how the atoms were named by splits: compare the sequence of atom sizes per group and
    the relative order of the underlying elements, via a concrete index permutation."""
    if a is None or b is None or len(a) != len(b):
        return False
    return _norm(a) == _norm(b)


def head_layout_base(g: Graph, prod: dict[str, Node], v: str, kind: str
                     ) -> tuple[str, tuple[int, ...] | None] | None:
    """If v ([B,H,S,D] for kind "bhsd", [B,H,D,S] for "bhds") is a head split of some [B,S,H*D] (or
    [B*S,H*D]) value, return (that value, the 3-D shape to view it as if it is 2-D, else None)."""
    shp = g.types[v].shape
    if len(shp) != 4:
        return None
    b, h = shp[0], shp[1]
    s, d = (shp[2], shp[3]) if kind == "bhsd" else (shp[3], shp[2])
    chain: list[Node] = []
    cur = v
    candidates: list[tuple[str, list[Node]]] = []
    while True:
        t = g.types[cur].shape
        if t in ((b, s, h * d), (b * s, h * d)) and cur != v:
            candidates.append((cur, list(reversed(chain))))
        p = prod.get(cur)
        if p is None or p.op not in _VIEW_OPS:
            break
        chain.append(p)
        cur = p.inputs[0]
    for base, fwd in reversed(candidates):  # furthest back first
        bshape = g.types[base].shape
        start: Layout = [[("b", b)], [("s", s)], [("hd", h * d)]] if len(bshape) == 3 else \
            [[("b", b), ("s", s)], [("hd", h * d)]]
        got = _replay(g, start, fwd)
        perm = (0, 2, 1, 3) if kind == "bhsd" else (0, 2, 3, 1)
        want = _canon(bshape, [("R", (b, s, h, d)), ("T", perm)], start)
        if _same(got, want):
            return base, ((b, s, h * d) if len(bshape) == 2 else None)
    return None


def merge_heads_chain(g: Graph, cons: dict[str, list[Node]], v: str) -> tuple[str, tuple[int, ...]] | None:
    """v is attention output [B,H,S,D]; follow sole-consumer Reshape/Transpose ops to the value that is the
    heads merged back to [B,S,H*D] (or [B*S,H*D]); returns (value, its shape)."""
    b, h, s, d = g.types[v].shape
    start: Layout = [[("b", b)], [("hd.0", h)], [("s", s)], [("hd.1", d)]]
    want3 = [[("b", b)], [("s", s)], [("hd.0", h), ("hd.1", d)]]
    want2 = [[("b", b), ("s", s)], [("hd.0", h), ("hd.1", d)]]
    lay: Layout | None = start
    cur, found = v, None
    while True:
        users = cons.get(cur, [])
        if len(users) != 1 or users[0].op not in _VIEW_OPS or cur in g.outputs:
            break
        lay = _apply(g, lay, users[0]) if lay is not None else None
        cur = users[0].outputs[0]
        if lay is not None and (_norm(lay) in (_norm(want3), _norm(want2))):
            found = (cur, g.types[cur].shape)
    if found is None:
        return None
    # Attention gives [B,S,H*D]; a 2-D final value is reached by one more reshape the fuser adds.
    return found


