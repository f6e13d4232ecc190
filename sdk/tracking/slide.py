"""``SlideTracker``: stage motion, focus and exposure checks and cell tracks, frame by frame.

Feed it every screened frame in order with the boxes and p_all of its cells
(:meth:`SlideTracker.observe`); it says which cells are which (``cell_id``), which frames were
skipped and why, and hands out one final record per cell when the cell leaves the view
(:meth:`SlideTracker.finish` at the end of the run).  Order of the checks: exposure (a badly
exposed frame is not used to estimate motion either), stage motion, focus.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from leukedge.tally import coverage
from leukedge.tracking.motion import MOVING, NEW_FIELD, MotionSettings, MotionStep, StageMotion
from leukedge.tracking.quality import (
    FocusJudge,
    QualitySettings,
    exposure_of,
    exposure_problem,
    focus_score,
    working_grey,
)
from leukedge.tracking.tracks import Assignment, CellTrack, CellTracker, TrackSettings, View
from leukedge.types import BBox

log = logging.getLogger("leukedge.tracking")
SKIP_REASONS = ("moving", "defocused", "over-exposed", "under-exposed")


@dataclass(frozen=True)
class TrackingSettings:
    motion: MotionSettings = field(default_factory=MotionSettings)
    quality: QualitySettings = field(default_factory=QualitySettings)
    tracks: TrackSettings = field(default_factory=TrackSettings)


@dataclass(frozen=True)
class Judgement:
    """What the frame checks made of one frame, before its cells are known."""

    frame: int
    width: int
    height: int
    state: str  # still, moving, new_field; "unknown" when exposure kept motion from being judged
    skip: Optional[str]  # why its cells are not looked at (one of SKIP_REASONS), or None
    focus: float
    exposure_mean: float
    clipped_high: float
    step: Optional[MotionStep]  # this frame's motion (None: not judged)
    where: Optional[MotionStep]  # where the frame lies: its own step, else the last one

    def meta(self) -> Dict[str, Any]:
        """Plain-JSON facts for ``FrameResult.meta["track"]``."""
        st = self.step
        return {
            "state": self.state,
            "skip": self.skip,
            "focus": round(self.focus, 1),
            "exposure": round(self.exposure_mean, 1),
            "clipped": round(self.clipped_high, 4),
            "field": None if st is None else st.field,
            "revisit": False if st is None else st.revisit,
            "shift": None if st is None else [round(st.dx, 1), round(st.dy, 1)],
            "slide_xy": None if st is None else [round(st.x, 1), round(st.y, 1)],
        }


@dataclass(frozen=True)
class FrameTrack:
    """What tracking made of one frame: the judgement, each cell's cell_id, the tracks it ended."""

    judgement: Judgement
    cell_ids: List[Optional[int]]
    finals: List[CellTrack]

    @property
    def skip(self) -> Optional[str]:
        return self.judgement.skip

    @property
    def state(self) -> str:
        return self.judgement.state

    @property
    def focus(self) -> float:
        return self.judgement.focus

    @property
    def step(self) -> Optional[MotionStep]:
        return self.judgement.step

    def meta(self) -> Dict[str, Any]:
        return self.judgement.meta()


class SlideTracker:
    """Two halves, each called once per frame in frame order, possibly from two threads:
    :meth:`judge` (motion, exposure, focus: needs only the pixels) and :meth:`pair` (cells:
    needs their boxes and p_all).  :meth:`observe` does both."""

    def __init__(self, settings: Optional[TrackingSettings] = None, *, label_for: Callable[[float], str]) -> None:
        self.settings = settings or TrackingSettings()
        self.motion = StageMotion(self.settings.motion)
        self.focus = FocusJudge(self.settings.quality)
        self.cells = CellTracker(self.settings.tracks, label_for=label_for)
        self.frames = 0
        self.skipped: Dict[str, int] = {r: 0 for r in SKIP_REASONS}
        self.new_fields = 0
        self.revisits = 0
        self._last: Optional[MotionStep] = None

    def observe(
        self, frame: int, image: np.ndarray, boxes: Sequence[BBox], p_all: Sequence[Optional[float]]
    ) -> FrameTrack:
        """One frame (H×W×3 uint8 RGB) in order, with its cells' boxes and p_all (None: not classified)."""
        return self.pair(self.judge(frame, image), boxes, p_all)

    def judge(self, frame: int, image: np.ndarray) -> Judgement:
        """Exposure, stage motion and focus of one frame (H×W×3 uint8 RGB), in frame order."""
        self.frames += 1
        h, w = image.shape[:2]
        grey, scale = working_grey(image)
        exp = exposure_of(grey)
        score = focus_score(grey)
        skip = exposure_problem(exp, self.settings.quality)
        step: Optional[MotionStep] = None
        if skip is None:  # a blank or glaring frame says nothing about where the stage is
            step = self._motion(grey, scale)
            if step.state == MOVING:
                skip = "moving"
            elif self.focus.judge(score) is not None:
                skip = "defocused"
        if skip is not None:
            self.skipped[skip] += 1
        where = step or self._last
        if where is not None and step is None and (self.motion.frame_size != (w, h)):
            where = None  # a badly exposed frame of another size: nowhere to put its cells
        state = step.state if step is not None else "unknown"
        return Judgement(frame, w, h, state, skip, score, exp.mean, exp.clipped_high, step, where)

    def pair(self, j: Judgement, boxes: Sequence[BBox], p_all: Sequence[Optional[float]]) -> FrameTrack:
        """Give the cells of judged frame ``j`` their cell_ids (frames in the order they were judged)."""
        return self.record(j, self.assign(j, boxes), p_all)

    def assign(self, j: Judgement, boxes: Sequence[BBox]) -> Assignment:
        """Pair the cells of judged frame ``j`` with tracks and say which to classify (frames in order)."""
        if (
            j.step is not None and j.step.merged is not None
        ):  # a place seen before a jump: its cells are those seen then
            self.cells.move_island(*j.step.merged)
        view = self._view(j)
        if view is None:
            n = len(boxes)
            return Assignment([None] * n, [False] * n, [False] * n, [])
        return self.cells.assign(view, boxes)

    def record(self, j: Judgement, plan: Assignment, p_all: Sequence[Optional[float]]) -> FrameTrack:
        """The classified cells' p_all (None: not classified) into the looks; cell_ids and final records."""
        view = self._view(j)
        if view is None:
            return FrameTrack(j, [None] * len(plan.tracks), [])
        ids, finals = self.cells.record(view, plan, p_all)
        return FrameTrack(j, ids, finals)

    def _view(self, j: Judgement) -> Optional[View]:
        where = j.where
        if where is None:
            return None
        return View(j.frame, where.x, where.y, j.width, j.height, where.field, j.focus, looking=j.skip is None)

    def _motion(self, grey: np.ndarray, scale: float) -> MotionStep:
        step = self.motion.update(grey, scale)
        if step.state == NEW_FIELD:
            self.new_fields += 1
            if self.frames > 1:
                log.info("frame %d: new field (%s)", self.frames - 1, step.note)
            # The focus window is kept: a new field is often a defocused or blurred frame that
            # lost the motion estimate, and the window's median follows a real change of content
            # within half its length.
        self.revisits += step.revisit
        self._last = step
        return step

    def finish(self) -> List[CellTrack]:
        """The final records of the cells still in view at the end of the run."""
        return self.cells.finish()

    def stats(self) -> Dict[str, Any]:
        """Slide statistics on unique cells (plain JSON)."""
        counted = [t for t in self.cells.tracks if t.cell_id is not None]
        fields = {t.field for t in counted if t.field is not None}
        return {
            "frames": self.frames,
            "skipped": dict(self.skipped),
            "fields": self.motion.visited(),
            "new_fields": self.new_fields,
            "revisits": self.revisits,
            "unique_cells": len(counted),
            **coverage(len(counted), len(fields), [t.good_frames for t in counted]),
            "dropped_tracks": self.cells.dropped,
            "cells_found": self.cells.detections,
            "cells_classified": self.cells.classified,
        }
