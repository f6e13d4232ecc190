"""The threaded screening pipeline: capture → segment (+ CPU LoG) → classify (batched) → results.

::

    capture ─frames_q─► segment ×K ─jobs_q─► GPU/classify worker ─done_q─► results ─► sinks, iterator
    (source)  live: newest frame only    (dynamic batches of the cells     (frame order restored,
              files: lossless            of one or more frames; the         t_result stamped)
                                         CUDA LoG when used)

Queues are bounded.  With a live source the capture thread never waits:
when the segment workers are busy, the waiting frame is replaced by the
newer one and counted as dropped.  File sources wait instead and lose
nothing.  With CPU preprocessing each segment worker preprocesses the crops it
cut, so the classify thread only runs the model.  The classify worker owns the
CUDA context (when the CUDA LoG or TensorRT is used), the CUDA preprocessor and
the runtime: it opens them in its own thread, and ``start()`` raises whatever
that opening raised.

``stop(drain=True)`` stops capturing and lets every frame already captured
flow through to the sinks; ``stop(drain=False)`` abandons them.  Errors in
any thread stop the run and are raised by ``close()`` / the results iterator.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Any, Deque, Iterator, List, Optional

from leukedge.device.preprocessing import choose_preprocess
from leukedge.device.runtimes.base import Runtime
from leukedge.device.sources.base import FrameSource
from leukedge.device.stages import DEFAULT_BATCH, END, Stages
from leukedge.device.stats import PipelineStats, StatsSnapshot
from leukedge.errors import HardwareUnavailableError, InvalidInputError
from leukedge.segment import SegmentParams
from leukedge.sinks.base import SinkSet
from leukedge.types import FrameResult

log = logging.getLogger("leukedge.pipeline")


def default_workers() -> int:
    """Segmentation threads: one on a 2-core CPU (the classifier needs the other), more on bigger boards."""
    cpus = os.cpu_count() or 1
    return 1 if cpus <= 2 else min(4, cpus - 2)


class Pipeline(Stages):
    def __init__(
        self,
        source: FrameSource,
        runtime: Runtime,
        *,
        preprocess: str = "auto",
        sinks: Optional[SinkSet] = None,
        latest_frame: Optional[bool] = None,
        workers: Optional[int] = None,
        max_batch: Optional[int] = None,
        max_frames: Optional[int] = None,
        duration: Optional[float] = None,
        deliver: bool = False,
        segment_params: Optional[SegmentParams] = None,
        first_frame_timeout: float = 30.0,
        segment_niceness: int = 0,
        early_results: int = 0,
    ) -> None:
        self.source = source
        self.runtime = runtime
        self.spec = runtime.manifest.preprocessing
        self.preprocess_mode = preprocess
        self.preprocess_kind, self.preprocess_why = choose_preprocess(preprocess, self.spec)
        self.sinks = sinks or SinkSet()
        self.latest_frame = source.live if latest_frame is None else bool(latest_frame)
        self.workers = workers or default_workers()
        self.requested_batch = max_batch
        self.batch_limit = max_batch or DEFAULT_BATCH
        self.max_frames = max_frames
        self.duration = duration
        self.segment_params = segment_params
        self.segment_niceness = segment_niceness
        self.first_frame_timeout = first_frame_timeout
        self.stats_ = PipelineStats()
        self.error: Optional[BaseException] = None
        self._deliver = deliver
        # Results finished before deliver_results() is called, kept for the iterator (the newest
        # ``early_results``): an application may start iterating just after frames started to flow.
        self._early: Deque[FrameResult] = deque(maxlen=max(0, early_results))
        self._early_dropped = 0
        self._deliver_lock = threading.Lock()
        # One waiting frame is enough to keep the workers busy; more would only add latency.
        self._frames_q: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._jobs_q: queue.Queue[Any] = queue.Queue(maxsize=self.workers + 2)
        self._done_q: queue.Queue[Any] = queue.Queue(maxsize=64)
        self._out_q: queue.Queue[Any] = queue.Queue(maxsize=32)
        self._stop_capture = threading.Event()
        self._abort = threading.Event()
        self._consumer_gone = threading.Event()
        self._ready = threading.Event()
        self._finished = threading.Event()
        self._take_lock = threading.Lock()
        self._err_lock = threading.Lock()
        self._seq = 0
        self._threads: List[threading.Thread] = []
        self._t_start = 0.0
        self._captured = 0
        self._started = False
        self._raised = False
        self._capturing = False
        self._ran = False

    # -- control -------------------------------------------------------------------
    def prepare(self) -> Pipeline:
        """Open the source, the models (in the classify thread) and the sinks; start all threads but capture."""
        if self._started:
            return self
        self._started = True
        self.source.open()
        gpu = self._spawn("leukedge-classify", self._classify_loop)
        while not self._ready.wait(0.05):
            if not gpu.is_alive():
                break
        if self.error is not None:
            gpu.join()
            self.source.close()
            raise self.error
        try:
            self.sinks.open()
        except BaseException:  # e.g. the live view's port is taken: release the models and the source
            self._abort.set()
            gpu.join(10.0)
            self.source.close()
            raise
        self._spawn("leukedge-results", self._results_loop)
        for k in range(self.workers):
            self._spawn(f"leukedge-segment-{k}", self._segment_loop)
        return self

    def start(self) -> Pipeline:
        """``prepare()`` if needed, then start capturing."""
        self.prepare()
        with self._err_lock:
            if self._capturing:
                return self
            self._capturing = True
        self._t_start = time.time()
        self.stats_.start()
        self._ran = True
        self._spawn("leukedge-capture", self._capture_loop)
        return self

    def deliver_results(self) -> None:
        """Queue results for ``results()`` from now on (before ``start()``: from the first frame; after
        it, from the oldest of the ``early_results`` kept, if any)."""
        self._consumer_gone.clear()
        with self._deliver_lock:
            while self._early:
                self._out_q.put_nowait(self._early.popleft())  # out_q is empty before delivery; it holds 32
            self._deliver = True
            if self._early_dropped:
                log.warning(
                    "iteration began after %d frame result(s) had finished; the oldest %d reached only "
                    "the sinks and callbacks",
                    self._early_dropped + self._early.maxlen,  # type: ignore[operator]
                    self._early_dropped,
                )
                self._early_dropped = 0  # said once

    def stop(self, drain: bool = True) -> None:
        """Stop capturing; with ``drain`` the frames in flight are finished and written, else abandoned."""
        self._stop_capture.set()
        self.source.interrupt()
        if not drain:
            self._abort.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until every thread has finished (True) or ``timeout`` passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            t.join(left)
            if t.is_alive():
                return False
        return True

    def close(self) -> None:
        """Drain, join, flush and close sinks and the source; raise the first error a thread hit."""
        if not self._started:
            return
        if not self._capturing:  # prepared, never started: a capture thread that stops at once ends the others
            self._capturing = True
            self._stop_capture.set()
            self._spawn("leukedge-capture", self._capture_loop)
        self.stop(drain=True)  # an error that must not drain has already aborted the run
        self.detach_consumer()
        if not self.wait(timeout=30.0):
            self.stop(drain=False)
            self.wait(timeout=10.0)
        try:
            self.sinks.close()
        finally:
            self.source.close()
        self._check_result()

    def detach_consumer(self) -> None:
        """The iterator's reader went away: stop queueing results for it (sinks still get them)."""
        self._consumer_gone.set()

    def results(self) -> Iterator[FrameResult]:
        """Frame results in frame order, until the source ends or the run stops (needs ``deliver=True``)."""
        if not self._deliver:
            raise RuntimeError("Pipeline(deliver=True) is needed to iterate over results")
        try:
            while True:
                self.poll()
                try:
                    item = self._out_q.get(timeout=0.1)
                except queue.Empty:
                    if self._finished.is_set() and self._out_q.empty():
                        break  # an aborted run may not have queued its end marker
                    continue
                if item is END:
                    break
                yield item
        finally:
            self.detach_consumer()
        self._check_result()

    def run(self) -> StatsSnapshot:
        """Until the source ends, ``max_frames`` or ``duration``; returns the final counters."""
        while not self._finished.wait(0.1):
            self.poll()
        self.close()
        return self.stats()

    def poll(self) -> None:
        """Watchdog called from the consumer's thread: a live source that never delivers a frame is an error."""
        if self.source.kind == "push":
            return  # an application may take its time before it submits the first frame
        if self._captured == 0 and self._t_start and not self._stop_capture.is_set():
            waited = time.time() - self._t_start
            if waited > self.first_frame_timeout:
                self._fail(
                    HardwareUnavailableError(
                        f"source {self.source.uri}: no frame in {waited:.0f} s",
                        hint="check that the camera streams (for USB cameras: v4l2-ctl --stream-mmap --stream-count=10)",
                    ),
                    drain=True,
                )

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    @property
    def capturing(self) -> bool:
        return self._capturing

    def wait_finished(self, timeout: float) -> bool:
        """True once the results thread has delivered the last frame."""
        return self._finished.wait(timeout)

    def stats(self) -> StatsSnapshot:
        snap = self.stats_.snapshot()
        extra = self.source.stats()
        if extra.get("reconnects") or extra.get("dropped_at_submit"):
            snap = replace(
                snap,
                reconnects=int(extra.get("reconnects", 0)),
                gap_s=float(extra.get("gap_s", 0.0)),
                dropped=snap.dropped + int(extra.get("dropped_at_submit", 0)),
            )
        return snap

    def _check_result(self) -> None:
        if self._raised:
            return
        if self.error is not None:
            self._raised = True
            raise self.error
        if self._ran and self.source.frames == 0 and not self._abort.is_set() and self.source.kind != "push":
            self._raised = True
            skipped = self.source.skipped
            why = f"; {len(skipped)} file(s) skipped as unreadable, e.g. {skipped[0][1]}" if skipped else ""
            raise InvalidInputError(
                f"source {self.source.uri} delivered no frame{why}",
                hint="check the source: a folder needs readable images, a video at least one frame",
            )
