"""``leukedge.preprocess.enhance`` as a CUDA kernel (pycuda), for N×H×W×3 uint8 crop batches.

It computes exactly what the CPU reference computes, in float32:

1. ``G``: the separable Gaussian with the weights of ``gaussian_kernel_1d``
   (rows, then columns), the manifest's border mode at both passes;
2. ``L``: the Laplacian aperture of ``LAPLACIAN_KERNELS`` on ``G``, same border;
3. ``clip(I − α·L, 0, 255)`` (skipped when the LoG is disabled), then
   ``· scale + offset``, the channel order and the layout.

The source is generated from the manifest (weights baked in as constants)
and written so that the same text also compiles as plain C; the tests run
it on the CPU through gcc, and on a GPU through nvcc, against the reference.
FMA contraction is off (``--fmad=false``) so each step rounds like the CPU.

Measured parity with the CPU reference (tests/device/test_cuda_log.py):
``max |cuda − cpu| ≤ TOLERANCE_GREY`` grey levels on the 0..255 scale,
i.e. ``TOLERANCE_GREY × scale`` in model-input units.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional

import numpy as np

from leukedge.device.cuda_context import CudaContext, find_nvcc, free_buffer
from leukedge.errors import HardwareUnavailableError, InvalidImageError
from leukedge.manifest import Preprocessing
from leukedge.preprocess import LAPLACIAN_KERNELS, gaussian_kernel_1d

# Float32 sums in another order differ by a few ulps of values up to ~2000 (the
# Laplacian); 1e-3 grey levels is ~30× that and far below one quantisation step.
TOLERANCE_GREY = 1e-3
BORDER_IDS = {"reflect101": 0, "reflect": 1, "replicate": 2, "constant": 3}
BLOCK = 256

_BODY = r"""
#ifdef __CUDACC__
#define LK_DEVICE __device__ __forceinline__
#define LK_CONST __constant__
#else
#include <math.h>
#include <stddef.h>
#define LK_DEVICE static inline
#define LK_CONST static const
#endif

LK_CONST float GAUSS[KSIZE] = { GAUSS_WEIGHTS };
LK_CONST float LAP[9] = { LAP_WEIGHTS };

/* OpenCV's borderInterpolate; -1 means "outside, value 0" (constant border). */
LK_DEVICE int lk_border(int p, int n) {
    if (p >= 0 && p < n) return p;
#if BORDER == 3
    return -1;
#elif BORDER == 2
    return p < 0 ? 0 : n - 1;
#else
    if (n == 1) return 0;
    do {
#if BORDER == 0
        p = p < 0 ? -p : 2 * n - 2 - p;
#else
        p = p < 0 ? -p - 1 : 2 * n - 1 - p;
#endif
    } while (p < 0 || p >= n);
    return p;
#endif
}

/* Horizontal Gaussian pass: uint8 NHWC in, float32 NHWC out. */
LK_DEVICE void lk_rows(int idx, const unsigned char *in, float *tmp, int n, int h, int w) {
    if (idx >= n * h * w * 3) return;
    int c = idx % 3, x = (idx / 3) % w, row = idx / (3 * w);
    const unsigned char *src = in + (size_t)row * w * 3;
    float acc = 0.0f;
    for (int k = 0; k < KSIZE; ++k) {
        int xx = lk_border(x + k - KSIZE / 2, w);
        if (xx >= 0) acc += GAUSS[k] * (float)src[xx * 3 + c];
    }
    tmp[idx] = acc;
}

/* Vertical Gaussian pass on the horizontal result. */
LK_DEVICE void lk_cols(int idx, const float *tmp, float *smooth, int n, int h, int w) {
    if (idx >= n * h * w * 3) return;
    int c = idx % 3, x = (idx / 3) % w, y = (idx / (3 * w)) % h, b = idx / (3 * w * h);
    const float *img = tmp + (size_t)b * h * w * 3;
    float acc = 0.0f;
    for (int k = 0; k < KSIZE; ++k) {
        int yy = lk_border(y + k - KSIZE / 2, h);
        if (yy >= 0) acc += GAUSS[k] * img[((size_t)yy * w + x) * 3 + c];
    }
    smooth[idx] = acc;
}

/* Laplacian of the smoothed image, sharpen, clip, scale, channel order, layout. */
LK_DEVICE void lk_finish(int idx, const unsigned char *in, const float *smooth, float *out, int n, int h, int w,
                         float alpha, float scale, float offset) {
    if (idx >= n * h * w * 3) return;
    int c = idx % 3, x = (idx / 3) % w, y = (idx / (3 * w)) % h, b = idx / (3 * w * h);
    float v = (float)in[idx];
#if LOG_ENABLED
    const float *img = smooth + (size_t)b * h * w * 3;
    float lap = 0.0f;
    for (int dy = -1; dy <= 1; ++dy) {
        int yy = lk_border(y + dy, h);
        if (yy < 0) continue;
        for (int dx = -1; dx <= 1; ++dx) {
            float k = LAP[(dy + 1) * 3 + dx + 1];
            int xx = lk_border(x + dx, w);
            if (k == 0.0f || xx < 0) continue;
            lap += k * img[((size_t)yy * w + xx) * 3 + c];
        }
    }
    v = v - alpha * lap;
    v = fminf(fmaxf(v, 0.0f), 255.0f);
#endif
    v = v * scale + offset;
    int oc = BGR_OUT ? 2 - c : c;
    size_t o = NCHW_OUT ? (((size_t)b * 3 + oc) * h + y) * w + x : (((size_t)b * h + y) * w + x) * 3 + oc;
    out[o] = v;
}

#ifdef __CUDACC__
#define LK_INDEX (int)(blockIdx.x * blockDim.x + threadIdx.x)
extern "C" __global__ void lk_rows_kernel(const unsigned char *in, float *tmp, int n, int h, int w) {
    lk_rows(LK_INDEX, in, tmp, n, h, w);
}
extern "C" __global__ void lk_cols_kernel(const float *tmp, float *smooth, int n, int h, int w) {
    lk_cols(LK_INDEX, tmp, smooth, n, h, w);
}
extern "C" __global__ void lk_finish_kernel(const unsigned char *in, const float *smooth, float *out, int n, int h,
                                            int w, float alpha, float scale, float offset) {
    lk_finish(LK_INDEX, in, smooth, out, n, h, w, alpha, scale, offset);
}
#endif
"""


def _f32(v: float) -> str:
    """A float32 value as a C literal that reads back bit-exactly."""
    return f"{float(np.float32(v))!r}f"


def kernel_source(spec: Preprocessing) -> str:
    """The kernel for one manifest's preprocessing (LoG at input resolution)."""
    log = spec.log
    if log.apply_at != "input":
        raise HardwareUnavailableError(
            "the CUDA LoG runs at model-input resolution only; this manifest applies it at source resolution",
            hint="use --preprocess cpu (auto chooses it for such bundles)",
        )
    defines = {
        "KSIZE": log.gaussian_ksize,
        "BORDER": BORDER_IDS[log.border],
        "LOG_ENABLED": int(log.enabled),
        "BGR_OUT": int(spec.channel_order == "BGR"),
        "NCHW_OUT": int(spec.layout == "NCHW"),
    }
    head = [f"/* leukedge CUDA LoG: {log} */"]
    head += [f"#define {k} {v}" for k, v in defines.items()]
    body = _BODY.replace("GAUSS_WEIGHTS", ", ".join(_f32(v) for v in gaussian_kernel_1d(log)))
    body = body.replace("LAP_WEIGHTS", ", ".join(_f32(v) for v in LAPLACIAN_KERNELS[log.laplacian_aperture].ravel()))
    return "\n".join(head) + "\n" + body


def output_shape(n: int, spec: Preprocessing) -> tuple:
    h, w = spec.input_height, spec.input_width
    return (n, h, w, 3) if spec.layout == "NHWC" else (n, 3, h, w)


class CudaLog:
    """The kernel with its pinned host buffers, device buffers and stream, for batches up to ``max_batch``.

    ``open()`` in the thread that will call ``enhance``; pass the pipeline's
    :class:`CudaContext` to share it, or let this object open the primary
    context itself.  ``timings`` holds the last call's copy-in, kernel and
    copy-out times (ms, CUDA events).
    """

    def __init__(self, spec: Preprocessing, *, max_batch: int = 64, context: Optional[CudaContext] = None) -> None:
        self.spec = spec
        self.max_batch = int(max_batch)
        self.source = kernel_source(spec)  # refuses LoG-at-source before anything touches a GPU
        self._ctx = context
        self._own_ctx = context is None
        self._bufs: Dict[str, Any] = {}
        self._fn: Dict[str, Any] = {}
        self._stream: Any = None
        self._module: Any = None
        self.timings: Dict[str, float] = {}
        self.compile_s = 0.0

    def open(self) -> CudaLog:
        if self._stream is not None:
            return self
        if self._ctx is None:
            self._ctx = CudaContext()
        self._ctx.open()
        try:
            with self._ctx:
                self._build()
        except BaseException:
            if self._own_ctx:
                self._ctx.close()
            raise
        return self

    def _build(self) -> None:
        import pycuda.driver as cuda
        from pycuda.compiler import SourceModule

        nvcc = find_nvcc()
        if nvcc is None:
            raise HardwareUnavailableError(
                "CUDA preprocessing compiles its kernel with nvcc, which is not on PATH, in $CUDA_HOME or /usr/local/cuda",
                hint="install the CUDA toolkit (JetPack: it is in /usr/local/cuda/bin) or use --preprocess cpu",
            )
        t0 = time.perf_counter()
        self._module = SourceModule(self.source, nvcc=nvcc, options=["--fmad=false"], no_extern_c=True)
        self.compile_s = time.perf_counter() - t0
        for name, sig in (("rows", "PPiii"), ("cols", "PPiii"), ("finish", "PPPiiifff")):
            fn = self._module.get_function(f"lk_{name}_kernel")
            fn.prepare(sig)
            self._fn[name] = fn
        h, w, n = self.spec.input_height, self.spec.input_width, self.max_batch
        self._bufs["h_in"] = cuda.pagelocked_empty((n, h, w, 3), np.uint8)
        self._bufs["h_out"] = cuda.pagelocked_empty(output_shape(n, self.spec), np.float32)
        plane = n * h * w * 3
        for name, nbytes in (("d_in", plane), ("d_tmp", plane * 4), ("d_smooth", plane * 4), ("d_out", plane * 4)):
            self._bufs[name] = cuda.mem_alloc(nbytes)
        self._stream = cuda.Stream()
        self._events = [cuda.Event() for _ in range(4)]

    def _check(self, batch: Any) -> None:
        h, w = self.spec.input_height, self.spec.input_width
        if not isinstance(batch, np.ndarray) or batch.dtype != np.uint8 or batch.shape[1:] != (h, w, 3):
            raise InvalidImageError(
                f"CUDA LoG: expected an N×{h}×{w}×3 uint8 batch, got {getattr(batch, 'dtype', type(batch).__name__)} "
                f"{getattr(batch, 'shape', '')}",
                hint="resize crops with leukedge.preprocess.stack_resized first",
            )

    def enhance(self, batch: np.ndarray) -> np.ndarray:
        """N×H×W×3 uint8 RGB at the model input size → the model's float32 input batch."""
        self._check(batch)
        if self._stream is None:
            self.open()
        if len(batch) == 0:
            return np.zeros(output_shape(0, self.spec), np.float32)
        assert self._ctx is not None
        parts: List[np.ndarray] = []
        with self._ctx:
            for i in range(0, len(batch), self.max_batch):
                parts.append(self._run(batch[i : i + self.max_batch]))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import pycuda.driver as cuda

        n, b, s, ev = len(batch), self._bufs, self._stream, self._events
        h_out = b["h_out"][:n]
        ev[0].record(s)
        self._launch(batch, b["d_out"], s, after_copy=ev[1])
        ev[2].record(s)
        cuda.memcpy_dtoh_async(h_out, b["d_out"], s)
        ev[3].record(s)
        s.synchronize()
        self.timings = {
            "h2d_ms": ev[1].time_since(ev[0]),
            "kernel_ms": ev[2].time_since(ev[1]),
            "d2h_ms": ev[3].time_since(ev[2]),
        }
        return np.array(h_out, copy=True)

    def enhance_into(self, batch: np.ndarray, dest: Any, stream: Any) -> None:
        """Like :meth:`enhance`, but the float32 result stays on the GPU: written to device pointer ``dest``
        (e.g. a TensorRT engine's input binding) in work queued on ``stream``, which the caller synchronizes.

        Only the uint8 crops cross to the GPU; nothing comes back.  ``batch`` holds at most ``max_batch``
        crops; call it with this object's context current (the caller's ``with ctx:``).
        """
        self._check(batch)
        if len(batch) > self.max_batch:
            raise InvalidImageError(f"CUDA LoG: a batch of {len(batch)} crops, more than max_batch={self.max_batch}")
        if self._stream is None:
            self.open()
        if len(batch):
            self._launch(batch, dest, stream)

    def _launch(self, batch: np.ndarray, dest: Any, stream: Any, *, after_copy: Any = None) -> None:
        """Queue on ``stream``: uint8 crops host → device, then the kernels, writing float32 to ``dest``."""
        import pycuda.driver as cuda

        n, h, w = len(batch), self.spec.input_height, self.spec.input_width
        b, sp, log = self._bufs, self.spec, self.spec.log
        h_in = b["h_in"][:n]
        np.copyto(h_in, batch)
        total = n * h * w * 3
        grid, block = ((total + BLOCK - 1) // BLOCK, 1), (BLOCK, 1, 1)
        dims = (np.int32(n), np.int32(h), np.int32(w))
        cuda.memcpy_htod_async(b["d_in"], h_in, stream)
        if after_copy is not None:
            after_copy.record(stream)
        if log.enabled:
            self._fn["rows"].prepared_async_call(grid, block, stream, b["d_in"], b["d_tmp"], *dims)
            self._fn["cols"].prepared_async_call(grid, block, stream, b["d_tmp"], b["d_smooth"], *dims)
        scalars = (np.float32(log.alpha), np.float32(sp.scale), np.float32(sp.offset))
        self._fn["finish"].prepared_async_call(grid, block, stream, b["d_in"], b["d_smooth"], dest, *dims, *scalars)

    @property
    def device_name(self) -> str:
        return self._ctx.name if self._ctx is not None else ""

    def close(self) -> None:
        if self._ctx is None or self._ctx.ctx is None:
            return
        try:
            with self._ctx:
                for buf in self._bufs.values():
                    free_buffer(buf)
                self._bufs.clear()
                self._stream = None
                self._module = None
        finally:
            if self._own_ctx:
                self._ctx.close()
                self._ctx = None

    def __enter__(self) -> CudaLog:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()
