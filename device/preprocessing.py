"""Crops → model input batch, on the CPU (the core reference) or the GPU (the CUDA LoG).

``--preprocess auto|cuda|cpu``: ``auto`` uses CUDA when pycuda sees a device
and nvcc is there, else the CPU; ``cuda`` insists (HardwareUnavailableError
when it cannot); ``cpu`` is the reference itself.  A manifest that applies
the LoG at source resolution always runs on the CPU, with a message saying so.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from leukedge.arguments import arg
from leukedge.device.cuda_context import CudaContext, cuda_problem, find_nvcc
from leukedge.errors import HardwareUnavailableError, InvalidInputError
from leukedge.manifest import Preprocessing
from leukedge.preprocess import preprocess, stack_resized

log = logging.getLogger("leukedge.preprocess")
MODES = ("auto", "cuda", "cpu")


class CpuPreprocessor:
    """The core reference, ``leukedge.preprocess.preprocess``."""

    name = "cpu"

    def __init__(self, spec: Preprocessing) -> None:
        self.spec = spec

    def open(self) -> CpuPreprocessor:
        return self

    def close(self) -> None:
        pass

    def prepare(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return preprocess(list(crops), self.spec)


class CudaPreprocessor:
    """Resize on the CPU (a no-op for crops already at input size), LoG + scaling on the GPU."""

    name = "cuda"

    def __init__(self, spec: Preprocessing, *, max_batch: int = 64, context: Optional[CudaContext] = None) -> None:
        from leukedge.device.cuda_log import CudaLog

        self.spec = spec
        self.kernel = CudaLog(spec, max_batch=max_batch, context=context)

    def open(self) -> CudaPreprocessor:
        self.kernel.open()
        return self

    def close(self) -> None:
        self.kernel.close()

    def prepare(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        return self.kernel.enhance(stack_resized(list(crops), self.spec))


def choose_preprocess(mode: str, spec: Preprocessing, *, device: int = 0) -> Tuple[str, str]:
    """(``"cuda"`` or ``"cpu"``, why) for ``--preprocess mode``; raises when ``cuda`` is forced and unusable."""
    if mode not in MODES:
        raise InvalidInputError(
            f"{arg('preprocess', mode)} is not a preprocessing mode, expected one of {', '.join(MODES)}"
        )
    if mode == "cpu":
        return "cpu", "asked for"
    if spec.log.apply_at != "input":
        why = "this model applies the LoG at source resolution, which only the CPU reference does"
        if mode == "cuda":
            log.warning("--preprocess cuda: %s; using the CPU", why)
        return "cpu", why
    problem = cuda_problem(device)
    if problem is None and find_nvcc() is None:
        problem = "nvcc (needed to compile the kernel) is not on PATH, in $CUDA_HOME or /usr/local/cuda"
    if problem is None:
        return "cuda", "CUDA device usable"
    if mode == "cuda":
        raise HardwareUnavailableError(
            f"{arg('preprocess', 'cuda')}: {problem}",
            hint="use --preprocess auto or cpu here; on a Jetson/GPU machine install pycuda "
            "(pip install 'leukedge[jetson]') and check 'leukedge doctor'",
        )
    return "cpu", problem


def make_preprocessor(
    mode: str, spec: Preprocessing, *, max_batch: int = 64, context: Optional[CudaContext] = None
) -> Any:
    """An unopened CpuPreprocessor or CudaPreprocessor for ``--preprocess mode``."""
    kind, _why = choose_preprocess(mode, spec)
    if kind == "cuda":
        return CudaPreprocessor(spec, max_batch=max_batch, context=context)
    return CpuPreprocessor(spec)
