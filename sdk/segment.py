"""Find white cells in a smear frame and cut C-NMC-style crops.

White cells are found by their stain: Romanowsky-type stains colour nuclei
blue-violet, red cells pink-red and the background pale.  The "blueness"
``B − (R+G)/2`` separates them well (nuclei ≫ cytoplasm > background > red
cells).  Nuclei seed a marker-based watershed that grows each cell into its
cytoplasm and separates touching cells; small blue specks (platelets) are
dropped by area.  Sizes are in pixels at the training data's magnification
and scale with ``source_scale``.

An image that already is one segmented cell on black (C-NMC style) passes
through as a single cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from leukedge.images import as_rgb8
from leukedge.manifest import CropSpec, Preprocessing
from leukedge.preprocess import interpolation_code
from leukedge.types import BBox, Cell


@dataclass(frozen=True)
class SegmentParams:
    """Tuning of the detector, in pixels at ``source_scale`` 1 (C-NMC magnification)."""

    nucleus_blueness: float = 40.0  # floor of the nucleus threshold (B − (R+G)/2, 0..255 scale)
    cytoplasm_blueness: float = 5.0  # cytoplasm is bluer than this (red cells are below 0)
    cytoplasm_darkness: float = 12.0  # and darker than the background by this much (green channel)
    min_nucleus_area: int = 1500  # smaller blue blobs are platelets or debris
    min_cell_area: int = 4500  # ~75 px across: smaller regions are platelet clumps or cut-off fragments
    merge_px: int = 15  # nucleus lobes closer than this belong to one cell
    max_cell_radius_factor: float = 1.9  # cell radius ≤ this × the nucleus's equivalent radius
    split_min_distance: int = 30  # touching nuclei whose centres are farther apart are split
    black_level: int = 12  # "black" background of pre-segmented single-cell images
    max_cells: int = 500


@dataclass(frozen=True)
class Region:
    """A cell's outline: bbox in frame pixels and a boolean mask of the bbox's size."""

    bbox: BBox
    mask: np.ndarray
    area: int


def blueness(frame: np.ndarray) -> np.ndarray:
    """``B − (R+G)/2`` as float32, lightly smoothed (frame is H×W×3 uint8 RGB)."""
    f = frame.astype(np.float32)
    b = f[..., 2] - 0.5 * (f[..., 0] + f[..., 1])
    return cv2.GaussianBlur(b, (5, 5), 1.5)


def is_single_cell_image(frame: np.ndarray, *, black_level: int = SegmentParams.black_level) -> bool:
    """True for a C-NMC-style image: one cell on a black background touching all four borders."""
    border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
    if (border.max(axis=1) <= black_level).mean() <= 0.95:
        return False  # cheap exit for ordinary frames
    dark = _channel_max(frame) <= black_level
    # Small C-NMC cells cover ~4% of their canvas; 0.5% still rules out an empty black frame.
    return bool(0.005 < 1.0 - dark.mean() < 0.9)


def _channel_max(frame: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(frame[..., 0], frame[..., 1]), frame[..., 2])


def find_cells(frame: np.ndarray, *, params: SegmentParams | None = None, source_scale: float = 1.0) -> list[Region]:
    """White-cell outlines in a frame (H×W×3 uint8 RGB), sorted top-to-bottom, left-to-right."""
    p = params or SegmentParams()
    frame = as_rgb8(frame)
    if is_single_cell_image(frame, black_level=p.black_level):
        return _single_cell_region(frame, p)
    s = 1.0 / source_scale
    blue = blueness(frame)
    nuclei, centres = _nucleus_markers(blue, p, s)
    if not centres:
        return []
    cell_like = _cell_like(frame, blue, p, s) | (nuclei > 0)
    owner = _nearest_nucleus(nuclei)
    regions = []
    for label, (cx, cy, area) in enumerate(centres, start=1):
        r = int(p.max_cell_radius_factor * np.sqrt(area / np.pi))
        x0, y0 = max(0, int(cx) - r), max(0, int(cy) - r)
        x1, y1 = min(frame.shape[1], int(cx) + r + 1), min(frame.shape[0], int(cy) + r + 1)
        disc = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.circle(disc, (int(cx) - x0, int(cy) - y0), r, 1, -1)
        mine = (owner[y0:y1, x0:x1] == label) & cell_like[y0:y1, x0:x1] & disc.astype(bool)
        mask = _component_holding(mine, nuclei[y0:y1, x0:x1] == label)
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        bx0, by0, bx1, by1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        m = _fill_holes(mask[by0:by1, bx0:bx1])
        if m.sum() < p.min_cell_area * s * s:
            continue
        regions.append(Region(BBox(int(x0 + bx0), int(y0 + by0), int(bx1 - bx0), int(by1 - by0)), m, int(m.sum())))
    regions.sort(key=lambda r: (r.bbox.y, r.bbox.x))
    return regions[: p.max_cells]


def _cell_like(frame: np.ndarray, blue: np.ndarray, p: SegmentParams, s: float) -> np.ndarray:
    """Pixels that may be a white cell's cytoplasm: darker than the background and not red."""
    green = cv2.GaussianBlur(frame[..., 1].astype(np.float32), (5, 5), 1.5)
    sample = green[::4, ::4]  # the background level needs no full-resolution statistics
    background_green = float(np.median(sample[sample >= np.percentile(sample, 75)]))
    mask = ((background_green - green > p.cytoplasm_darkness) & (blue > p.cytoplasm_blueness)).astype(np.uint8)
    k = max(3, round(5 * s) | 1)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return mask.astype(bool)


def _component_holding(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The union of the connected components of ``mask`` that overlap ``seed``."""
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    hit = np.unique(labels[seed & mask])
    hit = hit[hit > 0]
    return np.isin(labels, hit)


def _nucleus_markers(blue: np.ndarray, p: SegmentParams, s: float) -> tuple[np.ndarray, list[tuple[float, float, int]]]:
    """Label image of nuclei (int32, 0 = none; lobes merged) and each nucleus's centre and area."""
    thr = max(p.nucleus_blueness, _otsu(blue))
    mask = (blue > thr).astype(np.uint8)
    k = max(3, round(p.merge_px * s) | 1)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    n, labels, st, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
    min_area = p.min_nucleus_area * s * s
    keep = np.zeros(n, dtype=np.int32)
    centres = []
    for i in range(1, n):
        if st[i, cv2.CC_STAT_AREA] >= min_area:
            centres.append((float(centroids[i][0]), float(centroids[i][1]), int(st[i, cv2.CC_STAT_AREA])))
            keep[i] = len(centres)
    return keep[labels], centres


def _nearest_nucleus(nuclei: np.ndarray) -> np.ndarray:
    """For every pixel, the label of the nearest nucleus (a Voronoi split by nucleus outline).

    Touching cells divide along the line midway between their nuclei.
    """
    _, ccomp = cv2.distanceTransformWithLabels(
        (nuclei == 0).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_CCOMP
    )
    # ccomp numbers the zero-pixel components in its own order; map them to nucleus labels.
    lut = np.zeros(int(ccomp.max()) + 1, np.int32)
    seeds = nuclei > 0
    lut[ccomp[seeds]] = nuclei[seeds]
    return lut[ccomp]


def _otsu(blue: np.ndarray) -> float:
    b8 = np.clip(blue[::2, ::2], 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(b8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(m)
    cv2.drawContours(out, contours, -1, 1, thickness=-1)
    return out.astype(bool)


def _single_cell_region(frame: np.ndarray, p: SegmentParams) -> list[Region]:
    fg = (_channel_max(frame) > p.black_level).astype(np.uint8)
    n, labels, st, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return []
    biggest = 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in st[biggest, :4])
    mask = _fill_holes(labels[y : y + h, x : x + w] == biggest)
    return [Region(BBox(x, y, w, h), mask, int(mask.sum()))]


def crop_cell(
    frame: np.ndarray, region: Region, *, crop: CropSpec, out_px: int | None = None, interpolation: str = "area"
) -> np.ndarray:
    """The cell masked on black, centred on a square canvas of ``crop.canvas_px`` source pixels.

    Returns uint8 RGB of ``out_px`` (default: the canvas size at scale 1).
    A cell larger than the canvas is kept whole: the canvas grows to fit it.
    """
    b = region.bbox
    side = max(round(crop.canvas_px / crop.source_scale), b.w, b.h)
    canvas = np.zeros((side, side, 3), np.uint8)
    ox, oy = (side - b.w) // 2, (side - b.h) // 2
    patch = frame[b.y : b.y + b.h, b.x : b.x + b.w]
    canvas[oy : oy + b.h, ox : ox + b.w][region.mask] = patch[region.mask]
    size = out_px or crop.canvas_px
    if side != size:
        canvas = cv2.resize(canvas, (size, size), interpolation=interpolation_code(interpolation))
    return canvas


def segment(
    frame: np.ndarray,
    spec: Preprocessing | None = None,
    *,
    params: SegmentParams | None = None,
    with_crops: bool = True,
) -> list[Cell]:
    """Cells of a frame with crops ready for :func:`leukedge.preprocess.preprocess`.

    Crops are at the model input size, or at canvas size when the manifest
    applies the LoG at source resolution.
    """
    spec = spec or Preprocessing()
    frame = as_rgb8(frame)
    single = is_single_cell_image(frame, black_level=(params or SegmentParams()).black_level)
    regions = find_cells(frame, params=params, source_scale=spec.crop.source_scale)
    out_px = spec.input_height if spec.log.apply_at == "input" else spec.crop.canvas_px
    cells = []
    for k, r in enumerate(regions):
        crop = None
        if with_crops:
            crop = crop_for(frame, r, crop=spec.crop, out_px=out_px, single=single, interpolation=spec.interpolation)
        cells.append(Cell(index=k, bbox=r.bbox, area=r.area, crop=crop))
    return cells


def crop_for(
    frame: np.ndarray, region: Region, *, crop: CropSpec, out_px: int, single: bool, interpolation: str = "area"
) -> np.ndarray:
    """The model crop of ``region``; a pre-segmented cell image is its own canvas and is only
    padded to a square (with black) and resized, exactly as training data are."""
    if not single:
        return crop_cell(frame, region, crop=crop, out_px=out_px, interpolation=interpolation)
    h, w = frame.shape[:2]
    if h != w:
        side = max(h, w)
        sq = np.zeros((side, side, 3), np.uint8)
        sq[(side - h) // 2 : (side - h) // 2 + h, (side - w) // 2 : (side - w) // 2 + w] = frame
        frame = sq
    if frame.shape[0] == out_px:
        return frame
    return cv2.resize(frame, (out_px, out_px), interpolation=interpolation_code(interpolation))
