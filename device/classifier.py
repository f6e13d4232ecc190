"""Crops in, (p_all, label) out: the core preprocessing in front of a runtime."""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

from leukedge.device.runtimes.base import Runtime
from leukedge.manifest import Manifest
from leukedge.preprocess import preprocess


class Classifier:
    """Wraps an (opened or unopened) runtime with the manifest's preprocessing and decision rule."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.manifest: Manifest = runtime.manifest

    def p_all(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """ALL probability for each crop (H×W×3 uint8 RGB, any size)."""
        if len(crops) == 0:
            return np.zeros(0, np.float32)
        return self.runtime.p_all(preprocess(crops, self.manifest.preprocessing))

    def classify(self, crops: Sequence[np.ndarray]) -> List[Tuple[float, str]]:
        return [(float(p), self.manifest.label_for(float(p))) for p in self.p_all(crops)]
