"""Stage motion: the shift between consecutive frames by phase correlation, a slide coordinate
system, and the fields the user has looked at.

Positions are those of the frame's top-left corner on the slide, in frame pixels; a cell at
frame pixel (x, y) lies at slide (X + x, Y + y).  Each frame is classed:

* ``still``: shifted by at most ``still_fraction`` of the frame width since the last frame;
* ``moving``: shifted more (its cells are motion-blurred and not looked at);
* ``new_field``: unrelated to the last frame (phase-correlation response below
  ``min_response``: a jump, a bumped stage, a frame of another size, a blank or noise frame).
  The frame is then matched against the fields seen so far (``revisit``); if none matches,
  it starts a new *island* of slide coordinates, far from every other, so that no cell of it
  can be merged with a cell seen before.

A *field* is a place the stage rested: each still frame farther than a quarter frame from every
known field opens one (so does each frame of a new island), and keeps a small thumbnail to
recognise it later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Optional, Tuple

import cv2
import numpy as np

from leukedge.errors import InvalidInputError

log = logging.getLogger("leukedge.tracking")

STILL, MOVING, NEW_FIELD = "still", "moving", "new_field"
ISLAND_SPACING = 1e7  # px between the origins of unrelated islands of slide coordinates
THUMB_WIDTH = 160  # px; field thumbnails for revisit recognition
FIELD_REACH = 0.25  # a still frame within this share of a frame (in x and y) of a field shows that field


@dataclass(frozen=True)
class MotionSettings:
    min_response: float = 0.3  # phase-correlation peak below this: the frames are unrelated
    min_recognise: float = 0.22  # a known field's thumbnail must correlate this well to be recognised
    still_fraction: float = 0.005  # a shift up to this share of the frame width is "still"
    max_fields: int = 256  # thumbnails kept for revisit recognition (oldest forgotten)

    def __post_init__(self) -> None:
        for name in ("min_response", "min_recognise"):
            if not 0 < getattr(self, name) < 1:
                raise InvalidInputError(f"{name}={getattr(self, name)!r} must be in (0, 1)")
        if not 0 <= self.still_fraction < 0.5:
            raise InvalidInputError(f"still_fraction={self.still_fraction!r} must be in [0, 0.5)")
        if self.max_fields < 1:
            raise InvalidInputError(f"max_fields={self.max_fields!r} must be >= 1")


@dataclass(frozen=True)
class MotionStep:
    """What the stage did between the previous frame and this one."""

    state: str
    dx: float  # shift of the image content since the last frame, frame px
    dy: float
    response: float  # phase-correlation peak, 0..1 (1: identical content)
    x: float  # slide position of the frame's top-left corner
    y: float
    field: Optional[int]  # the field the frame shows (None while moving)
    revisit: bool = False  # the frame returned to a field seen before, after being elsewhere
    note: Optional[str] = None  # why a new field began, for logs
    merged: Optional[Tuple[int, float, float]] = None  # (island, dx, dy): that island was moved by (dx, dy)


@dataclass
class _Field:
    ident: int
    x: float
    y: float
    thumb: np.ndarray  # float32, THUMB_WIDTH wide
    size: Tuple[int, int]  # the frame size it was seen at; only frames of that size can match it
    island: int = 0
    frames: int = 1  # frames that showed it (a lone noise frame's field keeps 1)


def shift_between(a: np.ndarray, b: np.ndarray, window: np.ndarray) -> Tuple[float, float, float]:
    """(dx, dy, response): how far the content of ``b`` is shifted from ``a`` (same-size float32)."""
    (dx, dy), response = cv2.phaseCorrelate(a, b, window)
    return float(dx), float(dy), float(response)


class StageMotion:
    """Feed it each frame's working grey image (see ``quality.working_grey``) in order."""

    def __init__(self, settings: Optional[MotionSettings] = None) -> None:
        self.settings = settings or MotionSettings()
        self.x = 0.0
        self.y = 0.0
        self.fields: List[_Field] = []
        self.field: Optional[int] = None
        self._prev: Optional[np.ndarray] = None
        self._window: Optional[np.ndarray] = None
        self._thumb_window: Optional[np.ndarray] = None
        self._islands = -1  # the first frame opens island 0, at the origin
        self._last_field: Optional[int] = None  # the field last rested on (kept while moving)
        self._next_field = 0
        self._frame_w = 0.0
        self._frame_h = 0.0
        self._size: Tuple[int, int] = (0, 0)

    def update(self, grey: np.ndarray, scale: float) -> MotionStep:
        """``grey``: uint8 working image; ``scale``: frame px per working px."""
        cur = grey.astype(np.float32)
        size = (round(cur.shape[1] * scale), round(cur.shape[0] * scale))
        size_changed = self._prev is not None and size != self._size
        if size_changed:
            log.warning("frame size changed from %s to %s px: starting a new field", self._size, size)
            self._window = None
        self._size = size
        if self._window is None or self._window.shape != cur.shape:
            self._window = cv2.createHanningWindow(cur.shape[::-1], cv2.CV_32F)
        self._frame_w, self._frame_h = cur.shape[1] * scale, cur.shape[0] * scale
        prev, self._prev = self._prev, cur
        if prev is None or size_changed:
            return self._new_field(cur, scale, 0.0, "first frame" if prev is None else "frame size changed")
        dx, dy, response = shift_between(prev, cur, self._window)
        if not np.isfinite(response) or response < self.settings.min_response:
            return self._new_field(
                cur, scale, response, f"content unrelated to the last frame (response {response:.3f})"
            )
        dx, dy = dx * scale, dy * scale
        self.x -= dx  # content moving left means the view moved right
        self.y -= dy
        if np.hypot(dx, dy) > self.settings.still_fraction * self._frame_w:
            self.field = None
            return MotionStep(MOVING, dx, dy, response, self.x, self.y, None)
        near = self._nearest_field()
        if near is None and self._islands > 0:  # a place new here: perhaps one seen from another island
            found = self._recognise(cur, other_islands=True)
            if found is not None:
                merged = self._join(*found)
                return MotionStep(STILL, dx, dy, response, self.x, self.y, self.field, True, None, merged)
        revisit = self._settle(cur, near)
        return MotionStep(STILL, dx, dy, response, self.x, self.y, self.field, revisit)

    # -- fields --------------------------------------------------------------------
    def _join(self, field: int, x: float, y: float) -> Optional[Tuple[int, float, float]]:
        """The frame shows known ``field`` at slide (x, y): move the current island onto the field's
        (so the cells seen since a jump meet the cells seen before it); the move, or None."""
        target = self._by_id(field)
        here, dx, dy = island_of(self.x), x - self.x, y - self.y
        self.x, self.y = x, y
        self.field = self._last_field = field
        target.frames += 1
        for f in self.fields:
            if f.island == here:
                f.x, f.y, f.island = f.x + dx, f.y + dy, target.island
        return here, dx, dy

    def _settle(self, cur: np.ndarray, near: Optional[_Field]) -> bool:
        """A still frame: name its field (known or new); True when it returns to a field after another."""
        if near is None:
            self.field = self._last_field = self._add_field(cur)
            return False
        arriving = self.field != near.ident
        revisit = arriving and self._last_field is not None and self._last_field != near.ident
        if arriving:
            self._register(near, cur)
        self.field = self._last_field = near.ident
        near.frames += 1
        return revisit

    def _register(self, field: _Field, cur: np.ndarray) -> None:
        """Arriving at a known field: take the position from its thumbnail, which undoes the
        drift the frame-to-frame shifts gathered on the way."""
        thumb = _thumb(cur)
        if field.size != self._size or field.thumb.shape != thumb.shape:
            return
        dx, dy, r = shift_between(field.thumb, thumb, self._thumb_window_for(thumb))
        if r >= self.settings.min_recognise:
            factor = self._frame_w / thumb.shape[1]
            self.x, self.y = field.x - dx * factor, field.y - dy * factor

    def _thumb_window_for(self, thumb: np.ndarray) -> np.ndarray:
        if self._thumb_window is None or self._thumb_window.shape != thumb.shape:
            self._thumb_window = cv2.createHanningWindow(thumb.shape[::-1], cv2.CV_32F)
        return self._thumb_window

    @property
    def frame_size(self) -> Tuple[int, int]:
        """(width, height) of the last frame placed, in frame px."""
        return self._size

    def visited(self) -> int:
        """Fields shown by more than one frame (a lone blank or noise frame is not a field)."""
        return sum(1 for f in self.fields if f.frames > 1)

    def _by_id(self, ident: int) -> _Field:
        return next(f for f in self.fields if f.ident == ident)

    def _nearest_field(self) -> Optional[_Field]:
        best, best_d = None, None
        for f in self.fields:
            if f.size != self._size:
                continue
            ddx, ddy = abs(f.x - self.x), abs(f.y - self.y)
            if ddx <= self._frame_w * FIELD_REACH and ddy <= self._frame_h * FIELD_REACH:
                d = ddx / self._frame_w + ddy / self._frame_h
                if best_d is None or d < best_d:
                    best, best_d = f, d
        return best

    def _add_field(self, cur: np.ndarray) -> int:
        ident = self._next_field
        self._next_field += 1
        self.fields.append(_Field(ident, self.x, self.y, _thumb(cur), self._size, island_of(self.x)))
        if len(self.fields) > self.settings.max_fields:
            self.fields.pop(0)
        return ident

    def _new_field(self, cur: np.ndarray, scale: float, response: float, why: str) -> MotionStep:
        """The frame cannot be placed from the last one: find it among known fields, or open an island."""
        found = self._recognise(cur)
        if found is not None:
            field, self.x, self.y = found
            self._by_id(field).frames += 1
            revisit = self._last_field is not None and self._last_field != field
            self.field = self._last_field = field
            return MotionStep(NEW_FIELD, 0.0, 0.0, response, self.x, self.y, field, revisit, why)
        # An island of coordinates of its own, and a field to recognise it by later.
        self._islands += 1
        self.x, self.y = self._islands * ISLAND_SPACING, 0.0
        self.field = self._last_field = self._add_field(cur)
        return MotionStep(NEW_FIELD, 0.0, 0.0, response, self.x, self.y, self.field, False, why)

    def _recognise(self, cur: np.ndarray, *, other_islands: bool = False) -> Optional[Tuple[int, float, float]]:
        """(field, x, y) of the known field ``cur`` overlaps best (only fields of other islands
        than the current one: ``other_islands``), or None."""
        here = island_of(self.x)
        thumb = _thumb(cur)
        window = self._thumb_window_for(thumb)
        best: Optional[Tuple[float, int, float, float]] = None
        factor = self._frame_w / thumb.shape[1]
        for f in self.fields:
            if f.size != self._size or f.thumb.shape != thumb.shape or (other_islands and f.island == here):
                continue  # a field seen at another frame size, or (other_islands) one reachable by motion
            dx, dy, r = shift_between(f.thumb, thumb, window)
            if r >= self.settings.min_recognise and (best is None or r > best[0]):
                best = (r, f.ident, f.x - dx * factor, f.y - dy * factor)
        return None if best is None else (best[1], best[2], best[3])


def island_of(x: float) -> int:
    """The island of coordinates a slide x position belongs to."""
    return round(x / ISLAND_SPACING)


def _thumb(cur: np.ndarray) -> np.ndarray:
    h, w = cur.shape
    if w <= THUMB_WIDTH:
        return cur.copy()
    return cv2.resize(cur, (THUMB_WIDTH, max(8, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)
