"""What the pipeline's stages share: bounded channels between them and one run-control object.

A :class:`Channel` is a bounded FIFO that knows how a run ends.  Each
producer calls ``close()`` once when it has nothing more to send; once all
have and the items are drained, ``get()`` answers :data:`CLOSED` to every
consumer (so K consumers need no K end markers).  When the run is aborted,
waiting ``put``/``get`` calls return at once (``put`` answers False, ``get``
answers what is still queued, then :data:`CLOSED`).  ``detach()`` is the
consumer saying it left: ``put`` then drops items instead of waiting.

:class:`RunControl` holds the run's three facts — capture should stop, the
run is aborted, the first error — and the threads that run the stages.
Nothing in it polls: channels wait on conditions that ``abort()`` notifies.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Callable, Deque, List, Optional

from leukedge.errors import LeukedgeError

log = logging.getLogger("leukedge.pipeline")


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


CLOSED: Any = _Marker("CLOSED")  # get(): every producer closed and nothing is left, or the run aborted
EMPTY: Any = _Marker("EMPTY")  # get(timeout=...) / get_nowait(): nothing arrived in time


class RunControl:
    """One run's shared state: stop capturing, abort, the first error, and the stage threads.

    ``stop(drain=True)`` ends capture and lets frames in flight finish;
    ``stop(drain=False)`` also aborts, which wakes every channel.  A stage
    that raises stops the run without draining (:meth:`spawn` sees to it);
    ``fail(exc, drain=True)`` lets a stage end the run but finish the frames
    already taken (a camera that went away).
    """

    def __init__(self) -> None:
        self._capture_stopped = threading.Event()
        self._aborted = threading.Event()
        self._lock = threading.Lock()
        self._channels: List[Channel] = []
        self._on_stop: List[Callable[[], None]] = []
        self.threads: List[threading.Thread] = []
        self.error: Optional[BaseException] = None

    # -- the three facts ------------------------------------------------------------
    @property
    def capture_stopped(self) -> bool:
        return self._capture_stopped.is_set()

    @property
    def aborted(self) -> bool:
        return self._aborted.is_set()

    def end_capture(self) -> None:
        """Take no more frames (``max_frames`` reached); unlike ``stop`` the source is not interrupted."""
        self._capture_stopped.set()

    def on_stop(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` on every ``stop`` (the pipeline interrupts its source's blocking read)."""
        self._on_stop.append(hook)

    def stop(self, *, drain: bool) -> None:
        self._capture_stopped.set()
        for hook in self._on_stop:
            hook()
        if not drain:
            self.abort()

    def abort(self) -> None:
        self._aborted.set()
        for ch in list(self._channels):
            ch.wake()

    def fail(self, exc: BaseException, *, drain: bool) -> None:
        """Record ``exc`` if it is the run's first error, then stop."""
        with self._lock:
            if self.error is None:
                self.error = exc
                if not isinstance(exc, LeukedgeError):
                    log.error("pipeline thread failed", exc_info=exc)
        self.stop(drain=drain)

    # -- channels and threads -----------------------------------------------------
    def channel(self, capacity: int, *, producers: int = 1, name: str = "") -> Channel:
        ch = Channel(capacity, producers=producers, name=name, control=self)
        self._channels.append(ch)
        return ch

    def spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        """Run ``target`` in a daemon thread; whatever it raises becomes the run's error and aborts it."""

        def guarded() -> None:
            try:
                target()
            except BaseException as exc:
                self.fail(exc, drain=False)

        t = threading.Thread(target=guarded, name=name, daemon=True)
        self.threads.append(t)
        t.start()
        return t


class Channel:
    """A bounded FIFO between stages that knows about close, abort and a consumer that left."""

    def __init__(
        self, capacity: int, *, producers: int = 1, name: str = "", control: Optional[RunControl] = None
    ) -> None:
        if capacity < 1 or producers < 1:
            raise ValueError(f"channel {name!r}: capacity and producers must be >= 1")
        self.name = name
        self.capacity = capacity
        self._items: Deque[Any] = deque()
        self._open_producers = producers
        self._detached = False
        self._control = control
        self._cond = threading.Condition()

    def _aborted(self) -> bool:
        return self._control is not None and self._control.aborted

    def wake(self) -> None:
        """Let every waiter look again (after an abort)."""
        with self._cond:
            self._cond.notify_all()

    # -- producer side ----------------------------------------------------------------
    def put(self, item: Any) -> bool:
        """Wait for room and queue ``item``; False (not queued) when the run aborted or the consumer left."""
        with self._cond:
            while len(self._items) >= self.capacity and not (self._detached or self._aborted()):
                self._cond.wait()
            if self._detached or self._aborted():
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def put_latest(self, item: Any) -> int:
        """Queue ``item`` without waiting, displacing the oldest items when full; returns how many it displaced."""
        with self._cond:
            displaced = 0
            while len(self._items) >= self.capacity:
                self._items.popleft()
                displaced += 1
            self._items.append(item)
            self._cond.notify_all()
            return displaced

    def close(self) -> None:
        """One producer is done; when all are, consumers get CLOSED after the last item."""
        with self._cond:
            self._open_producers = max(0, self._open_producers - 1)
            self._cond.notify_all()

    # -- consumer side ----------------------------------------------------------------
    def get(self, timeout: Optional[float] = None) -> Any:
        """The next item; CLOSED when closed and drained (or aborted and drained); EMPTY after ``timeout``."""
        with self._cond:
            while not self._items:
                if self._open_producers == 0 or self._aborted():
                    return CLOSED
                if not self._cond.wait(timeout) and timeout is not None and not self._items:
                    return CLOSED if self._open_producers == 0 or self._aborted() else EMPTY
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def get_nowait(self) -> Any:
        """The next item if one is waiting, else EMPTY (or CLOSED when nothing more can come)."""
        with self._cond:
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            return CLOSED if self._open_producers == 0 or self._aborted() else EMPTY

    def detach(self) -> None:
        """The consumer left: from now on ``put`` drops items instead of waiting for room."""
        with self._cond:
            self._detached = True
            self._cond.notify_all()

    def attach(self) -> None:
        """A consumer is (back) reading: ``put`` waits for room again."""
        with self._cond:
            self._detached = False

    @property
    def closed(self) -> bool:
        """Every producer has closed (items may still be queued)."""
        with self._cond:
            return self._open_producers == 0

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def __repr__(self) -> str:
        return f"Channel({self.name!r}, {len(self)}/{self.capacity})"
