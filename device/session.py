"""One screening session for the command line: run a Screener, report status, stop cleanly on a signal.

Ctrl-C or SIGTERM stops capturing and lets every frame in flight reach the
sinks, which are then flushed and closed; a second Ctrl-C abandons the
frames still in flight.  ``on_status`` is called about every
``status_every`` seconds with the live counters.
"""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from leukedge.device.screener import Screener
from leukedge.device.stats import StatsSnapshot


@dataclass
class SessionSummary:
    stats: StatsSnapshot
    describe: Dict[str, str]
    sinks: Dict[str, Any]
    source: Dict[str, Any]
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    stopped_by: Optional[str] = None  # "SIGINT"/"SIGTERM" when a signal ended the run

    def to_dict(self) -> Dict[str, Any]:
        return {
            "stats": self.stats.to_dict(),
            "describe": dict(self.describe),
            "sinks": self.sinks,
            "source": self.source,
            "skipped": [{"item": i, "reason": r} for i, r in self.skipped],
            "stopped_by": self.stopped_by,
        }


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same path as Ctrl-C."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_session(
    screener: Screener,
    *,
    on_status: Optional[Callable[[StatsSnapshot], None]] = None,
    status_every: float = 0.5,
) -> SessionSummary:
    """Run ``screener`` (not yet opened) to its end or to a signal; returns what happened."""
    stopped_by: Optional[str] = None
    with _sigterm_as_interrupt(), screener:
        screener.start()
        next_status = time.monotonic() + status_every
        draining = False
        while True:
            try:
                if screener.pipeline.wait_finished(0.1):
                    break
                screener.pipeline.poll()
                if on_status is not None and time.monotonic() >= next_status:
                    on_status(screener.stats())
                    next_status = time.monotonic() + status_every
            except KeyboardInterrupt as exc:
                if draining:
                    screener.stop(drain=False)  # a second interrupt: do not wait for frames in flight
                    break
                draining = True
                stopped_by = "SIGTERM" if isinstance(exc, _Terminated) else "SIGINT"
                screener.stop(drain=True)
    return SessionSummary(
        stats=screener.stats(),
        describe=screener.describe(),
        sinks=screener.sink_stats(),
        source=screener.source.stats(),
        skipped=list(screener.source.skipped),
        stopped_by=stopped_by,
    )
