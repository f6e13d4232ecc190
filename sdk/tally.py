"""Slide counts: how many cells, how many labelled ALL, with a Wilson 95% interval and an adequacy verdict.

One tally serves the live view, MQTT summaries, the end-of-run summary of
``screen`` and the HTML report, so every place shows the same figures.
It is the part ``leukedge.sinks`` and ``leukedge.report`` share, so it sits
beside both rather than in either (the report reads what the sinks wrote;
the sinks never import the report).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

from leukedge.manifest import POSITIVE_CLASS, Decision

Z95 = 1.959963984540054  # two-sided 95% normal quantile
DEFAULT_MIN_CELLS = 200  # a manual differential counts 200 cells


def wilson_interval(k: int, n: int, *, z: float = Z95) -> Optional[Tuple[float, float]]:
    """Wilson score interval for ``k`` successes out of ``n``; None when ``n`` is 0.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at
    k = 0 or k = n, which is common for a slide with no blasts.
    """
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"wilson_interval: k={k} is outside [0, n={n}]")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def in_band(p_all: Optional[float], band: Tuple[float, float]) -> bool:
    """True when ``p_all`` lies in the indeterminate band [low, high)."""
    return p_all is not None and band[0] <= p_all < band[1]


class CellTally:
    """Counts classified cells as they arrive.

    ``cells`` are the classified cells (a label and a p_all); cells found but
    not classified are counted in ``unclassified`` and nowhere else.
    ``indeterminate`` counts classified cells whose p_all is in the band; they
    are also inside ``cells`` (their label still follows the threshold).
    """

    def __init__(self, band: Tuple[float, float] = Decision().indeterminate, *, positive: str = POSITIVE_CLASS) -> None:
        self.band = (float(band[0]), float(band[1]))
        self.positive = positive
        self.frames = 0
        self.empty_frames = 0
        self.cells = 0
        self.positives = 0
        self.unclassified = 0
        self.indeterminate = 0
        self.indeterminate_positive = 0
        self.labels: Dict[str, int] = {}

    def add_frame(self, n_cells: int) -> None:
        self.frames += 1
        if n_cells == 0:
            self.empty_frames += 1

    def add_cell(self, label: Optional[str], p_all: Optional[float]) -> None:
        if label is None or p_all is None:
            self.unclassified += 1
            return
        self.cells += 1
        self.labels[label] = self.labels.get(label, 0) + 1
        positive = label == self.positive
        self.positives += positive
        if in_band(p_all, self.band):
            self.indeterminate += 1
            self.indeterminate_positive += positive

    def summary(self, *, min_cells: int = DEFAULT_MIN_CELLS) -> Dict[str, Any]:
        """Plain-JSON summary (the same keys everywhere: live view, MQTT, report)."""
        n, k = self.cells, self.positives
        det_n, det_k = n - self.indeterminate, k - self.indeterminate_positive
        return {
            "frames": self.frames,
            "empty_frames": self.empty_frames,
            "cells": n,
            "all": k,
            "other": n - k,
            "labels": dict(sorted(self.labels.items())),
            "unclassified": self.unclassified,
            "all_fraction": _ratio(k, n),
            "all_ci95": _pair(wilson_interval(k, n)),
            "indeterminate": self.indeterminate,
            "indeterminate_band": list(self.band),
            "determinate_cells": det_n,
            "determinate_all": det_k,
            "determinate_all_fraction": _ratio(det_k, det_n),
            "determinate_all_ci95": _pair(wilson_interval(det_k, det_n)),
            "min_cells": min_cells,
            "adequate": n >= min_cells,
            "verdict": adequacy_verdict(n, min_cells),
        }


def adequacy_verdict(cells: int, min_cells: int) -> str:
    if cells >= min_cells:
        return f"adequate: {cells} classified cells, at least {min_cells} needed"
    return f"inadequate: {cells} classified cells, fewer than the {min_cells} needed; count more fields"


def _ratio(k: int, n: int) -> Optional[float]:
    return round(k / n, 6) if n else None


def _pair(ci: Optional[Tuple[float, float]]) -> Optional[list]:
    return None if ci is None else [round(ci[0], 6), round(ci[1], 6)]


def coverage(cells: int, fields: int, looks: Sequence[int]) -> Dict[str, Optional[float]]:
    """How a tracked slide was covered: unique cells per field visited, mean good looks per cell.

    One formula for the tracker's statistics, the live summary and the report of a file.
    """
    return {
        "cells_per_field": round(cells / fields, 2) if fields else None,
        "looks_per_cell": round(sum(looks) / len(looks), 2) if looks else None,
    }


def format_band(band: Tuple[float, float]) -> str:
    """The indeterminate band as people read it: ``[0.276, 0.476)``, not a float's 17 digits."""
    return f"[{band[0]:.3g}, {band[1]:.3g})"


def format_percent(x: Optional[float], digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}%"


def describe_fraction(summary: Dict[str, Any], prefix: str = "") -> str:
    """'12 of 240 cells ALL (5.0%, 95% CI 2.9%–8.6%)' from a summary dict."""
    k, n = summary[prefix + "all"], summary[prefix + "cells"]
    ci = summary[prefix + "all_ci95"]
    frac = format_percent(summary[prefix + "all_fraction"])
    if ci is None:
        return f"{k} of {n} cells ALL"
    return f"{k} of {n} cells ALL ({frac}, 95% CI {format_percent(ci[0])}–{format_percent(ci[1])})"
