"""The threaded screening pipeline: the stages of device/stages.py and device/classify.py, wired.

::

    CaptureStage ─frames─► SegmentStage ×K ─jobs─► ClassifyStage ×C ─done─► ResultsStage ─► sinks
    (source)     cap. 1   (cells, and their   K+2  (dynamic batches;  64   (frame order   └─► outlet ─► results()
     live: newest frame    CPU inputs)             the CUDA LoG; owns       restored,            cap. 32
     files: lossless                               the models)              t_result)

With a ``tracker`` (leukedge.tracking), two stages of device/track.py join the graph: a
TrackStage between capture and segmentation (``frames`` ─► TrackStage ─``judged``, cap. 1─►
SegmentStage) judges each frame's exposure, stage motion and focus in order, and frames it
skips are not segmented; a PairStage between segmentation and classification (``jobs`` ─►
PairStage ─``paired``, cap. K+2─► ClassifyStage) restores frame order, pairs the cells with
cell tracks and sends only new looks to the classifier.  The ResultsStage records the looks
and writes one final record per cell.

Channels are bounded (capacities above) and shared through one
:class:`~leukedge.device.channel.RunControl`.  With a live source the
capture stage never waits: when the segment workers are busy, the waiting
frame is replaced by the newer one and counted as dropped.  File sources
wait instead and lose nothing.  The first classify worker owns the CUDA
context (when the CUDA LoG or TensorRT is used), the CUDA preprocessor and
the runtime: it opens them in its own thread, and ``prepare()`` raises
whatever that opening raised.

``stop(drain=True)`` stops capturing and lets every frame already captured
flow through to the sinks; ``stop(drain=False)`` abandons them.  Errors in
any stage stop the run and are raised by ``close()`` / the results iterator.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace
from typing import Iterator, List, Optional

from leukedge.arguments import arg
from leukedge.device.channel import CLOSED, EMPTY, RunControl
from leukedge.device.classify import DEFAULT_BATCH, ClassifyStage, Models
from leukedge.device.preprocessing import choose_preprocess
from leukedge.device.runtimes.base import Runtime
from leukedge.device.sources.base import FrameSource, PushFrameSource
from leukedge.device.stages import CaptureStage, FrameCounter, ResultOutlet, ResultsStage, SegmentStage
from leukedge.device.stats import PipelineStats, StatsSnapshot
from leukedge.device.track import JUDGED_CAPACITY, PairStage, TrackStage
from leukedge.errors import HardwareUnavailableError, InvalidInputError
from leukedge.segment import SegmentParams
from leukedge.sinks.base import SinkSet
from leukedge.tracking import SlideTracker
from leukedge.types import FrameResult

log = logging.getLogger("leukedge.pipeline")
# One waiting frame is enough to keep the workers busy; more would only add latency.
FRAMES_CAPACITY = 1
DONE_CAPACITY = 64
OUT_CAPACITY = 32


def default_workers() -> int:
    """Segmentation threads: one on a 2-core CPU (the classifier needs the other), more on bigger boards."""
    cpus = os.cpu_count() or 1
    return 1 if cpus <= 2 else min(4, cpus - 2)


class Pipeline:
    """Screens a source with a runtime: builds the stages and channels, starts, stops and joins them.

    ``workers``: segment threads (default: :func:`default_workers`);
    ``classify_workers``: threads that call the runtime (default 1; more
    pays off only with a runtime that releases the GIL and whose calls are
    narrower than the CPU, e.g. ONNX Runtime with ``threads=1``; CPU
    preprocessing only).  ``deliver``: queue results for ``results()``.
    """

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
        classify_workers: int = 1,
        tracker: Optional[SlideTracker] = None,
    ) -> None:
        self.source = source
        self.runtime = runtime
        self.spec = runtime.manifest.preprocessing
        self.preprocess_mode = preprocess
        self.preprocess_kind, self.preprocess_why = choose_preprocess(preprocess, self.spec)
        if classify_workers < 1 or (classify_workers > 1 and self.preprocess_kind != "cpu"):
            raise InvalidInputError(
                f"{arg('classify_workers', classify_workers)} is not possible here: 1, or more with CPU preprocessing only",
                hint="the CUDA LoG and TensorRT run in the one thread that owns the CUDA context",
            )
        self.sinks = sinks or SinkSet()
        self.latest_frame = source.live if latest_frame is None else bool(latest_frame)
        self.workers = workers or default_workers()
        self.classify_workers = classify_workers
        self.requested_batch = max_batch
        self.max_frames = max_frames
        self.duration = duration
        self.segment_params = segment_params
        self.segment_niceness = segment_niceness
        self.first_frame_timeout = first_frame_timeout
        self.tracker = tracker  # counts each cell once (leukedge.tracking); None: per-frame counts
        self.stats_ = PipelineStats()
        self.control = RunControl()
        self.control.on_stop(source.interrupt)
        self.models = Models(runtime, preprocess_kind=self.preprocess_kind, requested_batch=max_batch)
        self._build(deliver, early_results)
        self._started = False
        self._raised = False
        self._capturing = False
        self._ran = False
        self._t_start = 0.0
        self._start_lock = threading.Lock()

    def _build(self, deliver: bool, early_results: int) -> None:
        """The stages and the channels between them (see the module's picture)."""
        c, stats = self.control, self.stats_
        frames = c.channel(FRAMES_CAPACITY, name="frames")
        jobs = c.channel(self.workers + 2, producers=self.workers, name="jobs")
        done = c.channel(DONE_CAPACITY, producers=self.classify_workers, name="done")
        self.outlet = ResultOutlet(c.channel(OUT_CAPACITY, name="results"), deliver=deliver, keep_early=early_results)
        self.capture = CaptureStage(
            self.source, frames, c, stats, latest_frame=self.latest_frame, duration=self.duration
        )
        self.track_stage: Optional[TrackStage] = None
        if self.tracker is not None:
            judged = c.channel(JUDGED_CAPACITY, name="judged")
            self.track_stage = TrackStage(frames, judged, c, stats, self.tracker)
            frames = judged
        counter = FrameCounter()
        self.segmenters = [
            SegmentStage(
                frames,
                jobs,
                c,
                stats,
                self.spec,
                counter=counter,
                preprocess_on_cpu=self.preprocess_kind == "cpu",
                params=self.segment_params,
                max_frames=self.max_frames,
                niceness=self.segment_niceness,
            )
            for _ in range(self.workers)
        ]
        self.pair_stage: Optional[PairStage] = None
        if self.tracker is not None:  # frame order restored, classification planned per cell
            paired = c.channel(self.workers + 2, name="paired")
            self.pair_stage = PairStage(jobs, paired, c, stats, self.tracker)
            jobs = paired
        extra = self.classify_workers - 1
        others_done = threading.Semaphore(0)  # released by each extra worker as it leaves
        self.classifiers = [
            ClassifyStage(jobs, done, c, stats, self.models, owner=k == 0, others_done=others_done, other_workers=extra)
            for k in range(self.classify_workers)
        ]
        self.results_stage = ResultsStage(
            done, c, stats, self.runtime.manifest, self.sinks, self.outlet, tracker=self.tracker
        )

    # -- what the stages know -------------------------------------------------------------
    @property
    def error(self) -> Optional[BaseException]:
        return self.control.error

    @property
    def batch_limit(self) -> int:
        return self.models.batch_limit if self.models.ready.is_set() else (self.requested_batch or DEFAULT_BATCH)

    @property
    def finished(self) -> bool:
        return self.results_stage.finished.is_set()

    @property
    def capturing(self) -> bool:
        return self._capturing

    # -- control -------------------------------------------------------------------
    def prepare(self) -> Pipeline:
        """Open the source, the models (in the classify thread) and the sinks; start all stages but capture."""
        if self._started:
            return self
        self._started = True
        self.source.open()
        owner = self.control.spawn("leukedge-classify", self.classifiers[0].run)
        while not self.models.ready.wait(0.05):
            if not owner.is_alive():
                break
        if self.control.error is not None:
            owner.join()
            self.source.close()
            raise self.control.error
        try:
            self.sinks.open()
        except BaseException:  # e.g. the live view's port is taken: release the models and the source
            self.control.abort()
            owner.join(10.0)
            self.source.close()
            raise
        for k, stage in enumerate(self.classifiers[1:], start=1):
            self.control.spawn(f"leukedge-classify-{k}", stage.run)
        self.control.spawn("leukedge-results", self.results_stage.run)
        if self.track_stage is not None and self.pair_stage is not None:
            self.control.spawn("leukedge-track", self.track_stage.run)
            self.control.spawn("leukedge-pair", self.pair_stage.run)
        for k, seg in enumerate(self.segmenters):
            self.control.spawn(f"leukedge-segment-{k}", seg.run)
        return self

    def start(self) -> Pipeline:
        """``prepare()`` if needed, then start capturing."""
        self.prepare()
        with self._start_lock:  # submit() may start the run from several threads at once
            if self._capturing:
                return self
            self._capturing = True
        self._t_start = time.time()
        self.stats_.start()
        self._ran = True
        self.control.spawn("leukedge-capture", self.capture.run)
        return self

    def deliver_results(self) -> None:
        """Queue results for ``results()`` from now on (before ``start()``: from the first frame; after
        it, from the oldest of the ``early_results`` kept, if any)."""
        self.outlet.deliver()

    def stop(self, drain: bool = True) -> None:
        """Stop capturing; with ``drain`` the frames in flight are finished and written, else abandoned."""
        self.control.stop(drain=drain)

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until every stage has finished (True) or ``timeout`` passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in list(self.control.threads):
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            t.join(left)
            if t.is_alive():
                return False
        return True

    def close(self) -> None:
        """Drain, join, flush and close sinks and the source; raise the first error a stage hit."""
        if not self._started:
            return
        if not self._capturing:  # prepared, never started: a capture stage that stops at once ends the others
            self._capturing = True
            self.control.end_capture()
            self.control.spawn("leukedge-capture", self.capture.run)
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
        self.outlet.detach()

    def results(self) -> Iterator[FrameResult]:
        """Frame results in frame order, until the source ends or the run stops (needs ``deliver=True``)."""
        if not self.outlet.delivering:
            raise RuntimeError("Pipeline(deliver=True) is needed to iterate over results")
        try:
            while True:
                self.poll()
                item = self.outlet.channel.get(timeout=0.1)
                if item is CLOSED:
                    break
                if item is not EMPTY:
                    yield item
        finally:
            self.detach_consumer()
        self._check_result()

    def run(self) -> StatsSnapshot:
        """Until the source ends, ``max_frames`` or ``duration``; returns the final counters."""
        while not self.results_stage.finished.wait(0.1):
            self.poll()
        self.close()
        return self.stats()

    def poll(self) -> None:
        """Watchdog called from the consumer's thread: a live source that never delivers a frame is an error."""
        if isinstance(self.source, PushFrameSource):
            return  # an application may take its time before it submits the first frame
        if self.capture.captured == 0 and self._t_start and not self.control.capture_stopped:
            waited = time.time() - self._t_start
            if waited > self.first_frame_timeout:
                self.control.fail(
                    HardwareUnavailableError(
                        f"source {self.source.uri}: no frame in {waited:.0f} s",
                        hint="check that the camera streams (for USB cameras: v4l2-ctl --stream-mmap --stream-count=10)",
                    ),
                    drain=True,
                )

    def wait_finished(self, timeout: float) -> bool:
        """True once the results stage has delivered the last frame."""
        return self.results_stage.finished.wait(timeout)

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
        if self.control.error is not None:
            self._raised = True
            raise self.control.error
        pushed = isinstance(self.source, PushFrameSource)
        if self._ran and self.source.frames == 0 and not self.control.aborted and not pushed:
            self._raised = True
            skipped = self.source.skipped
            why = f"; {len(skipped)} file(s) skipped as unreadable, e.g. {skipped[0][1]}" if skipped else ""
            raise InvalidInputError(
                f"source {self.source.uri} delivered no frame{why}",
                hint="check the source: a folder needs readable images, a video at least one frame",
            )


__all__: List[str] = ["Pipeline", "default_workers"]
