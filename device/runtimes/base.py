"""The one interface every inference runtime implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional

import numpy as np

from leukedge.errors import InvalidInputError
from leukedge.manifest import Manifest


class Runtime(ABC):
    """A loaded classifier: float32 model-input batches in, class probabilities out.

    Construction touches nothing; ``open()`` loads the model (and any GPU).
    Use as a context manager.  ``max_batch`` is the largest batch ``predict``
    takes in one call (None: any); callers split larger batches.
    """

    name = "runtime"

    def __init__(self, manifest: Manifest, precision: str) -> None:
        self.manifest = manifest
        self.precision = precision
        self.max_batch: Optional[int] = None
        self._open = False

    @abstractmethod
    def _load(self) -> None: ...

    @abstractmethod
    def _run(self, batch: np.ndarray) -> np.ndarray: ...

    def _unload(self) -> None:
        """Release what ``_load`` took; runtimes with GPU memory override this."""

    def open(self) -> Runtime:
        if not self._open:
            self._load()
            self._open = True
        return self

    def close(self) -> None:
        if self._open:
            self._unload()
            self._open = False

    def __enter__(self) -> Runtime:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def input_shape(self) -> tuple:
        p = self.manifest.preprocessing
        hwc = (p.input_height, p.input_width, 3)
        return hwc if p.layout == "NHWC" else (3, p.input_height, p.input_width)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities (N × classes, float32) for a preprocessed batch (N × input_shape, float32)."""
        if not self._open:
            self.open()
        if batch.dtype != np.float32 or batch.shape[1:] != self.input_shape:
            raise InvalidInputError(
                f"{self.name}: expected a float32 batch of shape (N, {', '.join(map(str, self.input_shape))}), "
                f"got {batch.dtype} {batch.shape}",
                hint="build batches with leukedge.preprocess.preprocess",
            )
        if len(batch) == 0:
            return np.zeros((0, len(self.manifest.classes)), np.float32)
        step = self.max_batch or len(batch)
        parts = [self._run(np.ascontiguousarray(batch[i : i + step])) for i in range(0, len(batch), step)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def p_all(self, batch: np.ndarray) -> np.ndarray:
        """The ALL probability of each item of a preprocessed batch."""
        return self.predict(batch)[:, self.manifest.positive_index]

    def describe(self) -> str:
        return f"{self.name} {self.precision}"
