"""The pipeline's four kinds of thread: capture, segment (×K), classify (batches) and results.

With CPU preprocessing the segment workers also preprocess their frame's crops
(the issue's "preprocess and segment" stage), so the classify thread only
runs the model and the CPU the LoG takes overlaps with inference; the CUDA
LoG runs in the classify thread, which owns the CUDA context.

A mixin of :class:`leukedge.device.pipeline.Pipeline`, which owns the
queues, events and counters these bodies use; split out to keep the control
surface (start/stop/results) apart from the thread loops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, List, Optional, Tuple

import numpy as np

from leukedge.device.cuda_context import CudaContext
from leukedge.device.preprocessing import CpuPreprocessor, CudaPreprocessor
from leukedge.device.runtimes.base import Runtime
from leukedge.device.sources.base import Frame, FrameSource
from leukedge.device.stats import PipelineStats
from leukedge.errors import LeukedgeError
from leukedge.manifest import Preprocessing
from leukedge.preprocess import preprocess
from leukedge.segment import SegmentParams, segment
from leukedge.sinks.base import SinkSet
from leukedge.types import Cell, FrameResult

log = logging.getLogger("leukedge.pipeline")
END = object()  # end-of-stream marker passed down every queue
DEFAULT_BATCH = 32


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


def _gather_inputs(items: List[Tuple[Job, int]]) -> np.ndarray:
    """The model inputs of ``items`` as one batch: a frame's rows are consecutive, so the batch is
    a few slices joined (or a whole frame's array as it is)."""
    runs: List[Tuple[Job, int, int]] = []
    for job, i in items:
        if runs and runs[-1][0] is job and runs[-1][2] == i:
            runs[-1] = (job, runs[-1][1], i + 1)
        else:
            runs.append((job, i, i + 1))
    parts = [job.inputs[a:b] for job, a, b in runs]  # type: ignore[index]
    if len(parts) == 1 and len(parts[0]) == len(runs[0][0].inputs):  # type: ignore[arg-type]
        return parts[0]
    return np.concatenate(parts)


class Stages:
    source: FrameSource
    runtime: Runtime
    spec: Preprocessing
    sinks: SinkSet
    stats_: PipelineStats
    error: Optional[BaseException]
    preprocess_kind: str
    latest_frame: bool
    workers: int
    requested_batch: Optional[int]
    batch_limit: int
    max_frames: Optional[int]
    duration: Optional[float]
    segment_params: Optional[SegmentParams]
    segment_niceness: int
    _deliver: bool
    _deliver_lock: threading.Lock
    _early: Deque[FrameResult]
    _early_dropped: int
    _frames_q: queue.Queue[Any]
    _jobs_q: queue.Queue[Any]
    _done_q: queue.Queue[Any]
    _out_q: queue.Queue[Any]
    _stop_capture: threading.Event
    _abort: threading.Event
    _consumer_gone: threading.Event
    _ready: threading.Event
    _finished: threading.Event
    _take_lock: threading.Lock
    _err_lock: threading.Lock
    _seq: int
    _threads: List[threading.Thread]
    _t_start: float
    _captured: int

    def stop(self, drain: bool = True) -> None:
        raise NotImplementedError

    def _spawn(self, name: str, target: Any) -> threading.Thread:
        t = threading.Thread(target=self._guard, args=(target,), name=name, daemon=True)
        self._threads.append(t)
        t.start()
        return t

    def _guard(self, target: Any) -> None:
        try:
            target()
        except BaseException as exc:  # any thread's failure stops the run and reaches the caller
            self._fail(exc, drain=False)

    def _fail(self, exc: BaseException, *, drain: bool) -> None:
        with self._err_lock:
            if self.error is None:
                self.error = exc
                if not isinstance(exc, LeukedgeError):
                    log.error("pipeline thread failed", exc_info=exc)
        self.stop(drain=drain)

    def _put(self, q: queue.Queue[Any], item: Any, *, must: bool = False) -> bool:
        """Blocking put that gives up when the run is aborted (``must``: also when the consumer left)."""
        while True:
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                if self._abort.is_set() or (not must and q is self._out_q and self._consumer_gone.is_set()):
                    return False

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                if self._abort.is_set():
                    return END

    def _capture_loop(self) -> None:
        try:
            while not self._stop_capture.is_set():
                if self.duration is not None and time.time() - self._t_start >= self.duration:
                    break
                t0, idle0 = time.perf_counter(), self.source.idle_s
                try:
                    frame = self.source.read()
                except LeukedgeError as exc:  # a bad frame or a lost camera: finish what was captured, then raise
                    self._fail(exc, drain=True)
                    break
                self.stats_.add_busy("capture", time.perf_counter() - t0 - (self.source.idle_s - idle0))
                if frame is None:
                    break
                self._captured += 1
                if self.latest_frame:
                    self._put_latest(frame)
                elif not self._put(self._frames_q, frame):
                    break
        finally:
            for _ in range(self.workers):
                self._put(self._frames_q, END, must=True)

    def _put_latest(self, frame: Frame) -> None:
        while True:
            try:
                self._frames_q.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self._frames_q.get_nowait()  # the stale frame nobody took yet
                    self.stats_.add_drop()
                except queue.Empty:
                    pass

    def _take(self) -> Tuple[Any, int]:
        with self._take_lock:  # sequence numbers follow the order frames leave the queue
            item = self._get(self._frames_q)
            if item is END:
                return item, -1
            seq = self._seq
            self._seq += 1
            return item, seq

    def _segment_loop(self) -> None:
        lower_thread_priority(self.segment_niceness)
        try:
            while True:
                frame, seq = self._take()
                if frame is END or self._abort.is_set():
                    break
                if self.max_frames is not None and seq >= self.max_frames:
                    self._stop_capture.set()
                    continue
                t0 = time.perf_counter()
                cells = segment(frame.image, self.spec, params=self.segment_params)
                t1 = time.perf_counter()
                self.stats_.add_busy("segment", t1 - t0)
                inputs = None
                if cells and self.preprocess_kind == "cpu":
                    inputs = preprocess([c.crop for c in cells], self.spec)
                    self.stats_.add_busy("preprocess", time.perf_counter() - t1)
                if not self._put(self._jobs_q, Job(seq, frame, cells, inputs)):
                    break
        finally:
            self._put(self._jobs_q, END, must=True)

    def _classify_loop(self) -> None:
        with contextlib.ExitStack() as stack:
            try:
                prep = self._open_models(stack)
            except BaseException as exc:
                self._fail(exc, drain=False)  # recorded before start() is woken, which raises it
                return
            finally:
                self._ready.set()
            self._batch_loop(prep)

    def _open_models(self, stack: contextlib.ExitStack) -> Any:
        ctx: Optional[CudaContext] = None
        if self.preprocess_kind == "cuda":
            ctx = CudaContext().open()
            stack.callback(ctx.close)
            stack.enter_context(ctx)  # current in this thread for its whole life
        self.runtime.open()
        stack.callback(self.runtime.close)
        self.batch_limit = self.requested_batch or self.runtime.max_batch or DEFAULT_BATCH
        if self.runtime.max_batch:
            self.batch_limit = min(self.batch_limit, self.runtime.max_batch)
        if ctx is not None:
            prep: Any = CudaPreprocessor(self.spec, max_batch=self.batch_limit, context=ctx)
        else:
            prep = CpuPreprocessor(self.spec)
        prep.open()
        stack.callback(prep.close)
        return prep

    def _batch_loop(self, prep: Any) -> None:
        pending: Deque[Tuple[Job, int]] = deque()
        ends = 0
        try:
            while ends < self.workers:
                job = self._get(self._jobs_q)
                while True:  # take what is already waiting, up to one batch: batches grow under load
                    if job is END:
                        ends += 1
                    elif not job.cells:
                        self._put(self._done_q, job)
                    else:
                        job.p_all = [0.0] * len(job.cells)
                        pending.extend((job, i) for i in range(len(job.cells)))
                    if ends >= self.workers or len(pending) >= self.batch_limit:
                        break
                    try:
                        job = self._jobs_q.get_nowait()
                    except queue.Empty:
                        break
                if self._abort.is_set():
                    return
                while pending:
                    self._classify(prep, [pending.popleft() for _ in range(min(self.batch_limit, len(pending)))])
        finally:
            self._put(self._done_q, END, must=True)

    def _classify(self, prep: Any, items: List[Tuple[Job, int]]) -> None:
        t0 = time.perf_counter()
        if items[0][0].inputs is not None:  # preprocessed by the segment workers
            batch = _gather_inputs(items)
        else:
            batch = prep.prepare([job.cells[i].crop for job, i in items])
            self.stats_.add_busy("preprocess", time.perf_counter() - t0)
        t1 = time.perf_counter()
        p = self.runtime.p_all(batch)
        t2 = time.perf_counter()
        self.stats_.add_busy("classify", t2 - t1)
        self.stats_.add_batch(len(items))
        for (job, i), value in zip(items, np.asarray(p, dtype=np.float64)):
            job.p_all[i] = float(value)
            if i == len(job.cells) - 1:  # a frame's cells are queued in order: its last cell completes it
                self._put(self._done_q, job)

    def _results_loop(self) -> None:
        held = {}
        next_seq = 0
        try:
            while True:
                job = self._get(self._done_q)
                if job is END:
                    break
                held[job.seq] = job
                while next_seq in held:
                    self._deliver_one(held.pop(next_seq))
                    next_seq += 1
            if not self._abort.is_set():
                for seq in sorted(held):  # only after an error upstream can a gap remain
                    self._deliver_one(held.pop(seq))
            self.sinks.flush()
        finally:
            self._finished.set()
            if self._deliver:
                self._put(self._out_q, END, must=True)

    def _deliver_one(self, job: Job) -> None:
        m = self.runtime.manifest
        cells = tuple(c.classified(p, m.label_for(p)) for c, p in zip(job.cells, job.p_all))
        f = job.frame
        result = FrameResult(
            index=f.index,
            source=f.source,
            t_capture=f.t_capture,
            t_result=time.time(),
            cells=cells,
            width=f.width,
            height=f.height,
            meta=dict(f.meta),
        )
        t0 = time.perf_counter()
        if getattr(self.sinks, "wants_frames", False):  # a sink that shows pixels (the live view) gets the frame
            self.sinks.write_frame(result, f.image)  # type: ignore[attr-defined]
        else:
            self.sinks.write(result)
        self.stats_.add_busy("output", time.perf_counter() - t0)
        self.stats_.add_frame(len(cells), result.n_all, result.latency_s)
        with self._deliver_lock:
            deliver = self._deliver
            if not deliver and self._early.maxlen:
                self._early_dropped += len(self._early) == self._early.maxlen
                self._early.append(result)
        if deliver and not self._consumer_gone.is_set():
            self._put(self._out_q, result)
