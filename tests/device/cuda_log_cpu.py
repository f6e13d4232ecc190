"""Runs the CUDA LoG kernel's source on the CPU: compiled as plain C by gcc, called through ctypes.

The kernel text is written so it compiles both ways (see leukedge.device.cuda_log);
this harness loops over the thread index where CUDA would launch a grid, so the
indexing, borders, weights and layout are tested here, and the GPU test adds nvcc.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np

from leukedge.device.cuda_log import kernel_source, output_shape
from leukedge.manifest import Preprocessing

HARNESS = r"""
void run(const unsigned char *in, float *tmp, float *smooth, float *out, int n, int h, int w,
         float alpha, float scale, float offset) {
    int total = n * h * w * 3;
    for (int i = 0; i < total; ++i) lk_rows(i, in, tmp, n, h, w);
    for (int i = 0; i < total; ++i) lk_cols(i, tmp, smooth, n, h, w);
    for (int i = 0; i < total; ++i) lk_finish(i, in, smooth, out, n, h, w, alpha, scale, offset);
}
"""


def compiler() -> str | None:
    return shutil.which("gcc") or shutil.which("cc")


def build(spec: Preprocessing, workdir: Path) -> ctypes.CDLL:
    # A new file name per build: dlopen() returns the already-loaded library for a path it has seen.
    tag = hashlib.sha256(kernel_source(spec).encode()).hexdigest()[:16]
    src = workdir / f"lk_{tag}.c"
    lib = workdir / f"lk_{tag}.so"
    src.write_text(kernel_source(spec) + HARNESS)
    cc = compiler()
    assert cc is not None
    # -ffp-contract=off: no fused multiply-add, as nvcc --fmad=false
    subprocess.run([cc, "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(lib), str(src), "-lm"], check=True)
    dll = ctypes.CDLL(str(lib))
    f = ctypes.c_float
    p = ctypes.c_void_p
    dll.run.argtypes = [p, p, p, p, ctypes.c_int, ctypes.c_int, ctypes.c_int, f, f, f]
    return dll


def enhance_on_cpu(dll: ctypes.CDLL, batch: np.ndarray, spec: Preprocessing) -> np.ndarray:
    batch = np.ascontiguousarray(batch, dtype=np.uint8)
    n, h, w, _ = batch.shape
    tmp = np.zeros(batch.shape, np.float32)
    smooth = np.zeros(batch.shape, np.float32)
    out = np.zeros(output_shape(n, spec), np.float32)
    ptr = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
    dll.run(ptr(batch), ptr(tmp), ptr(smooth), ptr(out), n, h, w, spec.log.alpha, spec.scale, spec.offset)
    return out
