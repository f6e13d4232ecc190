"""The CUDA context that the CUDA LoG and TensorRT share, and the probe that says whether CUDA is usable.

Everything uses the device's *primary* context (``retain_primary_context``),
the one the CUDA runtime API and therefore TensorRT use, so pycuda buffers
and TensorRT engines live in one context.  The pipeline's GPU worker thread
opens it and keeps it current for its lifetime; the CUDA LoG and the TensorRT
runtime wrap each call in ``with ctx:`` (push/pop, a few µs) as well.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, Optional

from leukedge.errors import HardwareUnavailableError
from leukedge.extras import has


def cuda_problem(device: int = 0) -> Optional[str]:
    """None when pycuda can use CUDA device ``device``; otherwise why not, in a user's words."""
    if not has("pycuda"):
        drv = os.path.exists("/proc/driver/nvidia/version")
        return "pycuda is not installed" + (
            " (an NVIDIA driver is present)" if drv else " and no NVIDIA driver was found"
        )
    try:
        import pycuda.driver as cuda

        cuda.init()
        count = cuda.Device.count()
    except Exception as exc:  # pycuda raises its own driver errors (cuInit failed: no CUDA-capable device ...)
        return f"CUDA is not usable ({type(exc).__name__}: {exc})"
    if count <= device:
        return f"CUDA device {device} asked for, but the driver sees {count} device(s)"
    return None


def find_nvcc() -> Optional[str]:
    """nvcc on PATH, under $CUDA_HOME/$CUDA_PATH, or in /usr/local/cuda (where JetPack puts it, off PATH)."""
    found = shutil.which("nvcc")
    if found:
        return found
    for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if root and os.access(os.path.join(root, "bin", "nvcc"), os.X_OK):
            return os.path.join(root, "bin", "nvcc")
    return None


def free_buffer(buf: Any) -> None:
    """Free a device allocation or a pinned host array now (needs the context current), not at GC time."""
    free = getattr(buf, "free", None) or getattr(getattr(buf, "base", None), "free", None)
    if free is not None:
        free()


class CudaContext:
    """The primary context of one device: ``open()`` retains it, ``with ctx:`` makes it current (push/pop).

    The pipeline's GPU thread enters it once for its whole life; the CUDA LoG
    and TensorRT enter it again around each call, which costs microseconds
    and lets them be called from whichever thread owns them.
    """

    def __init__(self, device: int = 0) -> None:
        self.device = device
        self.ctx: Any = None
        self.name = ""

    def open(self) -> CudaContext:
        if self.ctx is not None:
            return self
        problem = cuda_problem(self.device)
        if problem:
            raise HardwareUnavailableError(
                f"CUDA: {problem}",
                hint="run 'leukedge doctor'; on Jetson install pycuda with pip install 'leukedge[jetson]'",
            )
        import pycuda.driver as cuda

        dev = cuda.Device(self.device)
        self.name = dev.name()
        self.ctx = dev.retain_primary_context()
        return self

    def close(self) -> None:
        if self.ctx is not None:
            self.ctx.detach()
            self.ctx = None

    def __enter__(self) -> CudaContext:
        if self.ctx is None:
            raise HardwareUnavailableError("CUDA context used before open()")
        self.ctx.push()
        return self

    def __exit__(self, *exc: Any) -> None:
        import pycuda.driver as cuda

        cuda.Context.pop()
