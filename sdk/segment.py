"""Find white cells in a smear frame and cut C-NMC-style crops.

White cells are found by their stain: Romanowsky-type stains colour nuclei
blue-violet, red cells pink-red and the background pale.  The "blueness"
``B − (R+G)/2`` separates them well (nuclei ≫ cytoplasm > background > red
cells).  Everything is found on the frame shrunk by :func:`detection_step` (3 at
C-NMC magnification: one pixel in nine); each cell's outline is then scaled back
to frame pixels (linear interpolation, cut at half), so it is smooth and within
about a frame pixel of a full-resolution pass.  Touching cells are split by
nearest nucleus (a Voronoi split, computed only for a cell that reaches into
another's disc); small blue specks (platelets) are dropped by area.  Sizes are
in pixels at the training data's magnification and scale with ``source_scale``.
Crops: :mod:`leukedge.segment_crops`.

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
    "cell_image_crop",
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
    min_merge_px: int = 5  # cells are found on a frame shrunk as far as keeps merge_px this wide


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


_BLUENESS = np.array([[-0.5, -0.5, 1.0]], np.float32)


def is_single_cell_image(frame: np.ndarray, *, black_level: int = SegmentParams.black_level) -> bool:
    """True for a C-NMC-style image: one cell on a black background touching all four borders."""
    border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
    # A large C-NMC cell can touch its canvas's edge (UID_34_22_4: 94% of the border black);
    # smear frames have a bright background and almost no black border.
    if (_channel_max(border) <= black_level).mean() <= 0.9:
        return False  # cheap exit for ordinary frames
    dark = _channel_max(frame) <= black_level
    # Small C-NMC cells cover ~4% of their canvas; 0.5% still rules out an empty black frame.
    return bool(0.005 < 1.0 - dark.mean() < 0.9)


def _channel_max(frame: np.ndarray) -> np.ndarray:
    return np.maximum(np.maximum(frame[..., 0], frame[..., 1]), frame[..., 2])


def find_cells(frame: np.ndarray, *, params: SegmentParams | None = None, source_scale: float = 1.0) -> list[Region]:
    """White-cell outlines in a frame (H×W×3 uint8 RGB), sorted top-to-bottom, left-to-right.

    Everything is found on a copy of the frame shrunk by ``detection_step``;
    each outline is then scaled back up (linear interpolation, half threshold)
    so masks and boxes are in frame pixels.
    """
    p = params or SegmentParams()
    frame = as_rgb8(frame)
    return _find_cells(frame, p, source_scale, is_single_cell_image(frame, black_level=p.black_level))


def _find_cells(frame: np.ndarray, p: SegmentParams, source_scale: float, single: bool) -> list[Region]:
    if single:
        return _single_cell_region(frame, p)
    s = 1.0 / source_scale
    d = detection_step(p, source_scale)
    small = _shrink(frame, d)
    blue = blueness(small, sigma=1.5 / d)
    thr = max(p.nucleus_blueness, _otsu(blue))
    nuclei, centres, boxes = _nucleus_markers(blue, thr, p, s / d)
    if not centres:
        return []
    cell_like = _cell_like(small, blue, p, open_px=5 * s / d, sigma=1.5 / d)
    cell_like |= (nuclei > 0).view(np.uint8)
    sh, sw = nuclei.shape
    xy = np.array([(cx, cy) for cx, cy, _ in centres])
    radii = np.array([int(p.max_cell_radius_factor * np.sqrt(a / np.pi)) + 1 for _, _, a in centres])
    regions = []
    for i, ((cx, cy), r) in enumerate(zip(xy.tolist(), radii.tolist())):
        label = i + 1
        x0, y0 = max(0, int(cx) - r), max(0, int(cy) - r)
        x1, y1 = min(sw, int(cx) + r + 2), min(sh, int(cy) + r + 2)
        disc = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.circle(disc, (round(cx) - x0, round(cy) - y0), r, 1, -1)
        mine = cell_like[y0:y1, x0:x1] & disc
        seed = nuclei[y0:y1, x0:x1] == label
        found = _component_holding(mine.view(bool), seed)
        if found is not None and _reaches_another_disc(i, found, (x0, y0), xy, radii):
            # touching cells: split the cytoplasm between them by nearest nucleus, in the cell's box
            # (the split only removes pixels, so none outside the cell can join it)
            bx0, by0, bx1, by1 = found[1]
            box = (y0 + by0, y0 + by1, x0 + bx0, x0 + bx1)
            split = np.zeros_like(mine)
            split[by0:by1, bx0:bx1] = _nearer_own_nucleus(nuclei, label, (cx, cy), r, boxes[i], box)
            found = _component_holding((mine & split).view(bool), seed)
        if found is None:
            continue
        mask, (bx0, by0, bx1, by1) = found
        full = _to_frame(_fill_holes(mask[by0:by1, bx0:bx1], 255), (x0 + bx0, y0 + by0), d, frame.shape[:2])
        if full is not None and full.area >= p.min_cell_area * s * s:
            regions.append(full)
    regions.sort(key=lambda r: (r.bbox.y, r.bbox.x))
    return regions[: p.max_cells]


def detection_step(params: SegmentParams, source_scale: float = 1.0) -> int:
    """The factor by which the frame is shrunk to find cells (1: full resolution).

    Chosen so that the lobe-merging kernel stays ``min_merge_px`` wide or more
    (at C-NMC magnification: 3, so a minimal nucleus still covers ~170 pixels).
    """
    return max(1, int(params.merge_px / source_scale / params.min_merge_px + 1e-6))


def _shrink(frame: np.ndarray, d: int) -> np.ndarray:
    if d == 1:
        return frame
    # One point sample per d×d block, its centre pixel (for odd d what a linear resize to exactly
    # 1/d gives, at half its cost): the blueness is smoothed afterwards anyway.
    c = d // 2
    sh, sw = (frame.shape[0] - c) // d, (frame.shape[1] - c) // d
    return cv2.resize(frame[c : c + sh * d, c : c + sw * d], (sw, sh), interpolation=cv2.INTER_NEAREST)


def _to_frame(mask: np.ndarray, origin: tuple[int, int], d: int, shape: tuple[int, int]) -> Region | None:
    """A mask of the shrunk frame (uint8 0/255) at ``origin`` (x, y) as a Region in frame pixels:
    scaled up by ``d`` with linear interpolation and cut at half, so the outline is smooth, not blocky."""
    x, y = origin
    if d == 1:
        return Region(BBox(x, y, mask.shape[1], mask.shape[0]), mask > 0, cv2.countNonZero(mask))
    # one empty pixel around: the edge interpolates towards outside, as it does in the frame
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    up = cv2.resize(padded, None, fx=d, fy=d, interpolation=cv2.INTER_LINEAR)
    fx, fy = (x - 1) * d, (y - 1) * d
    h, w = shape
    up = (up[max(0, -fy) : h - fy, max(0, -fx) : w - fx] > 127).view(np.uint8)  # cut to the frame
    fx, fy = max(0, fx), max(0, fy)
    bx, by, bw, bh = cv2.boundingRect(up)
    if bw == 0:
        return None
    m = np.ascontiguousarray(up[by : by + bh, bx : bx + bw])
    return Region(BBox(fx + bx, fy + by, bw, bh), m.view(bool), cv2.countNonZero(m))


def _ellipse(k: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))


def _cell_like(small: np.ndarray, blue: np.ndarray, p: SegmentParams, *, open_px: float, sigma: float) -> np.ndarray:
    """Pixels that may be a white cell's cytoplasm (uint8 0/1): darker than the background and not red.

    The background's green level is the median of the brightest quarter of the smoothed green
    channel (sampled down to ~8k pixels: its error is far below a grey level)."""
    green = cv2.GaussianBlur(cv2.extractChannel(small, 1).astype(np.float32), (5, 5) if sigma >= 1 else (3, 3), sigma)
    step = max(1, int(np.ceil(np.sqrt(green.size / 8192))))
    sample = green[::step, ::step].ravel()
    brightest = np.partition(sample, len(sample) * 3 // 4)[len(sample) * 3 // 4 :]
    background = float(np.partition(brightest, len(brightest) // 2)[len(brightest) // 2])
    mask = ((background - green > p.cytoplasm_darkness) & (blue > p.cytoplasm_blueness)).view(np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, _ellipse(max(3, round(open_px) | 1)))


def _reaches_another_disc(
    i: int,
    found: tuple[np.ndarray, tuple[int, int, int, int]],
    origin: tuple[int, int],
    xy: np.ndarray,
    radii: np.ndarray,
) -> bool:
    """Whether cell ``i`` (a mask and its box x0, y0, x1, y1, placed at ``origin``) enters another
    nucleus's disc: only then may it hold a neighbour's cytoplasm and need the nearest-nucleus split."""
    mask, (x0, y0, x1, y1) = found
    ox, oy = origin
    # boxes first (cheap), then the pixels of the few discs the box meets
    dx = np.maximum(0, np.maximum(x0 + ox - xy[:, 0], xy[:, 0] - (x1 - 1 + ox)))
    dy = np.maximum(0, np.maximum(y0 + oy - xy[:, 1], xy[:, 1] - (y1 - 1 + oy)))
    near = np.hypot(dx, dy) <= radii
    near[i] = False
    if not near.any():
        return False
    ys, xs = np.nonzero(mask[y0:y1, x0:x1])
    for j in np.flatnonzero(near):
        if (np.hypot(xs + (x0 + ox) - xy[j, 0], ys + (y0 + oy) - xy[j, 1]) <= radii[j]).any():
            return True
    return False


def _nearer_own_nucleus(
    nuclei: np.ndarray, label: int, centre: tuple[float, float], r: int, box: np.ndarray, window: tuple[int, ...]
) -> np.ndarray:
    """Which pixels of ``window`` (y0, y1, x0, x1) are at least as near nucleus ``label`` as any
    other nucleus (a Voronoi split by nucleus outline), from the nuclei around the window only.

    Only pixels of the disc (within ``r`` of ``centre``) matter, and each is within
    ``r`` + (the centre's distance to its nucleus, ≤ the nucleus ``box``'s diagonal) of its own
    nucleus: no nucleus farther out than that can be nearer, so a margin of that size gives
    what a whole-frame split would, at a fraction of its cost."""
    y0, y1, x0, x1 = window
    cx, cy = round(centre[0]), round(centre[1])
    h, w = nuclei.shape
    inside = 0 <= cy < h and 0 <= cx < w and nuclei[cy, cx] == label
    g = r + 2 if inside else r + int(np.hypot(box[2] - box[0], box[3] - box[1])) + 2  # a crescent: its box
    wy0, wx0 = max(0, y0 - g), max(0, x0 - g)
    near = nuclei[wy0 : min(h, y1 + g), wx0 : min(w, x1 + g)]
    own = near == label
    to_own = cv2.distanceTransform((~own).view(np.uint8), cv2.DIST_L2, 3)
    to_other = cv2.distanceTransform(((near == 0) | own).view(np.uint8), cv2.DIST_L2, 3)
    return (to_own <= to_other)[y0 - wy0 : y1 - wy0, x0 - wx0 : x1 - wx0]


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
    """Label image of nuclei (uint16, 0 = none; lobes merged), each nucleus's centre and area, and
    their boxes (x0, y0, x1, y1); ``s`` is pixels of ``blue`` per pixel at C-NMC magnification.

    The blobs are traced as outer contours, numbered in raster order of their first pixel (as
    connected-component labelling numbers them), and measured in their own boxes: ~5× cheaper
    than OpenCV's labelling with statistics over the whole frame. A blob inside another's hole
    joins it."""
    mask = (blue > thr).view(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _ellipse(max(3, round(p.merge_px * s) | 1)))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    min_area = p.min_nucleus_area * s * s
    nuclei = np.zeros(mask.shape, np.uint16)
    centres: list[tuple[float, float, int]] = []
    boxes = []
    for c in sorted(contours, key=lambda c: (int(c[0, 0, 1]), int(c[0, 0, 0]))):
        x, y, w, h = cv2.boundingRect(c)
        if w * h < min_area or len(centres) == np.iinfo(np.uint16).max:
            continue
        blob = np.zeros((h, w), np.uint8)
        cv2.drawContours(blob, [c], -1, 1, thickness=-1, offset=(-x, -y))
        blob &= mask[y : y + h, x : x + w]  # holes stay holes, as labelling leaves them
        m = cv2.moments(blob, binaryImage=True)
        if m["m00"] < min_area:
            continue
        centres.append((x + m["m10"] / m["m00"], y + m["m01"] / m["m00"], int(m["m00"])))
        boxes.append((x, y, x + w, y + h))
        nuclei[y : y + h, x : x + w][blob.view(bool)] = len(centres)
    return nuclei, centres, np.array(boxes, dtype=np.int64).reshape(-1, 4)


def _otsu(blue: np.ndarray) -> float:
    """Otsu's threshold of the blueness, from ~65k pixels of it."""
    step = max(1, int(np.ceil(np.sqrt(blue.size / 65536))))
    b8 = np.clip(blue[::step, ::step], 0, 255).astype(np.uint8)
    t, _ = cv2.threshold(b8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t)


def _fill_holes(mask: np.ndarray, value: int = 1) -> np.ndarray:
    """``mask`` (bool) with its holes filled, as uint8 ``value`` on 0."""
    contours, _ = cv2.findContours(mask.view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros(mask.shape, np.uint8)
    cv2.drawContours(out, contours, -1, value, thickness=-1)
    return out


def _single_cell_region(frame: np.ndarray, p: SegmentParams) -> list[Region]:
    fg = (_channel_max(frame) > p.black_level).astype(np.uint8)
    n, labels, st, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    if n <= 1:
        return []
    biggest = 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in st[biggest, :4])
    mask = _fill_holes(labels[y : y + h, x : x + w] == biggest).view(bool)
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
    p = params or SegmentParams()
    single = is_single_cell_image(frame, black_level=p.black_level)
    regions = _find_cells(frame, p, spec.crop.source_scale, single)
    out_px = spec.input_height if spec.log.apply_at == "input" else spec.crop.canvas_px
    cells = []
    for k, r in enumerate(regions):
        crop = None
        if with_crops:
            crop = crop_for(frame, r, crop=spec.crop, out_px=out_px, single=single, interpolation=spec.interpolation)
        cells.append(Cell(index=k, bbox=r.bbox, area=r.area, crop=crop))
    return cells


def cell_image_crop(
    frame: np.ndarray, spec: Preprocessing | None = None, *, params: SegmentParams | None = None
) -> tuple[np.ndarray, Region]:
    """The model crop of an image that is one cell (a C-NMC file), and the cell's region.

    The one definition training, evaluation and ``score`` share: the cell is the largest
    non-black component when the image is a C-NMC-style cell on black, else the whole image;
    then ``crop_for`` as for a cell segmented from a frame.  The crop is at the model input size
    (canvas size when the manifest applies the LoG at source resolution).
    """
    spec = spec or Preprocessing()
    frame = as_rgb8(frame)
    p = params or SegmentParams()
    h, w = frame.shape[:2]
    regions = _single_cell_region(frame, p) if is_single_cell_image(frame, black_level=p.black_level) else []
    region = regions[0] if regions else Region(BBox(0, 0, w, h), np.ones((h, w), bool), h * w)
    out_px = spec.input_height if spec.log.apply_at == "input" else spec.crop.canvas_px
    crop = crop_for(frame, region, crop=spec.crop, out_px=out_px, single=True, interpolation=spec.interpolation)
    return crop, region
