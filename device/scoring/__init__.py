"""Offline batch scoring: folders of cells or smear images to per-cell results.

``score_files`` writes a resumable, crash-safe results file (CSV, JSON Lines
or Parquet); ``score_labelled`` returns the scores of C-NMC-named cells in
memory for ``leukedge evaluate``.  Both use the same engine, so every
backend's metrics come from one code path.
"""

from __future__ import annotations

from leukedge.device.scoring.rows import COLUMNS
from leukedge.device.scoring.run import (
    ImageScores,
    LabelledScores,
    ScoreSummary,
    read_results,
    score_files,
    score_images,
    score_labelled,
)

__all__ = [
    "COLUMNS",
    "ImageScores",
    "LabelledScores",
    "ScoreSummary",
    "read_results",
    "score_files",
    "score_images",
    "score_labelled",
]
