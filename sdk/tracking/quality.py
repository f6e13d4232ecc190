"""Per-frame focus and exposure checks on a small grey copy of the frame.

The same working image (grey, shrunk to ``WORK_WIDTH`` px wide by pixel
averaging) serves motion estimation and these checks, so a 1080p frame is
converted and shrunk once.  Averaging also lowers sensor noise, which would
otherwise dominate the Laplacian of a sharp-looking but noisy frame.

Focus is judged relative to the current field: a frame is defocused when its
score is below ``focus_ratio`` × the median score of the field's recent
frames, or below the absolute floor ``min_focus``.  The relative rule works
whatever the magnification, stain or camera noise; the defaults were measured
on the BCCD smear frames (``benchmarks/focus_thresholds.py``, numbers in
docs/tracking.md).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Deque, Optional, Tuple

import cv2
import numpy as np

from leukedge.errors import InvalidInputError

WORK_WIDTH = 480  # px; phase correlation and focus run at this width

DEFOCUSED = "defocused"
OVER_EXPOSED = "over-exposed"
UNDER_EXPOSED = "under-exposed"


@dataclass(frozen=True)
class QualitySettings:
    """Thresholds for skipping frames (measured defaults; see docs/tracking.md)."""

    min_focus: float = 10.0  # absolute floor of the focus score
    focus_ratio: float = 0.7  # defocused below this share of the field's median score
    focus_window: int = 9  # frames in that median
    max_clipped_high: float = 0.05  # share of pixels at >= 250 (saturated highlights)
    max_clipped_low: float = 0.05  # share of pixels at <= 5 (crushed shadows)
    min_mean: float = 40.0  # grey level
    max_mean: float = 235.0

    def __post_init__(self) -> None:
        checks = (
            ("min_focus", self.min_focus >= 0, ">= 0"),
            ("focus_ratio", 0 <= self.focus_ratio <= 1, "in [0, 1]"),
            ("focus_window", self.focus_window >= 1, ">= 1"),
            ("max_clipped_high", 0 <= self.max_clipped_high <= 1, "in [0, 1]"),
            ("max_clipped_low", 0 <= self.max_clipped_low <= 1, "in [0, 1]"),
            ("min_mean", 0 <= self.min_mean < self.max_mean <= 255, "with 0 <= min_mean < max_mean <= 255"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise InvalidInputError(
                    f"quality setting {name}={getattr(self, name)!r} is out of range, expected {expected}",
                    hint="see docs/tracking.md for the measured defaults",
                )


@dataclass(frozen=True)
class Exposure:
    mean: float
    clipped_high: float
    clipped_low: float


def working_grey(image: np.ndarray, *, width: int = WORK_WIDTH) -> Tuple[np.ndarray, float]:
    """The frame (H×W×3 uint8 RGB, or H×W grey) as uint8 grey about ``width`` px wide, and the
    factor from working to frame pixels (frame px = working px × factor)."""
    if image.ndim == 3:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    else:
        grey = image
    h, w = grey.shape[:2]
    if w <= width:
        return np.ascontiguousarray(grey), 1.0
    out_h = max(8, round(h * width / w))
    return cv2.resize(grey, (width, out_h), interpolation=cv2.INTER_AREA), w / width


def focus_score(grey: np.ndarray) -> float:
    """Variance of the 3×3 Laplacian of a uint8 grey image (higher: sharper)."""
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=3).var())


def exposure_of(grey: np.ndarray) -> Exposure:
    """Mean level and the shares of clipped highlights (>= 250) and shadows (<= 5) of a uint8 grey image."""
    hist = cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel()
    n = float(hist.sum()) or 1.0
    mean = float(np.dot(hist, np.arange(256))) / n
    return Exposure(mean, float(hist[250:].sum()) / n, float(hist[:6].sum()) / n)


def exposure_problem(exp: Exposure, settings: QualitySettings) -> Optional[str]:
    """``"over-exposed"``, ``"under-exposed"`` or None."""
    if exp.clipped_high > settings.max_clipped_high or exp.mean > settings.max_mean:
        return OVER_EXPOSED
    if exp.clipped_low > settings.max_clipped_low or exp.mean < settings.min_mean:
        return UNDER_EXPOSED
    return None


class FocusJudge:
    """Judges each frame's focus score against the recent scores of the same field."""

    def __init__(self, settings: QualitySettings) -> None:
        self.settings = settings
        self._recent: Deque[float] = deque(maxlen=settings.focus_window)

    def reset(self) -> None:
        """A new field: its content, and so its typical score, differ."""
        self._recent.clear()

    def reference(self) -> Optional[float]:
        return float(np.median(self._recent)) if self._recent else None

    def judge(self, score: float) -> Optional[str]:
        """``"defocused"`` or None; the score joins the field's window either way (a median
        shrugs off a few defocused frames, and a lasting change of content is followed)."""
        ref = self.reference()
        self._recent.append(score)
        if score < self.settings.min_focus:
            return DEFOCUSED
        if ref is not None and score < self.settings.focus_ratio * ref:
            return DEFOCUSED
        return None
