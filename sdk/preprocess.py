"""The preprocessing reference: crop → model input, exactly as the manifest defines it.

``preprocess`` is the one function training, calibration and every runtime
call.  It is two steps so that a GPU can take over the second:

1. ``resize_crop``: the C-NMC-style crop (uint8 RGB) to the model input size.
2. ``enhance``: Laplacian-of-Gaussian sharpening, scaling, channel order and
   layout, in float32.  The CUDA kernel in ``leukedge.device.cuda_log``
   replaces this step and is tested against it.

When the manifest says ``log.apply_at == "source"`` the LoG runs on the crop
before resizing instead, which only the CPU path supports.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from leukedge.errors import InvalidImageError
from leukedge.manifest import LogSpec, Preprocessing

_BORDERS = {
    "reflect101": cv2.BORDER_REFLECT_101,
    "reflect": cv2.BORDER_REFLECT,
    "replicate": cv2.BORDER_REPLICATE,
    "constant": cv2.BORDER_CONSTANT,
}
_INTERPOLATIONS = {
    "area": cv2.INTER_AREA,
    "linear": cv2.INTER_LINEAR,
    "cubic": cv2.INTER_CUBIC,
    "nearest": cv2.INTER_NEAREST,
}
# The Laplacian apertures as explicit kernels, for implementations outside OpenCV.
# cv2.Laplacian(ksize=1) is the 4-neighbour kernel; ksize=3 is the diagonal one.
LAPLACIAN_KERNELS = {
    1: np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32),
    3: np.array([[2, 0, 2], [0, -8, 0], [2, 0, 2]], dtype=np.float32),
}


def gaussian_kernel_1d(log: LogSpec) -> np.ndarray:
    """The separable Gaussian weights the reference uses (float32, length ``gaussian_ksize``)."""
    return cv2.getGaussianKernel(log.gaussian_ksize, log.gaussian_sigma, cv2.CV_64F).ravel().astype(np.float32)


def border_code(name: str) -> int:
    return _BORDERS[name]


def interpolation_code(name: str) -> int:
    """OpenCV's flag for a manifest ``interpolation`` name ("area", "linear", ...)."""
    return _INTERPOLATIONS[name]


def log_sharpen(image: np.ndarray, log: LogSpec) -> np.ndarray:
    """``clip(I − α·Laplacian(Gaussian(I)), 0, 255)`` of one H×W×C image, in float32.

    Input uint8 or float32 in 0..255; output float32 in 0..255.  With
    ``log.enabled`` false the image comes back as float32 unchanged.
    """
    img = np.asarray(image, dtype=np.float32)
    if not log.enabled:
        return img.copy()
    border = _BORDERS[log.border]
    k = gaussian_kernel_1d(log)
    smooth = cv2.sepFilter2D(img, cv2.CV_32F, k, k, borderType=border)
    lap = cv2.filter2D(smooth, cv2.CV_32F, LAPLACIAN_KERNELS[log.laplacian_aperture], borderType=border)
    return np.clip(img - np.float32(log.alpha) * lap, 0.0, 255.0)


def resize_crop(crop: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """Resize a crop (H×W×3 uint8 RGB) to the model input size; unchanged if already that size."""
    _check_crop(crop)
    h, w = spec.input_height, spec.input_width
    if crop.shape[:2] == (h, w):
        return crop
    return cv2.resize(crop, (w, h), interpolation=_INTERPOLATIONS[spec.interpolation])


def enhance(batch: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """LoG sharpening (if applied at input resolution), scaling, channel order and layout.

    ``batch`` is N×H×W×3 uint8 RGB at the model input size; returns float32 in
    the manifest's layout.
    """
    if batch.ndim != 4 or batch.shape[3] != 3:
        raise InvalidImageError(f"enhance: expected an N×H×W×3 batch, got shape {batch.shape}")
    if spec.log.apply_at == "input":
        out = np.stack([log_sharpen(im, spec.log) for im in batch]) if len(batch) else batch.astype(np.float32)
    else:
        out = batch.astype(np.float32)
    return finish(out, spec)


def finish(sharpened: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """Scale, channel order and layout of an N×H×W×3 float32 batch in 0..255."""
    out = sharpened * np.float32(spec.scale) + np.float32(spec.offset)
    if spec.channel_order == "BGR":
        out = out[..., ::-1]
    if spec.layout == "NCHW":
        out = out.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(out, dtype=np.float32)


def preprocess(crops: Sequence[np.ndarray] | np.ndarray, spec: Preprocessing) -> np.ndarray:
    """Crops (each H×W×3 uint8 RGB, any size) → the model's input batch (float32).

    This is the single definition of the model's preprocessing.
    """
    if isinstance(crops, np.ndarray) and crops.ndim == 3:
        crops = [crops]
    if spec.log.apply_at == "source":
        resized = [_resize_float(log_sharpen(_checked(c), spec.log), spec) for c in crops]
        batch = np.stack(resized) if resized else np.zeros((0, spec.input_height, spec.input_width, 3), np.float32)
        return finish(batch, spec)
    batch_u8 = stack_resized(crops, spec)
    return enhance(batch_u8, spec)


def stack_resized(crops: Sequence[np.ndarray] | np.ndarray, spec: Preprocessing) -> np.ndarray:
    """Step 1 for a batch: N×H×W×3 uint8 at the model input size."""
    if len(crops) == 0:
        return np.zeros((0, spec.input_height, spec.input_width, 3), np.uint8)
    return np.stack([resize_crop(c, spec) for c in crops])


def _resize_float(img: np.ndarray, spec: Preprocessing) -> np.ndarray:
    h, w = spec.input_height, spec.input_width
    if img.shape[:2] == (h, w):
        return img
    return cv2.resize(img, (w, h), interpolation=_INTERPOLATIONS[spec.interpolation])


def _checked(crop: np.ndarray) -> np.ndarray:
    _check_crop(crop)
    return crop


def _check_crop(crop: np.ndarray) -> None:
    if not isinstance(crop, np.ndarray) or crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
        shape = getattr(crop, "shape", None)
        dtype = getattr(crop, "dtype", type(crop).__name__)
        raise InvalidImageError(
            f"preprocess: expected an H×W×3 uint8 RGB crop, got shape {shape} dtype {dtype}",
            hint="read images with leukedge.images.read_image, which returns that form",
        )
