"""Counters the pipeline keeps while it runs: rates, rolling latency percentiles, per-stage time.

All methods are thread-safe; ``snapshot()`` gives a consistent, JSON-ready copy.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Deque, Dict, Optional, Tuple

import numpy as np

STAGES = ("capture", "segment", "preprocess", "classify", "output")


@dataclass(frozen=True)
class StatsSnapshot:
    elapsed_s: float
    frames: int  # frames screened (results delivered)
    cells: int
    n_all: int
    dropped: int  # stale frames a live source replaced before they were screened
    fps: float  # over the last ``window_s`` seconds
    cells_per_s: float
    latency_p50_ms: Optional[float]  # capture → results, over the last ``latency_window`` frames
    latency_p99_ms: Optional[float]
    stage_ms: Dict[str, float] = field(default_factory=dict)  # busy time per frame, by stage
    stage_share: Dict[str, float] = field(default_factory=dict)  # fraction of all stages' busy time
    batches: int = 0
    mean_batch: float = 0.0
    reconnects: int = 0
    gap_s: float = 0.0
    mean_fps: float = 0.0  # over the whole run
    mean_cells_per_s: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class PipelineStats:
    def __init__(self, *, window_s: float = 5.0, latency_window: int = 500) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self._t0 = time.perf_counter()
        self._events: Deque[Tuple[float, int]] = deque()  # (t, cells) per delivered frame
        self._latency: Deque[float] = deque(maxlen=latency_window)
        self._busy: Dict[str, float] = {s: 0.0 for s in STAGES}
        self.frames = 0
        self.cells = 0
        self.n_all = 0
        self.dropped = 0
        self.batches = 0
        self.batched_cells = 0
        self.reconnects = 0
        self.gap_s = 0.0

    def start(self) -> None:
        with self._lock:
            self._t0 = time.perf_counter()

    def add_busy(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._busy[stage] = self._busy.get(stage, 0.0) + seconds

    def add_drop(self, n: int = 1) -> None:
        with self._lock:
            self.dropped += n

    def add_batch(self, size: int) -> None:
        with self._lock:
            self.batches += 1
            self.batched_cells += size

    def add_frame(self, cells: int, n_all: int, latency_s: float) -> None:
        now = time.perf_counter()
        with self._lock:
            self.frames += 1
            self.cells += cells
            self.n_all += n_all
            self._latency.append(latency_s)
            self._events.append((now, cells))
            while self._events and now - self._events[0][0] > self.window_s:
                self._events.popleft()

    def snapshot(self) -> StatsSnapshot:
        now = time.perf_counter()
        with self._lock:
            elapsed = now - self._t0
            recent = [e for e in self._events if now - e[0] <= self.window_s]
            span = min(self.window_s, elapsed) or 1e-9
            lat = np.array(self._latency) * 1000.0 if self._latency else None
            busy = dict(self._busy)
            total_busy = sum(busy.values()) or 1e-9
            per_frame = max(1, self.frames)
            return StatsSnapshot(
                elapsed_s=round(elapsed, 3),
                frames=self.frames,
                cells=self.cells,
                n_all=self.n_all,
                dropped=self.dropped,
                fps=round(len(recent) / span, 2),
                cells_per_s=round(sum(c for _, c in recent) / span, 2),
                latency_p50_ms=None if lat is None else round(float(np.percentile(lat, 50)), 1),
                latency_p99_ms=None if lat is None else round(float(np.percentile(lat, 99)), 1),
                stage_ms={k: round(1000.0 * v / per_frame, 2) for k, v in busy.items()},
                stage_share={k: round(v / total_busy, 3) for k, v in busy.items()},
                batches=self.batches,
                mean_batch=round(self.batched_cells / self.batches, 2) if self.batches else 0.0,
                reconnects=self.reconnects,
                gap_s=round(self.gap_s, 3),
                mean_fps=round(self.frames / elapsed, 2) if elapsed > 0 else 0.0,
                mean_cells_per_s=round(self.cells / elapsed, 2) if elapsed > 0 else 0.0,
            )
