"""``push``: frames handed in by an application that owns the camera (``Screener.submit``).

``submit`` checks the frame at once (a wrong shape or dtype raises in the
caller's thread, naming what was wrong) and never blocks by default: when
the application submits faster than frames are taken, the oldest waiting
frame is dropped and counted.  With ``block=True`` nothing is dropped and
``submit`` waits instead.  ``end()`` closes the stream; frames already
submitted are still screened.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Dict, Optional

import numpy as np

from leukedge.device.sources.base import PushFrameSource, RawFrame, check_frame
from leukedge.errors import InvalidInputError


class PushSource(PushFrameSource):
    kind = "push"

    def __init__(self, uri: str = "push", *, block: bool = False, capacity: int = 8) -> None:
        super().__init__(uri)
        self.live = not block
        self.block = block
        self._q: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self._submitted = 0
        self._ended = False
        self.dropped = 0

    def _open(self) -> None:
        pass

    def submit(
        self, frame: np.ndarray, *, t_capture: Optional[float] = None, meta: Optional[Dict[str, Any]] = None
    ) -> int:
        """Queue one frame (H×W×3 uint8 RGB); returns its index.  Thread-safe."""
        t = time.time() if t_capture is None else float(t_capture)
        with self._lock:  # held while queueing, so end() never overtakes a frame being submitted
            if self._ended:
                raise InvalidInputError("submit() after end(): the stream is closed", hint="open a new Screener")
            index = self._submitted
            image = check_frame(frame, f"submitted frame {index}")
            self._submitted += 1
            item = (image, {**(meta or {}), "t_capture": t, "index": index})
            if self.block:
                self._q.put(item)
                return index
            while True:
                try:
                    self._q.put_nowait(item)
                    return index
                except queue.Full:
                    try:
                        self._q.get_nowait()  # the oldest frame nobody took yet
                        self.dropped += 1
                    except queue.Empty:
                        pass

    def end(self) -> None:
        """No more frames; the pipeline finishes those already submitted."""
        with self._lock:
            self._ended = True

    def _read(self) -> Optional[RawFrame]:
        while not self._interrupt.is_set():
            try:
                return self._q.get(timeout=0.05)  # type: ignore[no-any-return]
            except queue.Empty:
                if self._ended and self._q.empty():
                    return None
        return None

    def stats(self) -> Dict[str, Any]:
        out = super().stats()
        out["dropped_at_submit"] = self.dropped
        return out
