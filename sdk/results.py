"""The results schema: one flat record per cell, shared by JSON Lines, CSV and MQTT.

A frame with no cell gives one record whose cell fields are null, so every
frame is accounted for.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

from leukedge.types import FrameResult

CELL_FIELDS = (
    "frame",
    "t_capture",
    "t_result",
    "source",
    "cell",
    "bbox",
    "area",
    "p_all",
    "label",
    "model",
    "cell_id",
    "skip",
)
# A final record (one per physical cell, written when it leaves the view or the run ends) has
# ``"record": "final"`` and these fields; see docs/tracking.md.
FINAL_FIELDS = (
    "record",
    "frame",
    "source",
    "cell_id",
    "p_all",
    "label",
    "looks",
    "good_frames",
    "seen",
    "first_frame",
    "last_frame",
    "field",
    "slide_xy",
    "bbox",
    "revisits",
    "model",
)


def cell_records(result: FrameResult, model: str) -> List[Dict[str, Any]]:
    """Flat per-cell records of one frame (``model`` is the bundle's short hash)."""
    base = {
        "frame": result.index,
        "t_capture": round(result.t_capture, 6),
        "t_result": round(result.t_result, 6),
        "source": result.source,
    }
    track = result.meta.get("track")
    skip = track.get("skip") if isinstance(track, dict) else None
    if not result.cells:
        return [
            {
                **base,
                "cell": None,
                "bbox": None,
                "area": None,
                "p_all": None,
                "label": None,
                "model": model,
                "cell_id": None,
                "skip": skip,
            }
        ]
    return [
        {
            **base,
            "cell": c.index,
            "bbox": c.bbox.as_list(),
            "area": c.area,
            "p_all": None if c.p_all is None else round(c.p_all, 6),
            "label": c.label,
            "model": model,
            "cell_id": c.cell_id,
            "skip": skip,
        }
        for c in result.cells
    ]


def final_records(finals: Sequence[Any], source: str, model: str) -> List[Dict[str, Any]]:
    """One record per finished cell track (``leukedge.tracking.CellTrack``)."""
    out = []
    for t in finals:
        d = t.to_dict()
        out.append({"record": "final", "frame": t.last_frame, "source": source, **d, "model": model})
    return out
