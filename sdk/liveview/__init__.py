"""The live view: ``leukedge screen ... --serve 127.0.0.1:8080`` serves a page that follows the run."""

from __future__ import annotations

from leukedge.liveview.server import check_bind, is_loopback, parse_bind
from leukedge.liveview.sink import LiveViewSink

__all__ = ["LiveViewSink", "check_bind", "is_loopback", "parse_bind"]
