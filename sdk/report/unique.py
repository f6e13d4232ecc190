"""Counting unique cells from a results file written with tracking.

A tracked run writes per-frame records that carry a ``cell_id`` (the physical cell; null for a
cell not counted) and a ``skip`` reason, and one ``"record": "final"`` record per cell with
the combined p_all (``leukedge.tracking``).  Here each cell_id is counted once: its final
record, or, where the run was cut short before it was written, its last per-frame look.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from leukedge.tally import coverage

OLD_FILE_NOTE = (
    "this results file has no cell_id (written before tracking, or with --tracking off): "
    "its counts are per frame and may count one cell several times"
)


@dataclass
class UniqueCells:
    cells: List[Dict[str, Any]] = field(default_factory=list)  # one record per cell_id
    from_looks: int = 0  # cells without a final record, counted from their last look
    skipped: Dict[str, int] = field(default_factory=dict)  # frames not looked at, by reason
    frames: int = 0

    def stats(self) -> Dict[str, Any]:
        fields = {r.get("field") for r in self.cells if r.get("field") is not None}
        looks = [r["good_frames"] for r in self.cells if isinstance(r.get("good_frames"), int)]
        return {
            "counting": "unique cells",
            "fields_visited": len(fields) if fields else None,
            **coverage(len(self.cells), len(fields), looks),
            "frames_skipped": dict(sorted(self.skipped.items())),
        }


def is_tracked(records: List[Dict[str, Any]]) -> bool:
    return any(r.get("record") == "final" or r.get("cell_id") is not None for r in records)


def unique_cells(records: List[Dict[str, Any]]) -> UniqueCells:
    """One record per cell_id (final records first), frames skipped by reason."""
    out = UniqueCells()
    finals: Dict[Any, Dict[str, Any]] = {}
    last_look: Dict[Any, Dict[str, Any]] = {}
    frame_skip: Dict[Any, Optional[str]] = {}
    for r in records:
        if r.get("record") == "final":
            finals.setdefault((r["source"], r["cell_id"]), r)  # the first copy counts, as for frames
            continue
        frame_skip.setdefault((r["source"], r["frame"]), r.get("skip"))
        cid = r.get("cell_id")
        if cid is not None and r.get("p_all") is not None:
            last_look[(r["source"], cid)] = r
    out.frames = len(frame_skip)
    for skip in frame_skip.values():
        if skip:
            out.skipped[skip] = out.skipped.get(skip, 0) + 1
    out.cells = [finals[c] for c in sorted(finals)]
    for cid in sorted(set(last_look) - set(finals)):
        out.cells.append(last_look[cid])
        out.from_looks += 1
    return out
