"""What every frame source is: a context manager that yields checked RGB frames with capture times.

A source touches nothing (no camera, no file) before ``open()``.  ``read()``
returns the next :class:`Frame` or ``None`` at the end of the stream; every
frame leaves the source as H×W×3 uint8 RGB (checked with
:func:`leukedge.images.as_rgb8`), stamped with ``time.time()`` when it was
captured.  ``live`` sources (cameras, streams) are screened with a
latest-frame policy by the pipeline; the others lose no frame.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import numpy as np

from leukedge.errors import HardwareUnavailableError, InvalidImageError, InvalidInputError
from leukedge.images import as_rgb8

log = logging.getLogger("leukedge.sources")

RawFrame = Tuple[np.ndarray, Dict[str, Any]]


@dataclass
class Frame:
    """One captured frame: H×W×3 uint8 RGB pixels and when and where they came from."""

    image: np.ndarray
    index: int  # position in the source's stream (frames dropped later leave gaps in the pipeline)
    t_capture: float  # time.time() when the frame was captured (or read, for files)
    source: str  # the source's URI, or the file for folder sources
    meta: Dict[str, Any] = field(default_factory=dict)
    track: Any = field(default=None, repr=False)  # the track stage's judgement (leukedge.tracking.Judgement)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


class FrameSource(ABC):
    """Base class: subclasses implement ``_open``, ``_read`` and ``_close``.

    ``_read`` returns ``(array, meta)`` or ``None`` at the end of the stream.
    ``idle_s`` counts time a source spent waiting (pacing, reconnect back-off),
    so the pipeline can tell capture work from waiting.
    """

    live = False
    kind = "source"

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.frames = 0
        self.idle_s = 0.0
        self.skipped: List[Tuple[str, str]] = []  # (item, reason) for files that could not be read
        self._opened = False
        self._interrupt = threading.Event()

    # -- subclass hooks --------------------------------------------------
    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _read(self) -> Optional[RawFrame]: ...

    def _close(self) -> None:
        """Release the device or file."""

    # -- public ------------------------------------------------------------
    def open(self) -> FrameSource:
        if not self._opened:
            self._interrupt.clear()
            self._open()
            self._opened = True
        return self

    def close(self) -> None:
        if self._opened:
            self._opened = False
            self._close()

    def interrupt(self) -> None:
        """Ask a blocking ``read()`` (pacing, reconnect back-off) to return ``None`` soon; thread-safe."""
        self._interrupt.set()

    def read(self) -> Optional[Frame]:
        if not self._opened:
            raise InvalidInputError(f"source {self.uri}: read() before open()", hint="use the source in a with block")
        if self._interrupt.is_set():
            return None
        raw = self._read()
        if raw is None:
            return None
        array, meta = raw
        index = int(meta.pop("index", self.frames))  # a push source numbers frames as they were submitted
        image = check_frame(array, f"source {self.uri} frame {index}")
        self.frames += 1
        meta.setdefault("channel_order", "RGB")
        return Frame(image, index, float(meta.pop("t_capture", time.time())), str(meta.pop("source", self.uri)), meta)

    def __iter__(self):  # type: ignore[no-untyped-def]
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def __enter__(self) -> FrameSource:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def stats(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"frames": self.frames}
        if self.skipped:
            out["skipped"] = len(self.skipped)
        return out

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds`` unless interrupted; counted as idle.  True when interrupted."""
        t0 = time.perf_counter()
        hit = self._interrupt.wait(max(0.0, seconds))
        self.idle_s += time.perf_counter() - t0
        return hit

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class PushFrameSource(FrameSource):
    """A source whose frames an application hands in (``submit``) rather than the source pulling them.

    The pipeline treats it differently by this interface: it may wait any
    time for the first frame (no first-frame watchdog) and a run that got no
    frame is not an error, because the application decides when frames come.
    """

    @abstractmethod
    def submit(
        self, frame: np.ndarray, *, t_capture: Optional[float] = None, meta: Optional[Dict[str, Any]] = None
    ) -> int:
        """Queue one frame; returns its index."""

    @abstractmethod
    def end(self) -> None:
        """No more frames will be submitted."""


def check_frame(array: Any, name: str) -> np.ndarray:
    """A frame as contiguous H×W×3 uint8 RGB, or an InvalidImageError naming what was wrong."""
    try:
        return as_rgb8(array, name=name)
    except InvalidImageError as exc:
        raise InvalidImageError(
            f"{exc.message}; frames must be H×W×3 uint8 RGB (at least 8×8 pixels)",
            hint=exc.hint or "convert the frame before handing it over, e.g. frame[..., :3].astype(numpy.uint8)",
        ) from exc


class LiveSource(FrameSource):
    """A camera or stream: opened once (failure is an error), reopened with back-off when it drops out.

    After a reconnect the first frame's ``meta`` carries ``gap_s``, the time
    without frames, and the gap is logged and counted.  If the device is not
    back within ``reconnect_timeout`` seconds the read fails with
    HardwareUnavailableError.
    """

    live = True
    backoff = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

    def __init__(self, uri: str, *, reconnect_timeout: float = 60.0) -> None:
        super().__init__(uri)
        self.reconnect_timeout = reconnect_timeout
        self.reconnects = 0
        self.gaps: List[float] = []

    @abstractmethod
    def _connect(self) -> None:
        """Open the device; raise HardwareUnavailableError with the reason when it cannot."""

    @abstractmethod
    def _disconnect(self) -> None: ...

    @abstractmethod
    def _grab(self) -> Optional[RawFrame]:
        """The next frame, or None when the device stopped delivering (lost)."""

    def _open(self) -> None:
        self._connect()

    def _close(self) -> None:
        self._disconnect()

    def _read(self) -> Optional[RawFrame]:
        got = self._grab()
        if got is not None:
            return got
        lost_at = time.time()
        log.warning("%s: no frame from the device; reconnecting", self.uri)
        attempt = 0
        while True:
            self._disconnect()
            delay = self.backoff[min(attempt, len(self.backoff) - 1)]
            if time.time() - lost_at + delay > self.reconnect_timeout:
                raise HardwareUnavailableError(
                    f"source {self.uri}: lost at {time.strftime('%H:%M:%S', time.localtime(lost_at))} and not back "
                    f"after {self.reconnect_timeout:.0f} s ({attempt} reconnect attempts)",
                    hint="check the cable/network and the device; raise ?reconnect=SECONDS to wait longer",
                )
            if self.wait(delay):
                return None
            attempt += 1
            try:
                self._connect()
            except HardwareUnavailableError as exc:
                log.info("%s: reconnect attempt %d failed: %s", self.uri, attempt, exc.message)
                continue
            got = self._grab()
            if got is not None:
                gap = time.time() - lost_at
                self.reconnects += 1
                self.gaps.append(gap)
                log.warning("%s: reconnected after a %.1f s gap (frames in the gap are lost)", self.uri, gap)
                got[1]["gap_s"] = round(gap, 3)
                return got

    def stats(self) -> Dict[str, Any]:
        out = super().stats()
        out["reconnects"] = self.reconnects
        if self.gaps:
            out["gap_s"] = round(sum(self.gaps), 3)
        return out


# -- URI parameters -------------------------------------------------------


class UriParams:
    """Typed access to ``?key=value`` parameters; unknown keys and bad values are errors."""

    def __init__(self, uri: str, allowed: Tuple[str, ...]) -> None:
        self.uri = uri
        parts = urlsplit(uri)
        self.scheme = parts.scheme
        self.netloc = parts.netloc
        self.path = parts.path
        raw = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise InvalidInputError(
                f"source {uri}: unknown parameter(s) {', '.join(unknown)}; expected some of {', '.join(allowed)}",
                hint="see 'Sources' in docs/device.md",
            )
        self.values = {k: v[-1] for k, v in raw.items()}

    def _get(self, key: str, cast: Any, default: Any, expected: str, lo: float, hi: float) -> Any:
        if key not in self.values or self.values[key] == "":
            return default
        text = self.values[key]
        try:
            value = cast(text)
        except ValueError:
            value = None
        if value is None or not lo <= value <= hi:
            raise InvalidInputError(
                f"source {self.uri}: parameter {key}={text!r}, expected {expected} in [{lo:g}, {hi:g}]",
                hint=f"for example {key}={default if default is not None else int(lo)}",
            )
        return value

    def integer(self, key: str, default: Optional[int], *, lo: float = 0, hi: float = 1e9) -> Any:
        return self._get(key, int, default, "an integer", lo, hi)

    def number(self, key: str, default: Optional[float], *, lo: float = 0.0, hi: float = 1e9) -> Any:
        return self._get(key, float, default, "a number", lo, hi)

    def text(self, key: str, default: Optional[str]) -> Optional[str]:
        return self.values.get(key, default)

    def choice(self, key: str, choices: Tuple[str, ...], default: str) -> str:
        value = self.values.get(key) or default
        if value not in choices:
            raise InvalidInputError(
                f"source {self.uri}: parameter {key}={value!r}, expected one of {', '.join(choices)}",
                hint=f"for example {key}={default}",
            )
        return value
