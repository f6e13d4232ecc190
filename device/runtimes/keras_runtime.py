"""Keras: the trained ``.h5`` itself, for comparison with the converted models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from leukedge.device.runtimes.base import Runtime
from leukedge.errors import BundleError


class KerasRuntime(Runtime):
    name = "keras"

    def __init__(self, path: Path, precision: str = "fp32") -> None:
        from leukedge.modelfile import read_manifest

        if precision != "fp32":
            raise BundleError(f"keras: only fp32 is available, got --precision {precision}")
        super().__init__(read_manifest(path), precision)
        self.path = Path(path)
        self.model: Any = None
        self.max_batch = 64

    def _load(self) -> None:
        from leukedge.extras import quiet_native_logs
        from leukedge.modelfile import load_model

        with quiet_native_logs():  # TensorFlow's start-up lines (absl, cuInit without a GPU) are not ours to show
            self.model, _ = load_model(self.path)

    def _unload(self) -> None:
        self.model = None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        # model(x, training=False) avoids predict()'s per-call tf.data overhead on small batches.
        return np.asarray(self.model(batch, training=False))
