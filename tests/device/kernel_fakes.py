"""A fake ``pycuda.compiler.SourceModule`` that runs the CUDA LoG's kernel text on the CPU (gcc).

With :mod:`tests.device.gpu_fakes` (device memory as bytearrays, copies
counted in ``CALLS``) this runs ``CudaLog`` itself — its buffers, launches
and copies — without a GPU: each kernel launch loops over the grid in C on
the fake device memory.  ``install_kernels(monkeypatch, workdir)`` after
``gpu_fakes.install``.
"""

from __future__ import annotations

import ctypes
import hashlib
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Dict

import numpy as np

from tests.device.device_helpers import c_compiler
from tests.device.gpu_fakes import CALLS, MEMORY, fake_spec

GRID = r"""
void grid_rows(const unsigned char *in, float *tmp, int n, int h, int w) {
    for (int i = 0; i < n * h * w * 3; ++i) lk_rows(i, in, tmp, n, h, w);
}
void grid_cols(const float *tmp, float *smooth, int n, int h, int w) {
    for (int i = 0; i < n * h * w * 3; ++i) lk_cols(i, tmp, smooth, n, h, w);
}
void grid_finish(const unsigned char *in, const float *smooth, float *out, int n, int h, int w,
                 float alpha, float scale, float offset) {
    for (int i = 0; i < n * h * w * 3; ++i) lk_finish(i, in, smooth, out, n, h, w, alpha, scale, offset);
}
"""


def _address(arg: Any) -> ctypes.c_void_p:
    """A fake device pointer (an allocation or its int) as the address of its bytearray."""
    buf = MEMORY[int(arg)]
    return ctypes.c_void_p(ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf)))


def _c_arg(arg: Any) -> Any:
    if isinstance(arg, np.int32):
        return ctypes.c_int(int(arg))
    if isinstance(arg, np.float32):
        return ctypes.c_float(float(arg))
    return _address(arg)


class _Function:
    def __init__(self, dll: ctypes.CDLL, name: str) -> None:
        self.name = name
        self.fn = getattr(dll, name.replace("lk_", "grid_").replace("_kernel", ""))

    def prepare(self, signature: str) -> None:
        self.signature = signature

    def prepared_async_call(self, grid: Any, block: Any, stream: Any, *args: Any) -> None:
        CALLS.append(("kernel", self.name))
        self.fn(*[_c_arg(a) for a in args])


def make_compiler(workdir: Path) -> types.ModuleType:
    built: Dict[str, ctypes.CDLL] = {}

    class SourceModule:
        def __init__(self, source: str, **options: Any) -> None:
            tag = hashlib.sha256(source.encode()).hexdigest()[:16]
            if tag not in built:
                src, lib = workdir / f"cuda_{tag}.c", workdir / f"cuda_{tag}.so"
                src.write_text(source + GRID)
                cc = c_compiler()
                assert cc is not None
                cmd = [cc, "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(lib), str(src), "-lm"]
                subprocess.run(cmd, check=True)
                built[tag] = ctypes.CDLL(str(lib))
            self.dll = built[tag]

        def get_function(self, name: str) -> _Function:
            return _Function(self.dll, name)

    compiler = types.ModuleType("pycuda.compiler")
    compiler.SourceModule = SourceModule  # type: ignore[attr-defined]
    return fake_spec(compiler)


def install_kernels(monkeypatch: Any, workdir: Path) -> None:
    """The fake compiler, and nvcc 'found', so CudaLog and ``--preprocess cuda`` run on the fakes."""
    compiler = make_compiler(workdir)
    monkeypatch.setitem(sys.modules, "pycuda.compiler", compiler)
    monkeypatch.setattr(sys.modules["pycuda"], "compiler", compiler, raising=False)
    for module in ("leukedge.device.cuda_log", "leukedge.device.preprocessing"):
        monkeypatch.setattr(f"{module}.find_nvcc", lambda: "/fake/nvcc")
