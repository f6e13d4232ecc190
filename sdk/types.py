"""Result types shared by segmentation, every runtime and every sink."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BBox:
    """Axis-aligned box in frame pixels: top-left corner, width, height."""

    x: int
    y: int
    w: int
    h: int

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def iou(self, other: BBox) -> float:
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Cell:
    """One white cell found in a frame.

    ``crop`` is the C-NMC-style model input (H×W×3 uint8 RGB, the cell centred
    on black); ``p_all`` and ``label`` are None until the cell is classified.
    """

    index: int
    bbox: BBox
    area: int
    crop: np.ndarray | None = field(default=None, repr=False, compare=False)
    p_all: float | None = None
    label: str | None = None
    cell_id: int | None = None  # the physical cell, when tracking counts it (see leukedge.tracking)

    def classified(self, p_all: float, label: str) -> Cell:
        return replace(self, p_all=float(p_all), label=label)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; the crop is left out (it is pixels, not a result)."""
        return {
            "cell": self.index,
            "bbox": self.bbox.as_list(),
            "area": self.area,
            "p_all": None if self.p_all is None else round(self.p_all, 6),
            "label": self.label,
            "cell_id": self.cell_id,
        }


@dataclass(frozen=True)
class FrameResult:
    """All cells of one frame, with when the frame was captured and when its results were ready.

    Timestamps are seconds since the epoch (``time.time()``); ``latency_s`` is
    their difference.  ``meta`` holds source-specific facts (file name,
    channel order, drop counters) as plain JSON values; with tracking, ``meta["track"]``
    says how the frame was judged (state, skip reason, focus, field) and ``finals`` holds the
    final records (``leukedge.tracking.CellTrack``) of the cells that left the view at it.
    """

    index: int
    source: str
    t_capture: float
    t_result: float
    cells: tuple[Cell, ...] = ()
    width: int = 0
    height: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    finals: tuple[Any, ...] = ()

    @property
    def latency_s(self) -> float:
        return self.t_result - self.t_capture

    @property
    def n_all(self) -> int:
        return sum(1 for c in self.cells if c.label == "all")

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.index,
            "source": self.source,
            "t_capture": self.t_capture,
            "t_result": self.t_result,
            "width": self.width,
            "height": self.height,
            "cells": [c.to_dict() for c in self.cells],
            "meta": dict(self.meta),
        }
