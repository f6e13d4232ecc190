"""The one prediction step of evaluation: image files in, ALL probabilities out.

It runs ``leukedge score``'s engine (``leukedge.device.scoring.score_images``)
in cells mode, so the metrics of a Keras ``.h5``, FP32 ONNX, INT8 ONNX and a
TensorRT engine all come from the code that scores slides, with the
manifest's preprocessing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Predictions:
    p_all: np.ndarray  # one per file; NaN where the file could not be read
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    runtime: str = ""  # e.g. "keras fp32"
    model_id: str = ""  # short hash of the model


def predict_files(
    files: list[str | os.PathLike[str]],
    model: Any,
    *,
    backend: str = "auto",
    precision: str = "auto",
    batch_size: int = 32,
    workers: int | None = 0,
    progress: bool = False,
) -> Predictions:
    """ALL probability of each single-cell image file, through the runtime the options pick.

    ``workers=0`` prepares images in this process; ``None`` uses one worker
    process per core.  Unreadable files get NaN and are listed in ``failed``;
    they never stop the run.
    """
    from leukedge.device.scoring import score_images

    scores = score_images(
        files,
        model,
        backend=backend,
        precision=precision,
        batch_size=batch_size,
        workers=workers,
        mode="cells",
        progress=progress,
    )
    out = np.full(len(files), np.nan, np.float64)
    for k, f in enumerate(files):
        cells = scores.cells.get(str(f))
        if cells:  # cells mode: one cell per image
            out[k] = cells[0][0]
    return Predictions(out, scores.failed, scores.describe, scores.run["model"])
