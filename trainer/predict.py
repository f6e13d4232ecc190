"""The one prediction step of evaluation: image files in, ALL probabilities out.

It goes through ``leukedge.device.runtimes.open_runtime`` and
``leukedge.device.classifier.Classifier``, so MODEL may be a Keras ``.h5``
or a converted bundle, on any backend and precision, and the preprocessing is
always the manifest's.  Files are read one batch at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from leukedge.errors import InvalidImageError
from leukedge.trainer.dataset import load_cell


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
    progress: Callable[[int, int], None] | None = None,
) -> Predictions:
    """ALL probability of each single-cell image file, through the runtime the options pick.

    Unreadable files get NaN and are listed in ``failed``; they never stop the run.
    """
    from leukedge.device.classifier import Classifier
    from leukedge.device.runtimes import ModelRef, open_runtime, resolve_model

    ref = model if isinstance(model, ModelRef) else resolve_model(model)
    out = np.full(len(files), np.nan, np.float64)
    failed: list[tuple[str, str]] = []
    with open_runtime(ref, backend=backend, precision=precision) as runtime:
        clf = Classifier(runtime)
        for start in range(0, len(files), batch_size):
            crops, where = [], []
            for k in range(start, min(start + batch_size, len(files))):
                try:
                    crops.append(load_cell(files[k]))
                    where.append(k)
                except InvalidImageError as exc:
                    failed.append((str(files[k]), exc.message))
            if crops:
                out[where] = clf.p_all(crops)
            if progress is not None:
                progress(min(start + batch_size, len(files)), len(files))
        desc = runtime.describe()
    return Predictions(out, failed, desc, ref.identity)
