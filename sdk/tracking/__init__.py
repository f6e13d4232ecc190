"""Counting each cell once: stage motion, focus and exposure checks, and cell tracks.

A camera on a microscope sends many frames of the same field; counting the cells of every
frame counts one cell many times.  :class:`SlideTracker` follows the stage (phase correlation
on a small grey copy of each frame), skips frames that move, are out of focus or badly
exposed, and pairs the cells of each frame with the cells already seen, so that each
physical cell gets one ``cell_id`` and one final record.  The rule is in docs/tracking.md.
Plain numpy and OpenCV; nothing here touches the device.
"""

from __future__ import annotations

from leukedge.tracking.looks import Look, LookPolicy, combine_p_all
from leukedge.tracking.motion import MOVING, NEW_FIELD, STILL, MotionSettings, MotionStep, StageMotion
from leukedge.tracking.quality import QualitySettings, exposure_of, focus_score, working_grey
from leukedge.tracking.slide import SKIP_REASONS, FrameTrack, Judgement, SlideTracker, TrackingSettings
from leukedge.tracking.tracks import Assignment, CellTrack, CellTracker, TrackSettings, View

__all__ = [
    "MOVING",
    "NEW_FIELD",
    "SKIP_REASONS",
    "STILL",
    "Assignment",
    "CellTrack",
    "CellTracker",
    "FrameTrack",
    "Judgement",
    "Look",
    "LookPolicy",
    "MotionSettings",
    "MotionStep",
    "QualitySettings",
    "SlideTracker",
    "StageMotion",
    "TrackSettings",
    "TrackingSettings",
    "View",
    "combine_p_all",
    "exposure_of",
    "focus_score",
    "working_grey",
]
