"""Crops of flagged cells saved as PNG beside a results file, for the report's review gallery.

A cell is *flagged* when it is labelled ALL or its p_all is in the
manifest's indeterminate band.  Crops are the model inputs (``Cell.crop``,
H×W×3 uint8 RGB).  Files are named ``f<frame>_c<cell>.png`` (frame and cell
zero-padded), so a crop is found again from its record alone.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import cv2
import numpy as np

from leukedge.manifest import POSITIVE_CLASS
from leukedge.tally import in_band
from leukedge.types import Cell, FrameResult

DEFAULT_MAX_CROPS = 2000
log = logging.getLogger("leukedge.sinks")


def is_flagged(cell: Cell, band: Tuple[float, float], positive: str = POSITIVE_CLASS) -> bool:
    return cell.label == positive or in_band(cell.p_all, band)


def crops_dir_for(results_path: str | os.PathLike[str]) -> Path:
    """The default crops folder beside a results file: ``cells.jsonl`` → ``cells-crops/``."""
    p = Path(results_path)
    return p.with_name(p.stem + "-crops")


class CropStore:
    """Saves flagged crops once, however many file sinks share it; stops at ``max_crops`` and counts the rest.

    The results thread only decides and names (``paths_for``); a writer
    thread encodes and writes the PNGs, so disk speed never holds up the
    pipeline.  When its queue is full the crop is skipped (and counted), and
    the record's ``crop`` is null.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        band: Tuple[float, float],
        *,
        max_crops: int = DEFAULT_MAX_CROPS,
        queue_size: int = 256,
    ) -> None:
        self.folder = Path(folder).absolute()
        self.band = band
        self.max_crops = max_crops
        self.accepted = 0  # named in a record and queued for writing
        self.saved = 0
        self.skipped = 0  # flagged cells past max_crops, without pixels, or while the queue was full
        self.failed = 0
        self._last: Tuple[Optional[int], Dict[int, str]] = (None, {})
        self._queue: queue.Queue[Optional[Tuple[Path, np.ndarray]]] = queue.Queue(maxsize=queue_size)
        self._thread: Optional[threading.Thread] = None

    def open(self) -> None:
        if self._thread is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, name="leukedge-crops", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Write what is queued, then stop; safe to call more than once (every sharing sink calls it)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def paths_for(self, result: FrameResult) -> Dict[int, str]:
        """Absolute paths of this frame's crops, by cell index; queues them on the first call per frame."""
        if self._last[0] == result.index:
            return self._last[1]
        named: Dict[int, str] = {}
        for cell in result.cells:
            if not is_flagged(cell, self.band):
                continue
            if cell.crop is None or self.accepted >= self.max_crops:
                self.skipped += 1
                continue
            path = self.folder / f"f{result.index:06d}_c{cell.index:03d}.png"
            try:
                self._queue.put_nowait((path, cell.crop))
            except queue.Full:
                self.skipped += 1
                continue
            self.accepted += 1
            named[cell.index] = str(path)
        self._last = (result.index, named)
        return named

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                ok = _write_png(*item)
            except OSError as exc:
                ok = False
                if not self.failed:
                    log.error("cannot save crop %s (further failures counted): %s", item[0], exc)
            if ok:
                self.saved += 1
            else:
                self.failed += 1

    def stats(self) -> Dict[str, Any]:
        return {
            "folder": str(self.folder),
            "saved": self.saved,
            "queued": self.accepted - self.saved - self.failed,
            "skipped": self.skipped,
            "failed": self.failed,
        }


def _write_png(path: Path, crop: np.ndarray) -> bool:
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
        return False
    ok, buf = cv2.imencode(".png", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))  # default level: faster here than 1
    if not ok:
        return False
    path.write_bytes(buf.tobytes())
    return True
