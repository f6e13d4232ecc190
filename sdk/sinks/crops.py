"""Crops of flagged cells saved as PNG beside a results file, for the report's review gallery.

A cell is *flagged* when it is labelled ALL or its p_all is in the
manifest's indeterminate band.  Crops are the model inputs (``Cell.crop``,
H×W×3 uint8 RGB).  Files are named ``f<frame>_c<cell>.png`` (frame and cell
zero-padded), so a crop is found again from its record alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

from leukedge.manifest import POSITIVE_CLASS
from leukedge.report.counts import in_band
from leukedge.types import Cell, FrameResult

DEFAULT_MAX_CROPS = 2000


def is_flagged(cell: Cell, band: Tuple[float, float], positive: str = POSITIVE_CLASS) -> bool:
    return cell.label == positive or in_band(cell.p_all, band)


def crops_dir_for(results_path: str | os.PathLike[str]) -> Path:
    """The default crops folder beside a results file: ``cells.jsonl`` → ``cells-crops/``."""
    p = Path(results_path)
    return p.with_name(p.stem + "-crops")


class CropStore:
    """Writes flagged crops once, however many file sinks share it; stops at ``max_crops`` and counts the rest."""

    def __init__(
        self, folder: str | os.PathLike[str], band: Tuple[float, float], *, max_crops: int = DEFAULT_MAX_CROPS
    ) -> None:
        self.folder = Path(folder)
        self.band = band
        self.max_crops = max_crops
        self.saved = 0
        self.skipped = 0  # flagged cells past max_crops, or without a crop
        self.failed = 0
        self._last: Tuple[Optional[int], Dict[int, str]] = (None, {})
        self._opened = False

    def open(self) -> None:
        if not self._opened:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._opened = True

    def paths_for(self, result: FrameResult) -> Dict[int, str]:
        """Absolute paths of this frame's saved crops, by cell index; saves them on the first call per frame."""
        if self._last[0] == result.index:
            return self._last[1]
        saved: Dict[int, str] = {}
        for cell in result.cells:
            if not is_flagged(cell, self.band):
                continue
            if cell.crop is None or self.saved >= self.max_crops:
                self.skipped += 1
                continue
            path = self.folder / f"f{result.index:06d}_c{cell.index:03d}.png"
            if _write_png(path, cell.crop):
                self.saved += 1
                saved[cell.index] = str(path)
            else:
                self.failed += 1
        self._last = (result.index, saved)
        return saved

    def stats(self) -> Dict[str, Any]:
        return {"folder": str(self.folder), "saved": self.saved, "skipped": self.skipped, "failed": self.failed}


def _write_png(path: Path, crop: np.ndarray) -> bool:
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
        return False
    ok, buf = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        return False
    path.write_bytes(buf.tobytes())
    return True
