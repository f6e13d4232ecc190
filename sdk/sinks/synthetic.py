"""Seeded synthetic frame results, to try the sinks, the live view and the report without a model or camera.

The frames are real synthetic smears (``leukedge.synthetic.make_smear_frame``)
and each white cell gets a made-up p_all; nothing here is a classification.
"""

from __future__ import annotations

import time
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np

from leukedge.synthetic import make_cell_image, make_smear_frame
from leukedge.types import BBox, Cell, FrameResult


def crop_pool(n: int = 8, *, size: int = 128, seed: int = 0) -> List[np.ndarray]:
    """A few C-NMC-style cell crops at model input size (uint8 RGB), alternating ALL / not ALL."""
    return [
        cv2.resize(make_cell_image(seed + i, "all" if i % 2 else "hem"), (size, size), interpolation=cv2.INTER_AREA)
        for i in range(n)
    ]


def random_cells(
    rng: np.random.Generator,
    n: int,
    *,
    width: int,
    height: int,
    threshold: float = 0.5,
    crops: Optional[List[np.ndarray]] = None,
) -> Tuple[Cell, ...]:
    """``n`` classified cells with random boxes inside the frame and p_all spread over [0, 1]."""
    cells = []
    for i in range(n):
        w, h = (int(v) for v in rng.integers(40, 110, size=2))
        x, y = int(rng.integers(0, max(1, width - w))), int(rng.integers(0, max(1, height - h)))
        p = float(rng.beta(0.6, 0.9))
        crop = crops[i % len(crops)] if crops else None
        cells.append(
            Cell(i, BBox(x, y, w, h), int(w * h * 0.78), crop, round(p, 6), "all" if p >= threshold else "hem")
        )
    return tuple(cells)


def synthetic_results(
    n_frames: int,
    *,
    cells: int = 20,
    width: int = 640,
    height: int = 480,
    seed: int = 0,
    distinct_frames: int = 4,
    with_crops: bool = True,
) -> Iterator[Tuple[FrameResult, np.ndarray]]:
    """``n_frames`` (FrameResult, frame RGB) pairs; frames cycle through ``distinct_frames`` pre-drawn smears."""
    rng = np.random.default_rng(seed)
    frames = [
        make_smear_frame(seed + k, width=width, height=height, cells=6, scale=width / 1280)[0]
        for k in range(max(1, distinct_frames))
    ]
    pool = crop_pool(seed=seed) if with_crops else None
    for i in range(n_frames):
        t = time.time()
        result = FrameResult(
            index=i,
            source="synthetic://",
            t_capture=t - 0.05,
            t_result=t,
            cells=random_cells(rng, cells, width=width, height=height, crops=pool),
            width=width,
            height=height,
        )
        yield result, frames[i % len(frames)]
