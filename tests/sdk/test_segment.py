from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from leukedge.images import read_image
from leukedge.manifest import CropSpec, Preprocessing
from leukedge.segment import find_cells, is_single_cell_image, segment
from leukedge.synthetic import make_cell_image, make_smear_frame

REPO = Path(__file__).resolve().parents[2]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("segment_bccd", REPO / "benchmarks" / "segment_bccd.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["segment_bccd"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.shared_data
def test_bccd_white_cell_detection_meets_the_goal(smear_dir) -> None:
    """The repo's benchmark on the real BCCD frames: recall >= 0.95, precision >= 0.90 at IoU >= 0.5."""
    result = _load_benchmark().evaluate(smear_dir)
    assert result["frames"] == 100 and result["wbc_boxes"] == 105
    assert result["recall"] >= 0.95, result
    assert result["precision"] >= 0.90, result


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_frames_every_cell_found_once(seed: int) -> None:
    frame, truth = make_smear_frame(seed, width=1280, height=720, cells=5, touching=1)
    found = [r.bbox for r in find_cells(frame)]
    assert len(found) == len(truth)
    for t in truth:
        assert max(f.iou(t.bbox) for f in found) >= 0.7


def test_touching_cells_are_split() -> None:
    frame, truth = make_smear_frame(5, width=900, height=700, cells=2, touching=1, platelets=0)
    a, b = truth
    gap = np.hypot(a.cx - b.cx, a.cy - b.cy) - a.radius - b.radius
    assert gap < 15  # the two cells really touch
    found = find_cells(frame)
    assert len(found) == 2
    assert {max(range(2), key=lambda i: f.bbox.iou(truth[i].bbox)) for f in found} == {0, 1}


def test_red_cells_and_platelets_only_give_no_cells() -> None:
    frame, truth = make_smear_frame(3, cells=0, platelets=30)
    assert truth == [] and find_cells(frame) == []


def test_single_cell_image_passes_through_as_one_cell() -> None:
    img = make_cell_image(1, "all")
    assert is_single_cell_image(img)
    cells = segment(img)
    assert len(cells) == 1
    assert cells[0].crop.shape == (128, 128, 3)
    # The crop is the image itself, resized: nothing moved or masked.
    import cv2

    np.testing.assert_array_equal(cells[0].crop, cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA))


@pytest.mark.shared_data
def test_real_cnmc_cells_pass_through(cnmc_dir) -> None:
    # The first few, and the two smallest cells of the sample (~4% of their canvas).
    names = [p.name for p in sorted((cnmc_dir / "hem").glob("*.png"))[:5]]
    for name in [*names, "UID_H22_35_3_hem.png", "UID_H22_4_10_hem.png"]:
        img = read_image(cnmc_dir / "hem" / name)
        assert is_single_cell_image(img), name
        assert len(find_cells(img)) == 1


def test_crops_are_centred_masked_and_keep_size_information() -> None:
    frame, _ = make_smear_frame(11, width=1000, height=700, cells=3)
    cells = segment(frame, Preprocessing())
    for c in cells:
        crop = c.crop
        assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
        fg = crop.max(axis=2) > 12
        ys, xs = np.nonzero(fg)
        assert abs(xs.mean() - 64) < 8 and abs(ys.mean() - 64) < 8  # centred
        assert crop[:8].max() == 0 and crop[:, :8].max() == 0  # black outside the cell
    # A fixed canvas keeps size: the bigger cell covers more of its crop.
    areas = [c.area for c in cells]
    fills = [(c.crop.max(axis=2) > 12).mean() for c in cells]
    assert np.argmax(areas) == np.argmax(fills)


def test_source_scale_maps_magnification() -> None:
    frame, truth = make_smear_frame(4, width=640, height=400, cells=2, scale=0.5)
    spec = Preprocessing(crop=CropSpec(canvas_px=450, source_scale=2.0))
    found = segment(frame, spec)
    assert len(found) == len(truth) == 2
    full = segment(make_cell_image(9, "all"), Preprocessing())[0]
    half_fill = (found[0].crop.max(axis=2) > 12).mean()
    assert 0.5 * half_fill < (full.crop.max(axis=2) > 12).mean() < 2.0 * half_fill


def test_large_frame_works_in_bounded_time_and_memory() -> None:
    frame, truth = make_smear_frame(8, width=3840, height=2160, cells=12)
    assert len(find_cells(frame)) == len(truth)


def test_detection_step_follows_magnification() -> None:
    from leukedge.segment import SegmentParams, detection_step

    assert detection_step(SegmentParams()) == 3  # C-NMC magnification: merge kernel 15 px -> 5 px
    assert detection_step(SegmentParams(), source_scale=2.0) == 1  # cells half as big: full resolution
    assert detection_step(SegmentParams(min_merge_px=100)) == 1


def test_shrunk_outlines_match_a_full_resolution_pass() -> None:
    """Cells found and outlined on the shrunk frame, outlines scaled back up: the same cells as a
    full-resolution pass (``min_merge_px`` large forces step 1), touching ones included, with
    boxes and areas within a shrunk pixel's rounding."""
    from leukedge.segment import SegmentParams

    frame, _ = make_smear_frame(5, width=1280, height=720, cells=6, touching=2)
    fast = find_cells(frame)
    full = find_cells(frame, params=SegmentParams(min_merge_px=100))
    assert len(fast) == len(full) >= 5
    for a, b in zip(fast, full):
        assert a.bbox.iou(b.bbox) > 0.95
        assert abs(a.area - b.area) <= 0.03 * b.area
        assert all(type(v) is int for v in (a.bbox.x, a.bbox.y, a.bbox.w, a.bbox.h, a.area))  # JSON-ready


@pytest.mark.parametrize("interpolation", ["area", "linear", "cubic", "nearest"])
def test_crop_equals_resizing_the_drawn_canvas(interpolation: str) -> None:
    """The crop builder skips drawing the canvas; it must give what resizing the canvas gives."""
    import cv2

    from leukedge.preprocess import interpolation_code
    from leukedge.segment import crop_cell

    frame, _ = make_smear_frame(11, width=1000, height=700, cells=3)
    spec = CropSpec(canvas_px=450, source_scale=1.0)
    for r in find_cells(frame):
        b = r.bbox
        canvas = np.zeros((450, 450, 3), np.uint8)
        ox, oy = (450 - b.w) // 2, (450 - b.h) // 2
        canvas[oy : oy + b.h, ox : ox + b.w][r.mask] = frame[b.y : b.y + b.h, b.x : b.x + b.w][r.mask]
        want = cv2.resize(canvas, (128, 128), interpolation=interpolation_code(interpolation))
        got = crop_cell(frame, r, crop=spec, out_px=128, interpolation=interpolation)
        assert got.shape == want.shape and got.dtype == np.uint8
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float rounding only
