"""The pipeline's stages: capture, segment (+ CPU preprocess), classify (device/classify.py) and results.

Each stage is an object that takes everything it uses in its constructor —
the channels it reads and writes, the :class:`RunControl` of the run, the
counters — and has one loop, ``run()``.  No stage reads another's state; they
meet only in channels.  With CPU preprocessing the segment workers also
preprocess their frame's crops, so the classify stage only runs the model
and the CPU the LoG takes overlaps with inference.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, List, Optional

import numpy as np

from leukedge.device.channel import CLOSED, Channel, RunControl
from leukedge.device.sources.base import Frame, FrameSource
from leukedge.device.stats import PipelineStats
from leukedge.device.track import record_cells, skip_segmenting
from leukedge.errors import LeukedgeError
from leukedge.manifest import Manifest, Preprocessing
from leukedge.preprocess import preprocess
from leukedge.segment import SegmentParams, segment
from leukedge.sinks.base import SinkSet
from leukedge.tracking import SlideTracker
from leukedge.types import Cell, FrameResult

log = logging.getLogger("leukedge.pipeline")


def lower_thread_priority(niceness: int) -> None:
    """Make the calling thread yield the CPU to the others (Linux: per-thread nice); no-op elsewhere.

    Segmentation threads get a lower priority so that, on a CPU that also runs
    the classifier, they fill the classifier's idle moments instead of
    stalling its parallel kernels (a preempted worker thread holds up a whole
    batch).  Raising one's niceness needs no privilege.
    """
    if niceness <= 0 or not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + niceness))
    except OSError:  # not permitted in some sandboxes: run at normal priority
        pass


@dataclass
class Job:
    """One frame on its way through: its cells (with crops), their model inputs when a segment
    worker preprocessed them, and, filled in batches, their p_all."""

    seq: int
    frame: Frame
    cells: List[Cell]
    inputs: Optional[np.ndarray] = None
    p_all: List[float] = field(default_factory=list)
    cells_left: int = 0  # cells not classified yet; the classify stage counts it down
    to_classify: Optional[List[int]] = None  # with tracking: the cells to classify (None: all)
    track_plan: Any = None  # with tracking: the pair stage's leukedge.tracking.Assignment
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def record(self, i: int, value: float) -> bool:
        """Store cell ``i``'s p_all; True when it was the frame's last cell (several workers may share a frame)."""
        with self.lock:
            self.p_all[i] = value
            self.cells_left -= 1
            return self.cells_left == 0


@dataclass(eq=False)
class CaptureStage:
    """Reads the source into ``frames_out``: lossless (waits) for files, newest-frame-only for live sources."""

    source: FrameSource
    frames_out: Channel
    control: RunControl
    stats: PipelineStats
    latest_frame: bool
    duration: Optional[float] = None
    captured: int = 0

    def run(self) -> None:
        t_start = time.time()
        try:
            while not self.control.capture_stopped:
                if self.duration is not None and time.time() - t_start >= self.duration:
                    break
                frame = self._read()
                if frame is None:
                    break
                self.captured += 1
                if self.latest_frame:
                    dropped = self.frames_out.put_latest(frame)
                    if dropped:
                        self.stats.add_drop(dropped)
                elif not self.frames_out.put(frame):
                    break
        finally:
            self.frames_out.close()

    def _read(self) -> Optional[Frame]:
        t0, idle0 = time.perf_counter(), self.source.idle_s
        try:
            frame = self.source.read()
        except LeukedgeError as exc:  # a bad frame or a lost camera: finish what was captured, then raise
            self.control.fail(exc, drain=True)
            return None
        self.stats.add_busy("capture", time.perf_counter() - t0 - (self.source.idle_s - idle0))
        return frame


class FrameCounter:
    """Numbers frames in the order they leave the frames channel, across the segment workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0

    def take(self, frames_in: Channel) -> Any:
        """(frame, seq), or (CLOSED, -1) at the end."""
        with self._lock:
            item = frames_in.get()
            if item is CLOSED:
                return item, -1
            seq = self._next
            self._next += 1
            return item, seq


@dataclass(eq=False)
class SegmentStage:
    """Cuts a frame's white cells (and, with CPU preprocessing, makes their model inputs) into ``jobs_out``.

    K of them share ``frames_in`` and one ``counter``, which numbers frames in the order they are taken.
    """

    frames_in: Channel
    jobs_out: Channel
    control: RunControl
    stats: PipelineStats
    spec: Preprocessing
    counter: FrameCounter
    preprocess_on_cpu: bool
    params: Optional[SegmentParams] = None
    max_frames: Optional[int] = None
    niceness: int = 0

    def run(self) -> None:
        lower_thread_priority(self.niceness)
        try:
            while True:
                frame, seq = self.counter.take(self.frames_in)
                if frame is CLOSED or self.control.aborted:
                    break
                if self.max_frames is not None and seq >= self.max_frames:
                    self.control.end_capture()
                    continue
                if not self.jobs_out.put(self.process(frame, seq)):
                    break
        finally:
            self.jobs_out.close()

    def process(self, frame: Frame, seq: int) -> Job:
        if skip_segmenting(frame):  # moving, defocused or badly exposed: its cells would not be looked at
            return Job(seq, frame, [], None, p_all=[], cells_left=0)
        t0 = time.perf_counter()
        cells = segment(frame.image, self.spec, params=self.params)
        t1 = time.perf_counter()
        self.stats.add_busy("segment", t1 - t0)
        inputs = None
        if cells and self.preprocess_on_cpu:
            inputs = preprocess([c.crop for c in cells], self.spec)
            self.stats.add_busy("preprocess", time.perf_counter() - t1)
        return Job(seq, frame, cells, inputs, p_all=[0.0] * len(cells), cells_left=len(cells))


class ResultOutlet:
    """Where finished frame results wait for the ``results()`` iterator, if anyone iterates.

    Before ``deliver()`` nothing is queued except the newest ``keep_early``
    results, kept for an iterator that starts just after frames began to
    flow (another thread submitted first).  ``detach()``: the reader left.
    """

    def __init__(self, channel: Channel, *, deliver: bool, keep_early: int = 0) -> None:
        self.channel = channel
        self._deliver = deliver
        self._lock = threading.Lock()
        self._early: Deque[FrameResult] = deque(maxlen=max(0, keep_early))
        self._early_dropped = 0

    @property
    def delivering(self) -> bool:
        return self._deliver

    def deliver(self) -> None:
        """Queue results from now on, after the early ones kept."""
        self.channel.attach()
        with self._lock:
            while self._early:
                self.channel.put_latest(self._early.popleft())  # the channel is empty before delivery
            self._deliver = True
            if self._early_dropped:
                log.warning(
                    "iteration began after %d frame result(s) had finished; the oldest %d reached only "
                    "the sinks and callbacks",
                    self._early_dropped + self._early.maxlen,  # type: ignore[operator]
                    self._early_dropped,
                )
                self._early_dropped = 0  # said once

    def offer(self, result: FrameResult) -> None:
        with self._lock:
            deliver = self._deliver
            if not deliver and self._early.maxlen:
                self._early_dropped += len(self._early) == self._early.maxlen
                self._early.append(result)
        if deliver:
            self.channel.put(result)  # False (dropped) once the reader detached

    def detach(self) -> None:
        self.channel.detach()


@dataclass(eq=False)
class ResultsStage:
    """Restores frame order, turns jobs into FrameResults and writes them to the sinks and the outlet."""

    done_in: Channel
    control: RunControl
    stats: PipelineStats
    manifest: Manifest
    sinks: SinkSet
    outlet: ResultOutlet
    finished: threading.Event = field(default_factory=threading.Event)
    tracker: Optional[SlideTracker] = None  # pairs cells with cell tracks (the track stage judged the frames)
    _source: str = ""

    def run(self) -> None:
        held: Dict[int, Job] = {}
        next_seq = 0
        try:
            while True:
                job = self.done_in.get()
                if job is CLOSED:
                    break
                held[job.seq] = job
                while next_seq in held:
                    self.deliver(held.pop(next_seq))
                    next_seq += 1
            if not self.control.aborted:
                for seq in sorted(held):  # only after an error upstream can a gap remain
                    self.deliver(held.pop(seq))
                if self.tracker is not None:  # the cells still in view get their final records
                    self.sinks.write_tracks(self.tracker.finish(), self._source)
            self.sinks.flush()
        finally:
            self.finished.set()
            self.outlet.channel.close()

    def deliver(self, job: Job) -> None:
        m = self.manifest
        asked = set(range(len(job.cells)) if job.to_classify is None else job.to_classify)
        cells = tuple(
            c.classified(p, m.label_for(p)) if i in asked else c for i, (c, p) in enumerate(zip(job.cells, job.p_all))
        )
        f = job.frame
        meta = dict(f.meta)
        finals: tuple = ()
        if self.tracker is not None and f.track is not None:
            t0 = time.perf_counter()
            cells, meta["track"], finals = record_cells(self.tracker, job, cells)
            self.stats.add_busy("track", time.perf_counter() - t0)
        self._source = f.source
        result = FrameResult(
            index=f.index,
            source=f.source,
            t_capture=f.t_capture,
            t_result=time.time(),
            cells=cells,
            width=f.width,
            height=f.height,
            meta=meta,
            finals=finals,
        )
        t0 = time.perf_counter()
        if getattr(self.sinks, "wants_frames", False):  # a sink that shows pixels (the live view) gets the frame
            self.sinks.write_frame(result, f.image)  # type: ignore[attr-defined]
        else:
            self.sinks.write(result)
        if finals:
            self.sinks.write_tracks(finals, f.source)
        self.stats.add_busy("output", time.perf_counter() - t0)
        self.stats.add_frame(len(cells), result.n_all, result.latency_s)
        self.outlet.offer(result)
