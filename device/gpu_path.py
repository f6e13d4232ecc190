"""The GPU path that stays on the GPU: the CUDA LoG writes straight into the TensorRT engine's input binding.

::

    crops (uint8, host) ──H2D──► CUDA LoG kernels ──► engine input binding ──► TensorRT ──D2H──► (n, classes)
                                 (same context, same stream, no synchronisation in between)

With ``--preprocess cuda`` and the TensorRT runtime, the classify stage uses
this instead of CudaPreprocessor → host batch → TensorRTRuntime, which
copied every float32 batch back to the host (196 KB per 128×128 cell) only
to copy it to the GPU again.  Both sides use the device's primary context
(:mod:`leukedge.device.cuda_context`); the runtime lends its stream and input
buffer for the length of one call (:meth:`TensorRTRuntime.run_from_device`).
The CPU output of the CUDA LoG (``CudaLog.enhance``) stays for ONNX Runtime
and the parity tests.
"""

from __future__ import annotations

from typing import Any, List, Sequence

import numpy as np

from leukedge.preprocess import stack_resized


def can_stay_on_gpu(preprocessor: Any, runtime: Any) -> bool:
    """True when ``preprocessor`` is the CUDA LoG and ``runtime`` takes its inputs on the device."""
    return getattr(preprocessor, "name", "") == "cuda" and callable(getattr(runtime, "run_from_device", None))


class GpuClassifier:
    """Crops in, p_all out, with the model inputs made and used on the GPU only."""

    def __init__(self, preprocessor: Any, runtime: Any) -> None:
        self.kernel = preprocessor.kernel  # a CudaLog
        self.runtime = runtime
        self.spec = runtime.manifest.preprocessing

    @property
    def limit(self) -> int:
        """The largest batch one call takes: what both the kernel's buffers and the engine hold."""
        return int(min(self.kernel.max_batch, self.runtime.max_batch or self.kernel.max_batch))

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Probabilities (N × classes) of the crops (any size; resized on the CPU as the reference does)."""
        batch = stack_resized(list(crops), self.spec)
        parts: List[np.ndarray] = []
        for i in range(0, len(batch), self.limit):
            part = np.ascontiguousarray(batch[i : i + self.limit])

            def fill(dest: Any, stream: Any, part: np.ndarray = part) -> None:
                self.kernel.enhance_into(part, dest, stream)

            parts.append(self.runtime.run_from_device(len(part), fill))
        if not parts:
            return np.zeros((0, len(self.runtime.manifest.classes)), np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)

    def p_all(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return self.predict(crops)[:, self.runtime.manifest.positive_index]
