"""Find white cells in a smear frame and cut C-NMC-style crops.

White cells are found by their stain: Romanowsky-type stains colour nuclei
blue-violet, red cells pink-red and the background pale.  The "blueness"
``B − (R+G)/2`` separates them well (nuclei ≫ cytoplasm > background > red
cells).  Nuclei are found on the frame shrunk by :func:`detection_step` (3 at
C-NMC magnification), the whole-frame work; each nucleus and its cell are then
outlined at full resolution in a window around it, so the outlines are those a
full-resolution pass gives.  Touching cells are split by nearest nucleus (a
Voronoi split, computed only where another nucleus is near); small blue specks
(platelets) are dropped by area.  Sizes are in pixels at the training data's
magnification and scale with ``source_scale``.  Crops: :mod:`leukedge.segment_crops`.

An image that already is one segmented cell on black (C-NMC style) passes
through as a single cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from leukedge.images import as_rgb8
from leukedge.manifest import Preprocessing
from leukedge.segment_crops import crop_cell, crop_for
from leukedge.types import BBox, Cell

__all__ = [
    "Region",
    "SegmentParams",
    "blueness",
    "crop_cell",
    "crop_for",
    "detection_step",
    "find_cells",
    "is_single_cell_image",
    "segment",
]


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
    min_merge_px: int = 5  # nuclei are searched on a frame shrunk as far as keeps merge_px this wide


@dataclass(frozen=True)
class Region:
    """A cell's outline: bbox in frame pixels and a boolean mask of the bbox's size."""

    bbox: BBox
    mask: np.ndarray
    area: int


def blueness(frame: np.ndarray, *, sigma: float = 1.5) -> np.ndarray:
    """``B − (R+G)/2`` as float32, lightly smoothed (frame is H×W×3 uint8 RGB)."""
    b = cv2.transform(frame.astype(np.float32), _BLUENESS)  # exact: halves of integers
    k = 5 if sigma >= 1.0 else 3  # a shrunk frame gets the same blur in its own pixels: σ 1.5 / step
    return cv2.GaussianBlur(b, (k, k), sigma)


# BBDT labelling with statistics is ~3× faster than OpenCV's default here (OpenCV ≥ 4.5 has it)
_CCL = getattr(cv2, "CCL_BBDT", cv2.CCL_DEFAULT)
_BLUENESS = np.array([[-0.5, -0.5, 1.0]], np.float32)


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
    """White-cell outlines in a frame (H×W×3 uint8 RGB), sorted top-to-bottom, left-to-right.

    Nuclei are found on a copy of the frame shrunk by ``detection_step`` (the
    expensive whole-frame work); each cell's outline is then traced at full
    resolution in a window around its nucleus only.
    """
    p = params or SegmentParams()
    frame = as_rgb8(frame)
    if is_single_cell_image(frame, black_level=p.black_level):
        return _single_cell_region(frame, p)
    s = 1.0 / source_scale
    d = detection_step(p, source_scale)
    small = _shrink(frame, d)
    blue_small = blueness(small, sigma=1.5 / d)
    thr = max(p.nucleus_blueness, _otsu(blue_small[:: max(1, 2 // d), :: max(1, 2 // d)]))
    nuclei, centres, boxes = _nucleus_markers(blue_small, thr, p, s / d)
    if not centres:
        return []
    background_green = _background_green(frame)
    close_k = _ellipse(max(3, round(p.merge_px * s) | 1))
    open_k = _ellipse(max(3, round(5 * s) | 1))
    margin = open_k.shape[0] + 3  # opening and blur reach: inside it the window sees what the frame would
    owner: np.ndarray | None = None
    h, w = frame.shape[:2]
    regions = []
    for label, (cx, cy, area) in enumerate(centres, start=1):
        cx, cy, area = (cx + 0.5) * d - 0.5, (cy + 0.5) * d - 0.5, area * d * d
        # the shrunk frame's area is within a few per cent: 10% more radius holds the cell
        reach = int(1.1 * p.max_cell_radius_factor * np.sqrt(area / np.pi)) + d + margin
        ex0, ey0 = max(0, int(cx) - reach), max(0, int(cy) - reach)
        ex1, ey1 = min(w, int(cx) + reach + 1), min(h, int(cy) + reach + 1)
        win = frame[ey0:ey1, ex0:ex1]
        blue = blueness(win)
        own, (ox, oy) = _nucleus_outline(blue, thr, nuclei, label, boxes[label - 1], (ey0, ex0), close_k, d)
        mom = cv2.moments(own.view(np.uint8), binaryImage=True)
        if mom["m00"] == 0:
            continue
        cx, cy = ex0 + ox + mom["m10"] / mom["m00"], ey0 + oy + mom["m01"] / mom["m00"]
        r = int(p.max_cell_radius_factor * np.sqrt(mom["m00"] / np.pi))
        x0, y0 = max(ex0, int(cx) - r), max(ey0, int(cy) - r)
        x1, y1 = min(ex1, int(cx) + r + 1), min(ey1, int(cy) + r + 1)
        seed = np.zeros(blue.shape, bool)
        seed[oy : oy + own.shape[0], ox : ox + own.shape[1]] = own
        # the cytoplasm test on the disc and the margin it needs to be exact there
        cy0, cx0 = max(0, y0 - ey0 - margin), max(0, x0 - ex0 - margin)
        near = (slice(cy0, y1 - ey0 + margin), slice(cx0, x1 - ex0 + margin))
        cell_like = _cell_like(win[near], blue[near], background_green, p, open_k)
        seed = seed[near]
        cell_like |= seed
        sl = (slice(y0 - ey0 - cy0, y1 - ey0 - cy0), slice(x0 - ex0 - cx0, x1 - ex0 - cx0))
        disc = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.circle(disc, (int(cx) - x0, int(cy) - y0), r, 1, -1)
        mine = cell_like[sl] & disc.astype(bool)
        if _crowded(label - 1, boxes, d, r):
            if owner is None:
                owner = _nearest_nucleus(nuclei)
            mine &= _upsample(owner, (y0, y1, x0, x1), d, cv2.INTER_NEAREST) == label
        found = _component_holding(mine, seed[sl])
        if found is None:
            continue
        mask, (bx0, by0, bx1, by1) = found
        m = _fill_holes(mask[by0:by1, bx0:bx1])
        if m.sum() < p.min_cell_area * s * s:
            continue
        regions.append(Region(BBox(int(x0 + bx0), int(y0 + by0), int(bx1 - bx0), int(by1 - by0)), m, int(m.sum())))
    regions.sort(key=lambda r: (r.bbox.y, r.bbox.x))
    return regions[: p.max_cells]


def detection_step(params: SegmentParams, source_scale: float = 1.0) -> int:
    """The factor by which nuclei are searched on a shrunk frame (1: full resolution).

    Chosen so that the lobe-merging kernel stays ``min_merge_px`` wide or more
    (at C-NMC magnification: 3, so a minimal nucleus still covers ~170 pixels).
    """
    return max(1, int(params.merge_px / source_scale / params.min_merge_px + 1e-6))


def _shrink(frame: np.ndarray, d: int) -> np.ndarray:
    if d == 1:
        return frame
    h, w = (frame.shape[0] // d) * d, (frame.shape[1] // d) * d  # whole d×d blocks: OpenCV's exact box average
    # Point samples at block centres (OpenCV's linear resize at exactly 1/d): cheaper than
    # area averaging, and the blueness is smoothed afterwards anyway.
    return cv2.resize(frame[:h, :w], (w // d, h // d), interpolation=cv2.INTER_LINEAR)


def _upsample(small: np.ndarray, window: tuple[int, int, int, int], d: int, code: int) -> np.ndarray:
    """The full-resolution window (y0, y1, x0, x1) of an image shrunk by ``d``."""
    y0, y1, x0, x1 = window
    if d == 1:
        return small[y0:y1, x0:x1]
    # one shrunk pixel of context on each side, so interpolation sees the neighbours
    sy0, sx0 = max(0, y0 // d - 1), max(0, x0 // d - 1)
    sy1, sx1 = min(small.shape[0], (y1 - 1) // d + 2), min(small.shape[1], (x1 - 1) // d + 2)
    up = cv2.resize(small[sy0:sy1, sx0:sx1], None, fx=d, fy=d, interpolation=code)
    out = up[y0 - sy0 * d : y1 - sy0 * d, x0 - sx0 * d : x1 - sx0 * d]
    short = (y1 - y0 - out.shape[0], x1 - x0 - out.shape[1])
    if short[0] > 0 or short[1] > 0:  # the last < d rows/columns, dropped when shrinking
        out = np.pad(out, ((0, max(0, short[0])), (0, max(0, short[1]))), mode="edge")
    return out


def _nucleus_outline(
    blue: np.ndarray,
    thr: float,
    nuclei: np.ndarray,
    label: int,
    box: np.ndarray,
    origin: tuple[int, int],
    close_k: np.ndarray,
    d: int,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Nucleus ``label`` of the shrunk frame outlined again at full resolution, as the whole-frame
    detector would see it: thresholded and closed in its box grown by the closing's reach.

    ``blue``: a window of the frame at ``origin`` (y, x); ``box``: x0, y0, x1, y1 in shrunk pixels.
    Returns the mask of that grown box and the box's corner (x, y) in window pixels.
    """
    grow = close_k.shape[0] + 2 * d if d > 1 else 0
    h, w = blue.shape
    y0, x0 = origin
    bx0, by0 = max(0, int(box[0]) * d - x0 - grow), max(0, int(box[1]) * d - y0 - grow)
    bx1, by1 = min(w, int(box[2]) * d - x0 + grow), min(h, int(box[3]) * d - y0 + grow)
    own = _upsample(nuclei, (y0 + by0, y0 + by1, x0 + bx0, x0 + bx1), d, cv2.INTER_NEAREST) == label
    if d > 1:
        closed = cv2.morphologyEx((blue[by0:by1, bx0:bx1] > thr).astype(np.uint8), cv2.MORPH_CLOSE, close_k)
        found = _component_holding(closed.view(bool), own)
        if found is not None:
            own = found[0]
    return own, (bx0, by0)


def _ellipse(k: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def _background_green(frame: np.ndarray) -> float:
    """The background's green level: the median of the brightest quarter of the smoothed green
    channel, sampled every 4th pixel (the cytoplasm test is relative to it, so it is taken at
    full resolution: a shrunk frame's estimate moves by up to a grey level and cell outlines with it)."""
    green = cv2.sepFilter2D(cv2.extractChannel(frame, 1), cv2.CV_32F, _GAUSS_5, _GAUSS_5)
    sample = green[::4, ::4]
    return float(np.median(sample[sample >= np.percentile(sample, 75)]))


_GAUSS_5 = cv2.getGaussianKernel(5, 1.5, cv2.CV_32F)


def _cell_like(
    win: np.ndarray, blue: np.ndarray, background_green: float, p: SegmentParams, open_k: np.ndarray
) -> np.ndarray:
    """Pixels that may be a white cell's cytoplasm: darker than the background and not red."""
    green = cv2.GaussianBlur(win[..., 1].astype(np.float32), (5, 5), 1.5)
    mask = ((background_green - green > p.cytoplasm_darkness) & (blue > p.cytoplasm_blueness)).astype(np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, open_k).astype(bool)


def _crowded(i: int, boxes: np.ndarray, d: int, r: int) -> bool:
    """Whether another nucleus may be nearer than nucleus ``i`` to some pixel of its disc.

    Only then the Voronoi split can change the cell; for lone cells it is skipped.
    A pixel in the disc is within ``r`` of the centre and within ``r`` + the
    nucleus's half-diagonal of its own nucleus, so any rival lies within
    ``2r`` + half-diagonal of the centre (``boxes``: x0, y0, x1, y1 in shrunk pixels).
    """
    if len(boxes) < 2:
        return False
    b = boxes.astype(np.float64) * d
    cx, cy = (b[i, 0] + b[i, 2]) / 2, (b[i, 1] + b[i, 3]) / 2
    reach = 2 * r + 0.5 * np.hypot(b[i, 2] - b[i, 0], b[i, 3] - b[i, 1]) + 2 * d
    dx = np.maximum(0, np.maximum(b[:, 0] - cx, cx - b[:, 2]))
    dy = np.maximum(0, np.maximum(b[:, 1] - cy, cy - b[:, 3]))
    near = np.hypot(dx, dy) <= reach
    near[i] = False
    return bool(near.any())


def _component_holding(mask: np.ndarray, seed: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The union of the connected components of ``mask`` that overlap ``seed``, and its box
    (x0, y0, x1, y1); None when the seed touches none."""
    n, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    hit = np.bincount(labels[seed & mask], minlength=n) > 0
    hit[0] = False
    if not hit.any():
        return None
    ids = np.flatnonzero(hit)
    out = labels == ids[0] if len(ids) == 1 else hit[labels]
    x, y, w, h = cv2.boundingRect(out.view(np.uint8))
    return out, (x, y, x + w, y + h)


def _nucleus_markers(
    blue: np.ndarray, thr: float, p: SegmentParams, s: float
) -> tuple[np.ndarray, list[tuple[float, float, int]], np.ndarray]:
    """Label image of nuclei (int32, 0 = none; lobes merged), each nucleus's centre and area, and
    their boxes (x0, y0, x1, y1); ``s`` is pixels of ``blue`` per pixel at C-NMC magnification."""
    mask = (blue > thr).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _ellipse(max(3, round(p.merge_px * s) | 1)))
    n, labels, st, centroids = cv2.connectedComponentsWithStatsWithAlgorithm(mask, 8, cv2.CV_32S, _CCL)
    min_area = p.min_nucleus_area * s * s
    keep = np.zeros(n, dtype=np.int32)
    centres = []
    boxes = []
    for i in range(1, n):
        if st[i, cv2.CC_STAT_AREA] >= min_area:
            centres.append((float(centroids[i][0]), float(centroids[i][1]), int(st[i, cv2.CC_STAT_AREA])))
            x, y, bw, bh = (int(v) for v in st[i, :4])
            boxes.append((x, y, x + bw, y + bh))
            keep[i] = len(centres)
    return keep[labels], centres, np.array(boxes, dtype=np.int64).reshape(-1, 4)


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
    b8 = np.clip(blue, 0, 255).astype(np.uint8)
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
