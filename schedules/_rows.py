"""Shared placement of the per-row values of hwcomp's row kernels (softmax, layer norm, their integer forms)."""

from __future__ import annotations

from tvm import s_tir

SCALARS = ("row_factor", "row_mean")  # per-row values derived from the reductions (row_sq, row_sum, row_max)
# consumers before producers (compute_at order): row_factor <- row_sq/row_sum <- row_mean <- row_sum <- row_max
_ORDER = ("row_factor", "row_sq", "row_mean", "row_sum", "row_max")


def block_names(sch: s_tir.Schedule) -> set[str]:
    """Names of the blocks directly under the root block."""
    return {sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))}


def place_row_values(sch: s_tir.Schedule, at: s_tir.LoopRV, threads: int, reduction_scope: str) -> None:
    """Compute every per-row block present at loop ``at`` (the row): each reduction across ``threads`` lanes of
    ``threadIdx.x`` into ``reduction_scope``, each derived scalar once per row in every thread's registers."""
    names = block_names(sch)
    for name in _ORDER:
        if name not in names:
            continue
        blk = sch.get_sblock(name)
        sch.compute_at(blk, at)
        if name in SCALARS:
            sch.set_scope(blk, 0, "local")
            continue
        sch.set_scope(blk, 0, reduction_scope)
        _, tx = sch.split(sch.get_loops(blk)[-1], [None, threads])
        sch.bind(tx, "threadIdx.x")
