"""Slide reports: counts with Wilson intervals, adequacy, the indeterminate band, per-field counts, gallery, audit trail.

``build_report(path)`` reads a results file; ``render_html`` makes the one
self-contained HTML file; ``write_report`` does both; ``screen_summary(sinks)``
is the text ``screen`` prints at the end of a run.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

from leukedge.outlock import output_error
from leukedge.report.build import SlideReport, build_report
from leukedge.report.text import format_summary, screen_summary
from leukedge.tally import DEFAULT_MIN_CELLS, CellTally, wilson_interval

__all__ = [
    "DEFAULT_MIN_CELLS",
    "CellTally",
    "SlideReport",
    "build_report",
    "format_summary",
    "render_html",
    "screen_summary",
    "wilson_interval",
    "write_report",
]


def render_html(report: SlideReport) -> str:
    from leukedge.report.html import render_html as _render

    return _render(report)


def write_report(
    results: str | Path,
    out: str | Path,
    *,
    min_cells: int = DEFAULT_MIN_CELLS,
    model: Optional[str | Path] = None,
    gallery: int = 60,
) -> SlideReport:
    """Read ``results`` and write the HTML report to ``out`` (atomically); returns what was computed."""
    rep = build_report(results, min_cells=min_cells, model=model, gallery=gallery)
    dest = Path(out)
    tmp = dest.with_name(dest.name + ".tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(render_html(rep), encoding="utf-8")
        tmp.replace(dest)
    except OSError as exc:  # read-only folder, full disk: a clear error, and no half-written .tmp left
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise output_error(exc, dest) from exc
    return rep
