"""Where frame results go: one small interface, several sinks at once."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from leukedge.types import Cell, FrameResult

log = logging.getLogger("leukedge.sinks")


class Sink(ABC):
    """Receives every frame result, in order, from the pipeline's results thread.

    ``write`` must return quickly: a sink that talks to a network buffers
    and sends from its own thread.  Nothing is opened before ``open()``.
    """

    name = "sink"
    #: True for sinks that show pixels (the live view): the pipeline then calls
    #: ``write_frame(result, frame)`` instead of ``write(result)``.
    wants_frames = False

    def open(self) -> None:
        """Acquire files, sockets or threads."""

    @abstractmethod
    def write(self, result: FrameResult) -> None: ...

    def write_frame(self, result: FrameResult, frame: Optional[np.ndarray]) -> None:
        """``write`` plus the frame the result came from (H×W×3 uint8 RGB, or None).

        The frame is valid only during the call: a sink that keeps pixels
        copies them.  Sinks that do not set ``wants_frames`` ignore it.
        """
        self.write(result)

    def write_tracks(self, finals: Sequence[Any], source: str) -> None:
        """The final records of cells whose tracks ended (``leukedge.tracking.CellTrack``), after
        the frame that ended them, and at the end of the run; ``source`` is the frame source.
        Default: ignored (a sink that counts cells overrides it)."""

    def flush(self) -> None:
        """Push buffered output to its destination."""

    def close(self) -> None:
        """Flush and release; called once, also after errors."""
        self.flush()

    def stats(self) -> Dict[str, Any]:
        """Counters for status lines and health endpoints (drops, buffered, errors)."""
        return {}

    def __enter__(self) -> Sink:
        self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class CallbackSink(Sink):
    """Calls ``on_frame(result)`` per frame and ``on_cell(cell, result)`` per cell."""

    name = "callback"

    def __init__(
        self,
        on_frame: Callable[[FrameResult], None] | None = None,
        on_cell: Callable[[Cell, FrameResult], None] | None = None,
        on_track: Callable[[Any], None] | None = None,
    ) -> None:
        self.on_frame = on_frame
        self.on_cell = on_cell
        self.on_track = on_track

    def write_tracks(self, finals: Sequence[Any], source: str) -> None:
        if self.on_track:
            for t in finals:
                self.on_track(t)

    def write(self, result: FrameResult) -> None:
        if self.on_frame:
            self.on_frame(result)
        if self.on_cell:
            for cell in result.cells:
                self.on_cell(cell, result)


class SinkSet(Sink):
    """Fans each result out to several sinks; one failing sink is logged and counted, not fatal."""

    name = "sinks"

    def __init__(self, sinks: Sequence[Sink] = ()) -> None:
        self.sinks: List[Sink] = list(sinks)
        self.errors: Dict[str, int] = {}

    def add(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def open(self) -> None:
        opened: List[Sink] = []
        try:
            for s in self.sinks:
                s.open()
                opened.append(s)
        except BaseException:
            for s in reversed(opened):
                s.close()
            raise

    @property
    def wants_frames(self) -> bool:  # type: ignore[override]
        return any(s.wants_frames for s in self.sinks)

    def write(self, result: FrameResult) -> None:
        self.write_frame(result, None)

    def write_frame(self, result: FrameResult, frame: Optional[np.ndarray]) -> None:
        for s in self.sinks:
            try:
                if s.wants_frames:
                    s.write_frame(result, frame)
                else:
                    s.write(result)
            except Exception as exc:  # a sink bug or I/O error must not stop screening
                self.errors[s.name] = self.errors.get(s.name, 0) + 1
                if self.errors[s.name] == 1:
                    log.error("sink %s failed (further failures counted, not logged): %s", s.name, exc)

    def write_tracks(self, finals: Sequence[Any], source: str) -> None:
        if not finals:
            return
        for s in self.sinks:
            try:
                s.write_tracks(finals, source)
            except Exception as exc:  # as for write: one sink's failure is counted, not fatal
                self.errors[s.name] = self.errors.get(s.name, 0) + 1
                if self.errors[s.name] == 1:
                    log.error("sink %s failed (further failures counted, not logged): %s", s.name, exc)

    def find(self, kind: type) -> Optional[Sink]:
        """The first sink of class ``kind`` (e.g. the live view, to print its address), or None."""
        return next((s for s in self.sinks if isinstance(s, kind)), None)

    def flush(self) -> None:
        for s in self.sinks:
            s.flush()

    def close(self) -> None:
        first: BaseException | None = None
        for s in self.sinks:
            try:
                s.close()
            except Exception as exc:
                first = first or exc
        if first:
            raise first

    def stats(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for s in self.sinks:
            key, n = s.name, 2
            while key in out:  # two sinks of one kind (two --out files) keep both entries
                key, n = f"{s.name}{n}", n + 1
            out[key] = s.stats()
        if self.errors:
            out["errors"] = dict(self.errors)
        return out
