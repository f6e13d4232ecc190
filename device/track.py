"""Tracking's two stages: judging frames before segmentation, pairing cells before classification.

::

    CaptureStage ─frames─► TrackStage ─judged─► SegmentStage ×K ─jobs─► PairStage ─paired─► ClassifyStage ×C ─► ResultsStage
                           (exposure, motion,                          (frame order restored;             (looks recorded,
                            focus: SlideTracker.judge)                  SlideTracker.assign)               final records)

The track stage sits where frames still come one at a time in order and judges each with
:meth:`leukedge.tracking.SlideTracker.judge`; the judgement rides on the frame
(``Frame.track``).  A frame skipped as moving, defocused or badly exposed is not segmented or
classified.  The pair stage restores frame order behind the segment workers, pairs each
frame's cells with the cell tracks (:meth:`SlideTracker.assign`) and marks the cells to
classify: a cell is classified when it is a new look at its track (first sight, or a sharper
frame; at most ``2 × max_looks`` times) or belongs to no track; the others carry their track's
p_all.  The results stage records the looks and writes the final records
(:meth:`SlideTracker.record`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Dict, Tuple

from leukedge.device.channel import CLOSED, Channel, RunControl
from leukedge.device.stats import PipelineStats
from leukedge.tracking import SlideTracker
from leukedge.types import Cell

JUDGED_CAPACITY = 1  # one judged frame waiting is enough to keep the segment workers busy


@dataclass(eq=False)
class TrackStage:
    """Judges every frame of ``frames_in`` into ``frames_out``, in order (one thread)."""

    frames_in: Channel
    frames_out: Channel
    control: RunControl
    stats: PipelineStats
    tracker: SlideTracker

    def run(self) -> None:
        try:
            while True:
                frame = self.frames_in.get()
                if frame is CLOSED or self.control.aborted:
                    break
                t0 = time.perf_counter()
                frame.track = self.tracker.judge(frame.index, frame.image)
                self.stats.add_busy("track", time.perf_counter() - t0)
                if not self.frames_out.put(frame):
                    break
        finally:
            self.frames_out.close()


@dataclass(eq=False)
class PairStage:
    """Restores frame order behind the segment workers and plans each frame's classification."""

    jobs_in: Channel
    jobs_out: Channel
    control: RunControl
    stats: PipelineStats
    tracker: SlideTracker

    def run(self) -> None:
        held: Dict[int, Any] = {}
        next_seq = 0
        try:
            while True:
                job = self.jobs_in.get()
                if job is CLOSED or self.control.aborted:
                    break
                held[job.seq] = job
                while next_seq in held:
                    if not self.jobs_out.put(self.plan(held.pop(next_seq))):
                        return
                    next_seq += 1
            if not self.control.aborted:
                for seq in sorted(held):  # frames past max_frames leave gaps; the rest go in order
                    self.jobs_out.put(self.plan(held.pop(seq)))
        finally:
            self.jobs_out.close()

    def plan(self, job: Any) -> Any:
        """Pair the job's cells with tracks; only the cells to classify go to the classifier."""
        judgement = job.frame.track
        if judgement is None:
            return job
        t0 = time.perf_counter()
        job.track_plan = self.tracker.assign(judgement, [c.bbox for c in job.cells])
        job.to_classify = [i for i, c in enumerate(job.track_plan.classify) if c]
        job.cells_left = len(job.to_classify)
        self.stats.add_busy("track", time.perf_counter() - t0)
        return job


def record_cells(tracker: SlideTracker, job: Any, cells: Tuple[Cell, ...]) -> Tuple[Any, ...]:
    """(cells with their cell_id, meta["track"], final records) of one frame, in frame order.

    ``cells`` are the job's cells with the p_all the classifier gave (None where it was not
    asked); a cell not classified carries its track's p_all and label."""
    plan = job.track_plan
    if plan is None:  # segmented before tracking could plan it (or not judged): pair as a whole
        ft = tracker.pair(job.frame.track, [c.bbox for c in cells], [c.p_all for c in cells])
        return tuple(replace(c, cell_id=cid) for c, cid in zip(cells, ft.cell_ids)), ft.meta(), tuple(ft.finals)
    ft = tracker.record(job.frame.track, plan, [c.p_all for c in cells])
    out = []
    for c, t, cid in zip(cells, plan.tracks, ft.cell_ids):
        if c.p_all is None and t is not None and t.p_all is not None:
            c = c.classified(t.p_all, t.label or "")
        out.append(replace(c, cell_id=cid))
    return tuple(out), ft.meta(), tuple(ft.finals)


def skip_segmenting(frame: Any) -> bool:
    """True for a frame the track stage judged not worth looking at (moving, defocused, badly exposed)."""
    judgement = getattr(frame, "track", None)
    return judgement is not None and judgement.skip is not None
