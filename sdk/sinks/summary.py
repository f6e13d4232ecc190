"""The running slide summary: counts with a Wilson interval, adequacy, fps and latency, updated per frame.

``SummarySink`` is always part of the sinks ``build_sinks`` makes, so that
``screen`` can print the slide summary at the end
(:func:`leukedge.report.screen_summary`).  The live view and MQTT keep their
own ``RunningSummary`` and publish its ``to_dict()``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Deque, Dict, Optional, Tuple

from leukedge.manifest import Decision
from leukedge.sinks.base import Sink
from leukedge.tally import DEFAULT_MIN_CELLS, CellTally, coverage
from leukedge.types import FrameResult

FPS_WINDOW_S = 2.0
LATENCY_WINDOW = 300  # frames


class RunningSummary:
    """Thread-safe: ``update`` from the results thread, ``to_dict`` from anywhere.

    With tracking (frames carry ``meta["track"]``) the counts are of unique cells: a cell is
    counted once, from the frame its track is confirmed (with its p_all so far), and its final
    record replaces that provisional figure; frames skipped are counted by reason.
    """

    def __init__(
        self,
        *,
        band: Tuple[float, float] = Decision().indeterminate,
        min_cells: int = DEFAULT_MIN_CELLS,
        model: str = "",
    ) -> None:
        self.tally = CellTally(band)
        self.min_cells = min_cells
        self.model = model
        self.started = time.time()
        self.last_result: Optional[float] = None
        self._times: Deque[float] = deque()
        self._latency: Deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._lock = threading.Lock()
        self.tracked = False
        self._unique: Dict[int, Tuple[Optional[str], Optional[float], bool]] = {}  # cell_id: label, p, final
        self._skipped: Dict[str, int] = {}
        self._fields: set = set()
        self._looks: Dict[int, int] = {}  # cell_id: good looks, from the final records

    def update(self, result: FrameResult) -> None:
        track = result.meta.get("track")
        with self._lock:
            self.tally.add_frame(len(result.cells))
            if isinstance(track, dict):
                self._update_tracked(result, track)
            else:
                for c in result.cells:
                    self.tally.add_cell(c.label, c.p_all)
            now = time.time()
            self.last_result = now
            self._times.append(now)
            while self._times and now - self._times[0] > FPS_WINDOW_S:
                self._times.popleft()
            self._latency.append(result.latency_s)

    def _update_tracked(self, result: FrameResult, track: Dict[str, Any]) -> None:
        self.tracked = True
        skip = track.get("skip")
        if skip:
            self._skipped[skip] = self._skipped.get(skip, 0) + 1
        if track.get("field") is not None:
            self._fields.add(track["field"])
        for c in result.cells:
            if c.cell_id is not None and not self._unique.get(c.cell_id, (None, None, False))[2]:
                self._unique[c.cell_id] = (c.label, c.p_all, False)

    def add_finals(self, finals: Any) -> None:
        """Final records (``CellTrack``) fix the counted cells' labels."""
        with self._lock:
            self.tracked = True
            for t in finals:
                if t.cell_id is not None:
                    self._unique[t.cell_id] = (t.label, t.p_all, True)
                    self._looks[t.cell_id] = t.good_frames

    def _tally(self) -> CellTally:
        if not self.tracked:
            return self.tally
        tally = CellTally(self.tally.band, positive=self.tally.positive)
        tally.frames, tally.empty_frames = self.tally.frames, self.tally.empty_frames
        for label, p, _ in self._unique.values():
            tally.add_cell(label, p)
        return tally

    def to_dict(self) -> Dict[str, Any]:
        with self._lock:
            out = (
                self.tally.summary(min_cells=self.min_cells)
                if not self.tracked
                else self._tally().summary(min_cells=self.min_cells)
            )
            out["counting"] = "unique cells" if self.tracked else "cells per frame"
            out["skipped"] = dict(self._skipped)
            out["fields"] = len(self._fields) if self.tracked else None
            out.update(coverage(len(self._unique), len(self._fields), list(self._looks.values())))
            out["final_cells"] = sum(1 for v in self._unique.values() if v[2])
            times = list(self._times)
            lat = sorted(self._latency)
            last = self.last_result
        now = time.time()
        fresh = [t for t in times if now - t <= FPS_WINDOW_S]
        span = (fresh[-1] - fresh[0]) if len(fresh) > 1 else 0.0
        out.update(
            model=self.model,
            fps=round((len(fresh) - 1) / span, 2) if span > 0 else 0.0,
            latency_p50_ms=_pct_ms(lat, 0.50),
            latency_p99_ms=_pct_ms(lat, 0.99),
            uptime_s=round(now - self.started, 1),
            last_result_age_s=None if last is None else round(now - last, 2),
        )
        return out


def _pct_ms(sorted_values: list, q: float) -> Optional[float]:
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return round(1000.0 * sorted_values[i], 2)


class SummarySink(Sink):
    """Counts every frame for the end-of-run summary; costs a few microseconds per frame."""

    name = "summary"

    def __init__(self, running: RunningSummary) -> None:
        self.running = running

    def write(self, result: FrameResult) -> None:
        self.running.update(result)

    def write_tracks(self, finals: Any, source: str) -> None:
        self.running.add_finals(finals)

    def stats(self) -> Dict[str, Any]:
        s = self.running.to_dict()
        return {"frames": s["frames"], "cells": s["cells"], "all": s["all"]}
