"""The live status line of ``leukedge screen``: rewritten in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import IO, Optional

from leukedge.device.stats import StatsSnapshot


def _ms(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.0f}"


def status_line(s: StatsSnapshot) -> str:
    """fps, cells/s, latency p50/p99, drops, ALL count and total, in one line."""
    share = f" ({100.0 * s.n_all / s.cells:.0f}%)" if s.cells else ""
    parts = [
        f"{s.fps:5.1f} fps",
        f"{s.cells_per_s:6.1f} cells/s",
        f"latency p50 {_ms(s.latency_p50_ms)} ms p99 {_ms(s.latency_p99_ms)} ms",
        f"dropped {s.dropped}",
        f"ALL {s.n_all}/{s.cells} cells{share}",
        f"{s.frames} frames",
    ]
    if s.reconnects:
        parts.append(f"reconnects {s.reconnects} (gap {s.gap_s:.1f} s)")
    return " | ".join(parts)


class StatusPrinter:
    """Prints status lines: on a TTY every ``tty_every`` s over the same line, else every ``plain_every`` s."""

    def __init__(
        self,
        stream: Optional[IO[str]] = None,
        *,
        tty: Optional[bool] = None,
        tty_every: float = 0.5,
        plain_every: float = 5.0,
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every = tty_every if self.tty else plain_every
        self._last = time.monotonic()  # the first line after one interval, not an empty one at once
        self._shown = False

    def __call__(self, snap: StatsSnapshot) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        line = status_line(snap)
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._shown = True

    def finish(self, snap: StatsSnapshot) -> None:
        """The final counters, always printed, ending the in-place line."""
        line = status_line(snap)
        self.stream.write(("\r" + line + "\x1b[K\n") if self.tty else (line + "\n"))
        self.stream.flush()
