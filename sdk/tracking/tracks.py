"""Cell tracks in slide coordinates: each physical cell gets one ``cell_id``.

Per frame, the cells found are placed on the slide with the frame's position (stage motion),
paired with the tracks near the view by an optimal assignment on centre distance, and the
tracks that have left the view are finished: a confirmed track (seen whole in ``min_looks``
good frames) gives one final record, exactly once; an unconfirmed one (a cell glimpsed once,
or a blob in a noise frame) gives none, but stays on the map and counts if it is met again.  A finished track stays on the slide map, so a cell
met again after a revisit keeps its ``cell_id`` and is not counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field  # CellTrack has a field named 'field'
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from leukedge.errors import InvalidInputError
from leukedge.tracking.assign import min_cost_pairs
from leukedge.tracking.looks import Look, LookPolicy, combine_p_all
from leukedge.tracking.motion import island_of
from leukedge.types import BBox

FORBIDDEN = 1e6
EDGE_PX = 8  # a box this close to the frame's edge shows a cut cell (the segmenter stops ~3 px short of it)
SIMILAR_AREA = 1.3  # a paired box this much larger or smaller than its track's moves nothing


@dataclass(frozen=True)
class TrackSettings:
    min_looks: int = 2  # good frames that must show a cell before it counts
    gate: float = 0.5  # largest centre distance, in cell sizes, of a cell and its track
    max_size_ratio: float = 1.6  # largest ratio of box areas of a cell and its track
    looks: LookPolicy = dc_field(default_factory=LookPolicy)

    def __post_init__(self) -> None:
        if self.min_looks < 1:
            raise InvalidInputError(f"min_looks={self.min_looks!r} must be >= 1")
        if not 0 < self.gate <= 2:
            raise InvalidInputError(f"gate={self.gate!r} must be in (0, 2]")
        if self.max_size_ratio < 1:
            raise InvalidInputError(f"max_size_ratio={self.max_size_ratio!r} must be >= 1")


@dataclass
class CellTrack:
    """One physical cell: its box on the slide (frame px), when it was seen, its looks."""

    track: int  # internal number
    x: float
    y: float
    w: float
    h: float
    first_frame: int
    last_frame: int
    field: Optional[int]
    cell_id: Optional[int] = None  # given when the track is confirmed
    good_frames: int = 0  # frames that showed it whole, still, sharp and well exposed
    seen: int = 0  # frames it was paired in
    looks: List[Look] = dc_field(default_factory=list)  # the counted looks (at most max_looks)
    asked: List[float] = dc_field(default_factory=list)  # focus of each frame it was sent to the classifier for
    revisits: int = 0  # returns to it after it was finished
    finished: bool = False
    last_bbox: Optional[BBox] = None  # in the frame it was last paired in
    p_all: Optional[float] = None
    label: Optional[str] = None

    @property
    def centre(self) -> Tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def to_dict(self) -> dict:
        return {
            "cell_id": self.cell_id,
            "p_all": None if self.p_all is None else round(self.p_all, 6),
            "label": self.label,
            "looks": len(self.looks),
            "good_frames": self.good_frames,
            "seen": self.seen,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "field": self.field,
            "slide_xy": [round(self.x, 1), round(self.y, 1)],
            "bbox": None if self.last_bbox is None else self.last_bbox.as_list(),
            "revisits": self.revisits,
        }


@dataclass(frozen=True)
class View:
    """Where the frame lies on the slide, and whether its cells may be looked at."""

    frame: int
    x: float
    y: float
    width: int
    height: int
    field: Optional[int]
    focus: float
    looking: bool  # still, sharp, well exposed


@dataclass
class Assignment:
    """Which track each cell of a frame belongs to, which cells to classify, which tracks left.

    ``look[i]``: cell ``i``'s classification counts as a look at its track (the frame is sharper
    than every frame its track was classified in, by ``sharper_by``, and the track has been
    classified fewer than ``2 × max_looks`` times); ``classify[i]``: cell ``i`` goes to the
    classifier (its looks, and whole cells that belong to no track, for display).  The other
    cells carry their track's p_all, or stay unclassified (cells cut by the frame's edge,
    cells of frames not looked at).
    """

    tracks: List[Optional[CellTrack]]
    look: List[bool]
    classify: List[bool]
    leaving: List[CellTrack]


class CellTracker:
    """Cells to tracks in two steps, so that a pipeline can classify in between:
    :meth:`assign` (boxes only: pairing, which cells to classify, tracks that left) and
    :meth:`record` (their p_all: looks, final records).  :meth:`observe` does both."""

    def __init__(self, settings: Optional[TrackSettings] = None, *, label_for: Callable[[float], str]) -> None:
        self.settings = settings or TrackSettings()
        self.label_for = label_for
        self.tracks: List[CellTrack] = []
        self._active: List[CellTrack] = []  # not finished
        self.confirmed = 0
        self.dropped = 0  # times an unconfirmed track left the view
        self.revisit_pairs = 0  # cells paired with a finished track
        self.detections = 0  # cells handed to assign()
        self.classified = 0  # of those, sent to the classifier

    def observe(
        self, view: View, boxes: Sequence[BBox], p_all: Sequence[Optional[float]]
    ) -> Tuple[List[Optional[int]], List[CellTrack]]:
        """The cell_id of each box (None: not a counted cell, or not paired) and the tracks
        finished at this frame."""
        plan = self.assign(view, boxes)
        return self.record(view, plan, p_all)

    def assign(self, view: View, boxes: Sequence[BBox]) -> Assignment:
        """Pair ``boxes`` (frame px) with tracks, decide which to classify, find the tracks that left."""
        n = len(boxes)
        plan = Assignment([None] * n, [False] * n, [False] * n, [])
        if view.looking and boxes:
            self._pair(view, boxes, plan)
        self.detections += n
        self.classified += sum(plan.classify)
        plan.leaving = self._leave(view)
        return plan

    def record(
        self, view: View, plan: Assignment, p_all: Sequence[Optional[float]]
    ) -> Tuple[List[Optional[int]], List[CellTrack]]:
        """The looks' p_all (None for a cell not classified); (each cell's cell_id, final records)."""
        for t, look, p in zip(plan.tracks, plan.look, p_all):
            if t is not None and look and p is not None:
                self.settings.looks.admit(t.looks, Look(view.frame, float(p), float(view.focus)))
                t.p_all = combine_p_all(t.looks)
                t.label = self.label_for(t.p_all)
        ids = [None if t is None else t.cell_id for t in plan.tracks]
        return ids, [t for t in plan.leaving if self._close(t)]

    def move_island(self, island: int, dx: float, dy: float) -> None:
        """Stage motion found that ``island`` of slide coordinates lies at (dx, dy) from where it was put."""
        for t in self.tracks:
            if island_of(t.x) == island:
                t.x, t.y = t.x + dx, t.y + dy

    def finish(self) -> List[CellTrack]:
        """End of the run: finish every track still open."""
        out = [t for t in self._active if self._close(t)]
        self._active = []
        return out

    # -- pairing ------------------------------------------------------------------------
    def _pair(self, view: View, boxes: Sequence[BBox], plan: Assignment) -> None:
        near = [t for t in self.tracks if _overlaps(t, view)]
        pairs = min_cost_pairs(self._costs(view, boxes, near), max_cost=self.settings.gate) if near else []
        paired = set()
        for i, k in pairs:
            paired.add(i)
            plan.tracks[i] = near[k]
            plan.look[i] = self._update(near[k], view, boxes[i])
        for i, b in enumerate(boxes):
            if i not in paired and not _cut(b, view) and not self._crowded(view, b, near):
                plan.tracks[i] = self._start(view, b)
                plan.look[i] = self._wants_look(plan.tracks[i], view)  # type: ignore[arg-type]
        for i, (t, b) in enumerate(zip(plan.tracks, boxes)):  # whole cells of no track: for display
            whole = not _cut(b, view)
            plan.classify[i] = plan.look[i] or (whole and (t is None or (not t.finished and not t.asked)))

    def _crowded(self, view: View, b: BBox, near: List[CellTrack]) -> bool:
        """True when an unpaired box and a known cell hold each other's centre: a blob split or
        merged differently from before (touching cells) would otherwise start a second track
        for one cell.  Two distinct touching cells do not: each centre lies outside the other's box."""
        x, y = view.x + b.x, view.y + b.y
        cx, cy = x + b.w / 2, y + b.h / 2
        for t in near:
            tx, ty = t.centre
            if (t.x <= cx <= t.x + t.w and t.y <= cy <= t.y + t.h) or (x <= tx <= x + b.w and y <= ty <= y + b.h):
                return True
        return False

    def _costs(self, view: View, boxes: Sequence[BBox], near: List[CellTrack]) -> np.ndarray:
        det = np.array([[view.x + b.x, view.y + b.y, b.w, b.h] for b in boxes], dtype=np.float64)
        trk = np.array([[t.x, t.y, t.w, t.h] for t in near], dtype=np.float64)
        dc = (det[:, None, :2] + det[:, None, 2:] / 2) - (trk[None, :, :2] + trk[None, :, 2:] / 2)
        size = (det[:, None, 2:].max(axis=2) + trk[None, :, 2:].max(axis=2)) / 2
        cost = np.hypot(dc[..., 0], dc[..., 1]) / np.maximum(size, 1.0)
        area_d = det[:, None, 2] * det[:, None, 3]
        area_t = trk[None, :, 2] * trk[None, :, 3]
        ratio = np.maximum(area_d, area_t) / np.maximum(np.minimum(area_d, area_t), 1.0)
        cost[ratio > self.settings.max_size_ratio] = FORBIDDEN
        return cost

    def _update(self, t: CellTrack, view: View, b: BBox) -> bool:
        """Pair ``t`` with box ``b``; True when this frame's classification of it is a look."""
        if t.finished and t.cell_id is None:  # glimpsed once before, met again: it may count now
            t.finished = False
            self._active.append(t)
        if t.finished:
            t.revisits += view.frame - t.last_frame > 1  # a return, not the next frame of one
            self.revisit_pairs += 1
        t.seen += 1
        t.last_frame = view.frame
        t.last_bbox = b
        if t.finished:
            return False  # its final record is out: later looks change nothing
        if _cut(b, view) or not _similar(b, t):
            return False  # a cut cell or an odd blob keeps its id but moves no box and gives no look
        t.x, t.y, t.w, t.h = view.x + b.x, view.y + b.y, float(b.w), float(b.h)
        return self._wants_look(t, view)

    def _start(self, view: View, b: BBox) -> CellTrack:
        t = CellTrack(
            len(self.tracks), view.x + b.x, view.y + b.y, float(b.w), float(b.h), view.frame, view.frame, view.field
        )
        t.seen, t.last_bbox = 1, b
        self.tracks.append(t)
        self._active.append(t)
        return t

    def _wants_look(self, t: CellTrack, view: View) -> bool:
        """A good, whole sight of ``t``: it counts towards confirming the cell, and is classified
        as a look when sharper (by ``sharper_by``) than every frame it was classified in, at most
        ``2 × max_looks`` times."""
        t.good_frames += 1
        if t.cell_id is None and t.good_frames >= self.settings.min_looks:
            t.cell_id = self.confirmed
            self.confirmed += 1
        policy = self.settings.looks
        if t.asked and (view.focus <= max(t.asked) * (1.0 + policy.sharper_by) or len(t.asked) >= 2 * policy.max_looks):
            return False
        t.asked.append(float(view.focus))
        return True

    # -- leaving ------------------------------------------------------------------------
    def _leave(self, view: View) -> List[CellTrack]:
        out, still = [], []
        for t in self._active:
            cx, cy = t.centre
            inside = view.x <= cx < view.x + view.width and view.y <= cy < view.y + view.height
            if inside:
                still.append(t)
            elif self._close(t):
                out.append(t)
        self._active = still
        return out

    def _close(self, t: CellTrack) -> bool:
        """Finish ``t``; True when it was counted (its final record is due)."""
        t.finished = True
        if t.cell_id is None:
            self.dropped += 1  # not counted (yet): it stays on the map, and counts if met again
            return False
        return True


def _overlaps(t: CellTrack, view: View) -> bool:
    return t.x < view.x + view.width and t.y < view.y + view.height and t.x + t.w > view.x and t.y + t.h > view.y


def _similar(b: BBox, t: CellTrack) -> bool:
    a, at = float(b.w * b.h), t.w * t.h
    return max(a, at) <= SIMILAR_AREA * max(1.0, min(a, at))


def _cut(b: BBox, view: View) -> bool:
    return b.x <= EDGE_PX or b.y <= EDGE_PX or b.x + b.w >= view.width - EDGE_PX or b.y + b.h >= view.height - EDGE_PX
