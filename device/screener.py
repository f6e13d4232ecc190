"""``leukedge.Screener``: screen a live source, or frames you push, from Python.

::

    from leukedge import Screener

    with Screener("bundle/", source="synthetic://") as s:      # or "csi://0", "v4l2:///dev/video0", a folder …
        for result in s:                                     # FrameResult, in frame order
            print(result.index, result.n_all, [c.to_dict() for c in result.cells])

    with Screener("bundle/") as s:                           # source=None: your software owns the camera
        s.on_cell(lambda cell, frame: print(frame.index, cell.label, cell.p_all))
        s.submit(rgb_frame)                                  # from any thread; never blocks by default
        …
        s.end()                                              # no more frames; s.run() then waits for the rest

    with Screener("bundle/", source="v4l2:///dev/video0") as s:   # a camera on a microscope
        s.on_track(lambda cell: print(cell.cell_id, cell.label, cell.p_all, cell.looks))
        s.run()                                              # each physical cell once (leukedge.tracking)

Entering the ``with`` block loads the model and opens the source and sinks,
so a wrong model or camera fails there, with a clear error; frames start
flowing when you iterate, call ``run()``/``start()``, or ``submit()``.  All
public methods are thread-safe.  Results are typed (``FrameResult``,
``Cell``) and ``to_dict()`` gives JSON-ready dicts.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from leukedge.bundle import Bundle
from leukedge.device.pipeline import Pipeline
from leukedge.device.runtimes import ModelRef, open_runtime, resolve_model
from leukedge.device.sources import FrameSource, PushSource, make_source
from leukedge.device.stats import StatsSnapshot
from leukedge.errors import InvalidInputError
from leukedge.sinks.base import CallbackSink, Sink, SinkSet
from leukedge.sinks.files import JsonlSink
from leukedge.tracking import CellTrack, SlideTracker, TrackingSettings
from leukedge.types import Cell, FrameResult

log = logging.getLogger("leukedge.screener")
# Frame results kept for an iterator that starts after frames began to flow (e.g. another thread
# submitted first): the newest 16, crops included (~8 MB at 10 cells of 128×128 a frame).
EARLY_RESULTS = 16
CellCallback = Callable[[Cell, FrameResult], None]
FrameCallback = Callable[[FrameResult], None]
TrackCallback = Callable[[CellTrack], None]


def _refuse_existing_results(out: Union[str, os.PathLike[str]]) -> None:
    """A results file that already holds rows is not replaced silently (the CLI's --out rule)."""
    if os.path.isfile(out) and os.path.getsize(out) > 0:
        raise InvalidInputError(
            f"out={os.fspath(out)!r} already holds results",
            hint="pass overwrite=True to replace it, or write to another file",
        )


class Screener:
    """A model, a source and the threaded pipeline between them.

    ``model``: a bundle folder, a :class:`~leukedge.Bundle`, ``None``/"reference"
    (the packaged model) or a Keras ``.h5``.  ``source``: a URI or path (see
    ``leukedge.device.sources``), a :class:`FrameSource`, or ``None``/"push"
    for :meth:`submit`.  ``backend``/``precision``/``preprocess`` are the CLI's
    ``--backend``/``--precision``/``--preprocess``.  ``out``: a JSON Lines
    results file, refused if it already holds results unless ``overwrite``; ``sinks``: more :class:`~leukedge.sinks.Sink` objects.
    ``latest_frame``: drop stale frames (default: for live sources only).
    ``block``: with a push source, make ``submit`` wait instead of dropping.
    ``tracking``: count each physical cell once (stage motion, focus and exposure checks,
    cell tracks; see docs/tracking.md): ``"auto"`` (on, except for a folder of images, whose
    images are separate fields), True, False, or a :class:`~leukedge.tracking.TrackingSettings`.
    """

    def __init__(
        self,
        model: Union[str, os.PathLike[str], Bundle, ModelRef, None] = None,
        source: Union[str, os.PathLike[str], FrameSource, None] = None,
        *,
        backend: str = "auto",
        precision: str = "auto",
        preprocess: str = "auto",
        out: Union[str, os.PathLike[str], None] = None,
        overwrite: bool = False,
        sinks: Sequence[Sink] = (),
        latest_frame: Optional[bool] = None,
        block: bool = False,
        max_frames: Optional[int] = None,
        duration: Optional[float] = None,
        workers: Optional[int] = None,
        max_batch: Optional[int] = None,
        runtime_options: Optional[Dict[str, Any]] = None,
        tracking: Union[bool, str, TrackingSettings] = "auto",
    ) -> None:
        if out is not None and not overwrite:
            _refuse_existing_results(out)
        self.model = model if isinstance(model, ModelRef) else resolve_model(model)
        self.runtime = open_runtime(self.model, backend=backend, precision=precision, **(runtime_options or {}))
        if source is None or (isinstance(source, str) and source in ("push", "push://")):
            source = PushSource(block=block)
        self.source = make_source(source)
        self._cell_callbacks: List[CellCallback] = []
        self._frame_callbacks: List[FrameCallback] = []
        self._track_callbacks: List[TrackCallback] = []
        self._finals: List[CellTrack] = []
        self._lock = threading.RLock()
        self.tracker = self._make_tracker(tracking)
        all_sinks: List[Sink] = [CallbackSink(on_frame=self._dispatch, on_track=self._dispatch_track)]
        if out is not None:
            all_sinks.append(JsonlSink(out, self.model_id, refuse_existing=not overwrite))
        all_sinks.extend(sinks)
        self.sinks = SinkSet(all_sinks)
        self.pipeline = Pipeline(
            self.source,
            self.runtime,
            preprocess=preprocess,
            sinks=self.sinks,
            latest_frame=latest_frame,
            workers=workers,
            max_batch=max_batch,
            max_frames=max_frames,
            duration=duration,
            early_results=EARLY_RESULTS,
            tracker=self.tracker,
        )
        self._iterating = False
        self._closed = False
        self._close_requested = False  # close() called from a callback: done once the run ends
        self._dispatching = threading.local()
        self.callback_errors = 0

    def _make_tracker(self, tracking: Union[bool, str, TrackingSettings]) -> Optional[SlideTracker]:
        if isinstance(tracking, TrackingSettings):
            return SlideTracker(tracking, label_for=self.manifest.label_for)
        if tracking not in (True, False, "auto"):
            raise InvalidInputError(
                f"tracking={tracking!r} is not one of 'auto', True, False or a TrackingSettings",
                hint="Screener(..., tracking='auto') counts each cell once",
            )
        if tracking is False or (tracking == "auto" and self.source.kind == "images"):
            return None
        return SlideTracker(label_for=self.manifest.label_for)

    # -- identity ----------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """The model's short hash, as written in every results record."""
        return self.model.identity

    @property
    def manifest(self) -> Any:
        return self.model.manifest

    def describe(self) -> Dict[str, str]:
        """What is running: model, runtime, preprocessing and source, in words."""
        p = self.pipeline
        return {
            "model": f"{self.manifest.name} ({self.model_id})",
            "runtime": self.runtime.describe(),
            "preprocess": f"{p.preprocess_kind} ({p.preprocess_why})",
            "source": f"{self.source.uri} ({'live: newest frame' if p.latest_frame else 'every frame'})",
        }

    # -- lifecycle ---------------------------------------------------------------------
    def _check_open(self, what: str) -> None:
        if self._closed:
            raise InvalidInputError(
                f"Screener.{what}: this Screener is closed; its run is over and its results were delivered",
                hint="create a new Screener for another run (a closed one cannot be restarted)",
            )

    def open(self) -> Screener:
        """Load the model, open the source and sinks; no frame is taken yet."""
        with self._lock:
            self._check_open("open()")
            self.pipeline.prepare()
        return self

    def start(self) -> Screener:
        """Start screening in the background (results go to callbacks and sinks)."""
        with self._lock:
            self._check_open("start()")
            self.pipeline.start()
        return self

    def run(self) -> StatsSnapshot:
        """Screen until the source ends (or ``max_frames``/``duration``); returns the final counters."""
        self.start()
        try:
            return self.pipeline.run()  # closes the pipeline at the end
        finally:
            self._closed = True

    def stop(self, drain: bool = True) -> None:
        """Stop taking frames; with ``drain`` those in flight are still screened and written."""
        self.pipeline.stop(drain=drain)

    def close(self) -> None:
        """Stop, finish the frames in flight, flush and close everything; raises a run's error.

        Called from inside a callback (the results thread, which cannot wait for
        itself), it stops capturing and the close completes when ``run()`` or the
        iteration returns (or at the next ``close()`` from another thread).
        """
        if getattr(self._dispatching, "active", False):
            self._close_requested = True
            self.pipeline.stop(drain=True)
            return
        with self._lock:
            try:
                self.pipeline.close()
            finally:
                self._closed = True

    def __enter__(self) -> Screener:
        return self.open()

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:
            self.pipeline.stop(drain=exc_type is KeyboardInterrupt)
        try:
            self.close()
        except Exception:
            if exc_type is None:
                raise  # the run's own error; if the block already raised, that one wins

    # -- results -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[FrameResult]:
        """Frame results in frame order until the source ends; one iterator at a time."""
        with self._lock:
            self._check_open("iteration")
            if self._iterating:
                raise InvalidInputError("this Screener is already being iterated", hint="iterate it from one place")
            self._iterating = True
            self.pipeline.prepare()
            self.pipeline.deliver_results()
            self.pipeline.start()
        try:
            yield from self.pipeline.results()
        finally:
            with self._lock:
                self._iterating = False
            if self._close_requested:
                self.close()

    def on_cell(self, callback: CellCallback) -> CellCallback:
        """Call ``callback(cell, frame_result)`` for every classified cell (from the results thread)."""
        with self._lock:
            self._cell_callbacks = [*self._cell_callbacks, callback]
        return callback

    def on_track(self, callback: TrackCallback) -> TrackCallback:
        """With tracking: call ``callback(cell_track)`` once per physical cell, with its final
        record (``leukedge.tracking.CellTrack``: cell_id, combined p_all, label, looks), when it
        leaves the view or the run ends (from the results thread)."""
        with self._lock:
            self._track_callbacks = [*self._track_callbacks, callback]
        return callback

    @property
    def tracks(self) -> List[CellTrack]:
        """The final records so far (all of them once the run ended); empty without tracking."""
        with self._lock:
            return list(self._finals)

    def tracking_stats(self) -> Dict[str, Any]:
        """Fields visited, unique cells, looks per cell, frames skipped and why; {} without tracking."""
        return self.tracker.stats() if self.tracker is not None else {}

    def _dispatch_track(self, track: CellTrack) -> None:
        with self._lock:
            self._finals.append(track)
        for cb in self._track_callbacks:
            self._call(cb, track)

    def on_frame(self, callback: FrameCallback) -> FrameCallback:
        """Call ``callback(frame_result)`` for every screened frame, with or without cells."""
        with self._lock:
            self._frame_callbacks = [*self._frame_callbacks, callback]
        return callback

    def _dispatch(self, result: FrameResult) -> None:
        self._dispatching.active = True  # close() from a callback must not join its own thread
        try:
            for fcb in self._frame_callbacks:
                self._call(fcb, result)
            for cell in result.cells:
                for ccb in self._cell_callbacks:
                    self._call(ccb, cell, result)
        finally:
            self._dispatching.active = False

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        """One callback's bug must not stop the others or the screening: counted, logged once."""
        try:
            callback(*args)
        except Exception:
            self.callback_errors += 1
            if self.callback_errors == 1:
                log.exception("a Screener callback (%r) failed; further failures are counted, not logged", callback)

    # -- push mode ---------------------------------------------------------------------
    def submit(
        self, frame: np.ndarray, *, t_capture: Optional[float] = None, meta: Optional[Dict[str, Any]] = None
    ) -> int:
        """Hand in one H×W×3 uint8 RGB frame (push source only); returns its frame index.

        A frame of the wrong shape or dtype raises InvalidImageError here, in
        the caller's thread.  ``t_capture`` (``time.time()`` seconds) defaults
        to now; ``meta`` is carried into the frame result.
        """
        if not isinstance(self.source, PushSource):
            raise InvalidInputError(
                f"submit() needs a push source, but this Screener reads from {self.source.uri}",
                hint="create it with Screener(model, source=None) to hand in your own frames",
            )
        self._check_open("submit()")
        index = self.source.submit(frame, t_capture=t_capture, meta=meta)
        if not self.pipeline.capturing:
            self.start()
        return index

    def end(self) -> None:
        """Push mode: no more frames will come; iteration and ``run()`` finish after the last one."""
        if isinstance(self.source, PushSource):
            self.source.end()

    # -- counters ----------------------------------------------------------------------
    def stats(self) -> StatsSnapshot:
        return self.pipeline.stats()

    def sink_stats(self) -> Dict[str, Any]:
        return self.sinks.stats()
