"""Per-cell measurements: a perceptual hash and hand-crafted features.

Both are computed once per file when a data folder is scanned.  The hash
finds near-identical cells (the same cell imaged twice, or filed under two
donors); the features feed the Table I baselines (KNN, SVM, area-only
logistic regression) and the within-area-bin AUC.

Images are C-NMC-style: one segmented cell on black.  The cell mask is the
largest connected non-black region with its holes filled (``leukedge.segment``'s
single-cell rule).  Areas and lengths are in pixels of the 450-pixel C-NMC
canvas (``CropSpec.canvas_px``), so a cell keeps its size whatever the file's
resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

from leukedge.manifest import CropSpec
from leukedge.segment import SegmentParams

HASH_SIDE = 16  # 16×16 DCT coefficients → a 256-bit hash
# Measured on cnmc_sample (docs/training.md): re-imaged copies of one cell are
# ≤ 30 bits apart and their 32×32 thumbnails correlate ≥ 0.993; distinct cells
# are ≥ 34 bits apart, and distinct synthetic cells within 32 bits correlate
# ≤ 0.98.  A pair is a duplicate when both tests agree.
DUPLICATE_BITS = 32
DUPLICATE_CORRELATION = 0.99
THUMB_SIDE = 32

FEATURE_NAMES = (
    "area",
    "perimeter",
    "circularity",
    "solidity",
    "eccentricity",
    "equiv_diameter",
    "mean_r",
    "mean_g",
    "mean_b",
    "std_r",
    "std_g",
    "std_b",
    "gray_mean",
    "gray_std",
    "gray_entropy",
    "gradient_mean",
    "laplacian_var",
    "glcm_contrast",
    "glcm_homogeneity",
    "glcm_energy",
)


def perceptual_hash(image: np.ndarray) -> np.ndarray:
    """256-bit DCT hash of an H×W×3 uint8 RGB image, as 32 packed bytes (uint8).

    Grey 64×64 thumbnail → DCT → the 16×16 lowest frequencies, each bit
    "coefficient above the median of the AC coefficients".
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    thumb = cv2.resize(grey, (4 * HASH_SIDE, 4 * HASH_SIDE), interpolation=cv2.INTER_AREA)
    coeffs = cv2.dct(thumb)[:HASH_SIDE, :HASH_SIDE].ravel()
    return np.packbits(coeffs > np.median(coeffs[1:]))


_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(axis=1).astype(np.uint16)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """32×32×3 uint8 thumbnail, the second test of a duplicate."""
    return cv2.resize(image, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)


def thumb_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two thumbnails' pixel values."""
    x = a.astype(np.float64).ravel()
    y = b.astype(np.float64).ravel()
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den else 1.0


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between packed hashes; ``a`` (N×32) against ``b`` (M×32) gives N×M."""
    x = np.bitwise_xor(a[:, None, :], b[None, :, :])
    return _POPCOUNT[x].sum(axis=-1, dtype=np.int32)


def cell_mask(image: np.ndarray, *, black_level: int = SegmentParams.black_level) -> np.ndarray:
    """Boolean mask of the cell: the largest non-black component, holes filled."""
    fg = (image.max(axis=2) > black_level).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return np.zeros(fg.shape, bool)
    biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    m = (labels == biggest).astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    filled = np.zeros_like(m)
    cv2.drawContours(filled, contours, -1, 1, thickness=-1)
    return filled.astype(bool)


def cell_features(image: np.ndarray, *, canvas_px: int = CropSpec.canvas_px) -> np.ndarray:
    """The FEATURE_NAMES of the cell in ``image`` (H×W×3 uint8 RGB), float64; NaN without a cell."""
    mask = cell_mask(image)
    area_px = int(mask.sum())
    if area_px < 16:
        return np.full(len(FEATURE_NAMES), np.nan)
    k = canvas_px / max(image.shape[:2])  # file pixels → canvas pixels
    m8 = mask.astype(np.uint8)
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    perimeter = cv2.arcLength(contour, True)
    hull_area = cv2.contourArea(cv2.convexHull(contour))
    ecc = _eccentricity(m8)
    rgb_mean, rgb_std = (v.ravel() for v in cv2.meanStdDev(image, mask=m8))
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    g_mean, g_std = (float(v.ravel()[0]) for v in cv2.meanStdDev(grey, mask=m8))
    hist = np.bincount(grey[mask], minlength=256) / area_px
    nz = hist[hist > 0]
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    inner = cv2.erode(m8, np.ones((5, 5), np.uint8)).astype(bool)  # keep the outline's edge out of texture
    inner = inner if inner.any() else mask
    lap = cv2.Laplacian(grey, cv2.CV_32F)
    contrast, homogeneity, energy = _glcm(grey, inner)
    return np.array(
        [
            area_px * k * k,
            perimeter * k,
            4.0 * np.pi * area_px / max(perimeter, 1.0) ** 2,
            area_px / max(hull_area, 1.0),
            ecc,
            np.sqrt(4.0 * area_px / np.pi) * k,
            *rgb_mean,
            *rgb_std,
            g_mean,
            g_std,
            float(-(nz * np.log2(nz)).sum()),
            float(np.hypot(gx, gy)[inner].mean()),
            float(lap[inner].var()),
            contrast,
            homogeneity,
            energy,
        ],
        dtype=np.float64,
    )


def _eccentricity(mask: np.ndarray) -> float:
    mo = cv2.moments(mask, binaryImage=True)
    if mo["m00"] == 0:
        return 0.0
    a, b, c = mo["mu20"] / mo["m00"], mo["mu11"] / mo["m00"], mo["mu02"] / mo["m00"]
    root = np.sqrt(((a - c) / 2.0) ** 2 + b * b)
    major, minor = (a + c) / 2.0 + root, (a + c) / 2.0 - root
    return float(np.sqrt(max(0.0, 1.0 - minor / major))) if major > 0 else 0.0


def _glcm(grey: np.ndarray, mask: np.ndarray, levels: int = 16) -> tuple[float, float, float]:
    """Grey-level co-occurrence (right and down neighbours, symmetric) inside ``mask``."""
    q = (grey.astype(np.int32) * levels) // 256
    counts = np.zeros((levels, levels), np.float64)
    for dy, dx in ((0, 1), (1, 0)):
        a = q[: q.shape[0] - dy, : q.shape[1] - dx]
        b = q[dy:, dx:]
        both = mask[: q.shape[0] - dy, : q.shape[1] - dx] & mask[dy:, dx:]
        counts += np.bincount(a[both] * levels + b[both], minlength=levels * levels).reshape(levels, levels)
    counts = counts + counts.T
    total = counts.sum()
    if total == 0:
        return 0.0, 0.0, 0.0
    p = counts / total
    i, j = np.indices(p.shape)
    return float((p * (i - j) ** 2).sum()), float((p / (1.0 + np.abs(i - j))).sum()), float((p * p).sum())
