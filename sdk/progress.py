"""Progress with rate and ETA: a tqdm bar on a terminal, plain periodic lines in a log file."""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Optional


def _duration(seconds: float) -> str:
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Counts images done; ``enabled=None`` shows progress on a terminal and in logs alike.

    On a TTY it draws a tqdm bar (carriage returns redraw one line).  On
    anything else (a log file, a pipe, CI) it writes a plain line every
    ``every_s`` seconds and one at the end, so a log never fills with
    carriage-return spam.
    """

    def __init__(
        self,
        total: int,
        *,
        enabled: Optional[bool] = True,
        stream: Optional[IO[str]] = None,
        every_s: float = 10.0,
        label: str = "score",
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled is not False
        self.every_s = every_s
        self.done = 0
        self.failed = 0
        self._t0 = time.monotonic()
        self._last = self._t0
        self._bar: Any = None
        if self.enabled and _is_tty(self.stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="img", file=self.stream, dynamic_ncols=True, smoothing=0.05)

    def update(self, images: int = 1, *, failed: int = 0) -> None:
        self.done += images
        self.failed += failed
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(images)
            if failed:
                self._bar.set_postfix(failed=self.failed, refresh=False)
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._line(now)

    def note(self, text: str) -> None:
        """A line of context above the bar (where the work runs), shown whenever progress is."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def line(self) -> str:
        """``score: 1200/10000 images (12%), 118.2 img/s, ETA 1m14s, 0 failed``."""
        return self._text(time.monotonic())

    def _text(self, now: float) -> str:
        elapsed = max(now - self._t0, 1e-9)
        rate = self.done / elapsed
        pct = 100.0 * self.done / self.total if self.total else 100.0
        left = self.total - self.done
        eta = _duration(left / rate) if rate > 0 and left > 0 else ("0s" if left <= 0 else "?")
        return (
            f"{self.label}: {self.done}/{self.total} images ({pct:.0f}%), {rate:.1f} img/s, "
            f"elapsed {_duration(elapsed)}, ETA {eta}, {self.failed} failed"
        )

    def _line(self, now: float) -> None:
        self.stream.write(self._text(now) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        else:
            self._line(time.monotonic())


def _is_tty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
