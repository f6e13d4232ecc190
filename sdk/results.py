"""The results schema: one flat record per cell, shared by JSON Lines, CSV and MQTT.

A frame with no cell gives one record whose cell fields are null, so every
frame is accounted for.
"""

from __future__ import annotations

from typing import Any, Dict, List

from leukedge.types import FrameResult

CELL_FIELDS = ("frame", "t_capture", "t_result", "source", "cell", "bbox", "area", "p_all", "label", "model")


def cell_records(result: FrameResult, model: str) -> List[Dict[str, Any]]:
    """Flat per-cell records of one frame (``model`` is the bundle's short hash)."""
    base = {
        "frame": result.index,
        "t_capture": round(result.t_capture, 6),
        "t_result": round(result.t_result, 6),
        "source": result.source,
    }
    if not result.cells:
        return [{**base, "cell": None, "bbox": None, "area": None, "p_all": None, "label": None, "model": model}]
    return [
        {
            **base,
            "cell": c.index,
            "bbox": c.bbox.as_list(),
            "area": c.area,
            "p_all": None if c.p_all is None else round(c.p_all, 6),
            "label": c.label,
            "model": model,
        }
        for c in result.cells
    ]
