"""The part of scoring that runs in worker processes: decode, segment, preprocess.

Everything here is plain functions of picklable values, so it runs the same
in a worker started with ``spawn`` (safe next to CUDA, TensorRT and ONNX
Runtime threads in the parent) and inline when ``workers=0``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from leukedge.cnmc import parse_cnmc_name
from leukedge.errors import LeukedgeError
from leukedge.images import DEFAULT_MAX_PIXELS, read_image
from leukedge.manifest import Preprocessing
from leukedge.preprocess import preprocess
from leukedge.segment import SegmentParams, cell_image_crop, is_single_cell_image, segment

MODES = ("auto", "cells", "smear")


@dataclass(frozen=True)
class PrepareOptions:
    """What every worker needs to turn a path into model inputs."""

    mode: str
    spec: Preprocessing
    params: Optional[SegmentParams] = None
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass
class Prepared:
    """One image, ready for inference (``batch`` holds one model input per cell) or failed (``error``)."""

    position: int  # index in the input listing
    path: str  # as listed (its name carries the C-NMC label)
    source: str  # the image's real absolute path: the key results are stored and resumed under
    mode: str = ""  # "cells" or "smear": what was done
    cells: List[Dict[str, Any]] = field(default_factory=list)  # cell, bbox, area
    batch: Optional[np.ndarray] = None  # float32, len(cells) × the model input shape
    error: Optional[str] = None


def source_key(path: Path) -> str:
    """The real absolute path of ``path`` as text; a link loop keeps its own absolute path.

    A file name that is not UTF-8 (possible on Linux) is written with backslash escapes, so
    every results format (Parquet insists on UTF-8) stores, and resumes by, the same text.
    """
    try:
        text = str(path.resolve())
    except (OSError, RuntimeError):  # Python < 3.13 raises RuntimeError on a symlink loop
        text = os.path.abspath(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def prepare_image(position: int, path: str, opts: PrepareOptions) -> Prepared:
    """Decode ``path``, find its cells as ``opts.mode`` says, and preprocess their crops.

    A file that cannot be read or processed comes back with ``error`` set,
    so one bad file never stops a batch job.
    """
    item = Prepared(position, path, source_key(Path(path)))
    try:
        frame = read_image(path, max_pixels=opts.max_pixels)
        item.mode = opts.mode if opts.mode != "auto" else ("cells" if _is_cell_image(path, frame, opts) else "smear")
        if item.mode == "cells":
            crops, item.cells = _whole_image_cell(frame, opts)
        else:
            found = segment(frame, opts.spec, params=opts.params)
            crops = [c.crop for c in found]
            item.cells = [{"cell": c.index, "bbox": c.bbox.as_list(), "area": c.area} for c in found]
        item.batch = preprocess(crops, opts.spec) if crops else None
    except LeukedgeError as exc:
        item.error = exc.message
    except Exception as exc:  # a decoder or OpenCV failure on one odd file must not end the run
        item.error = f"{path}: could not be processed ({type(exc).__name__}: {exc})"
    return item


def _is_cell_image(path: str, frame: np.ndarray, opts: PrepareOptions) -> bool:
    """Auto mode: a C-NMC-named file is one cell, as training read it; otherwise the image decides."""
    if parse_cnmc_name(path) is not None:
        return True
    return is_single_cell_image(frame, black_level=(opts.params or SegmentParams()).black_level)


def _whole_image_cell(frame: np.ndarray, opts: PrepareOptions) -> Tuple[List[np.ndarray], list]:
    """Cells mode: the image is one C-NMC-style cell, cropped exactly as training crops it."""
    crop, region = cell_image_crop(frame, opts.spec, params=opts.params)
    return [crop], [{"cell": 0, "bbox": region.bbox.as_list(), "area": region.area}]


# --- worker processes -------------------------------------------------------------

_OPTIONS: Optional[PrepareOptions] = None


def init_worker(opts: PrepareOptions) -> None:
    """Pool initializer: remember the options, keep OpenCV single-threaded, die with the parent.

    Ctrl-C reaches the whole process group; the main process handles it and
    shuts the pool down, so workers ignore it instead of printing tracebacks.
    """
    global _OPTIONS
    _OPTIONS = opts
    import signal

    import cv2

    signal.signal(signal.SIGINT, signal.SIG_IGN)

    cv2.setNumThreads(1)  # the pool is the parallelism; OpenCV threads on top only contend
    _exit_with_parent()


def prepare_chunk(chunk: Sequence[Tuple[int, str]]) -> List[Prepared]:
    assert _OPTIONS is not None, "init_worker was not called"
    return [prepare_image(pos, path, _OPTIONS) for pos, path in chunk]


def _exit_with_parent() -> None:
    """A worker whose parent was killed (SIGKILL) would otherwise wait for tasks forever."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(0)

    threading.Thread(target=watch, name="leukedge-parent-watch", daemon=True).start()
