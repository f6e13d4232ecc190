"""The track stage: each captured frame's exposure, stage motion and focus, in capture order.

::

    CaptureStage ─frames─► TrackStage ─judged─► SegmentStage ×K ─► … ─► ResultsStage (pairs the cells)
                            (leukedge.tracking: motion by phase correlation, focus, exposure)

It sits between capture and segmentation, where frames still come one at a time in order,
and judges each with :meth:`leukedge.tracking.SlideTracker.judge`; the judgement rides on the
frame (``Frame.track``).  A frame skipped as moving, defocused or badly exposed is not
segmented or classified (its cells would not be looked at), which is where tracking saves
work.  The results stage, where frame order is restored, pairs each frame's classified cells
with the cell tracks (:meth:`SlideTracker.pair`) and writes the final records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Tuple

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


def pair_cells(tracker: SlideTracker, judgement: Any, cells: Tuple[Cell, ...]) -> Tuple[Any, ...]:
    """(cells with their cell_id, meta["track"], final records) of one judged frame, in frame order."""
    ft = tracker.pair(judgement, [c.bbox for c in cells], [c.p_all for c in cells])
    tracked = tuple(replace(c, cell_id=cid) for c, cid in zip(cells, ft.cell_ids))
    return tracked, ft.meta(), tuple(ft.finals)


def skip_segmenting(frame: Any) -> bool:
    """True for a frame the track stage judged not worth looking at (moving, defocused, badly exposed)."""
    judgement = getattr(frame, "track", None)
    return judgement is not None and judgement.skip is not None
