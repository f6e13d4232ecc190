"""Progress for scoring: the core's :class:`leukedge.progress.Progress` (segment uses it too)."""

from __future__ import annotations

from leukedge.progress import Progress, _duration, _is_tty

__all__ = ["Progress", "_duration", "_is_tty"]
