"""The crop contract: a cell reaches the model as the same input from a C-NMC image and from a frame.

"cell_box" crops (the size-normalised recipe) and "canvas" crops (earlier bundles)
are both made by ``crop_for``; ``cell_image_crop`` is the path of C-NMC files
(training, evaluate, score), ``segment`` the path of smear frames (segment, screen,
Screener).
"""

from __future__ import annotations

import numpy as np
import pytest

from leukedge.errors import ManifestError
from leukedge.images import read_image
from leukedge.manifest import CropSpec, Manifest, Preprocessing
from leukedge.preprocess import preprocess
from leukedge.segment import cell_image_crop, find_cells, segment
from leukedge.synthetic import BACKGROUND_RGB, make_cell_image, make_smear_frame


def _as_cnmc_image(frame: np.ndarray, region) -> np.ndarray:
    """The segmented cell cut out on a black 450 px canvas, as C-NMC publishes its cells."""
    b = region.bbox
    canvas = np.zeros((450, 450, 3), np.uint8)
    oy, ox = (450 - b.h) // 2, (450 - b.w) // 2
    patch = frame[b.y : b.y + b.h, b.x : b.x + b.w].copy()
    patch[~region.mask] = 0
    canvas[oy : oy + b.h, ox : ox + b.w] = patch
    return canvas


@pytest.mark.parametrize("mode", ["cell_box", "canvas"])
def test_same_cell_same_model_input_from_a_frame_and_from_a_cnmc_image(mode: str) -> None:
    spec = Preprocessing(crop=CropSpec(mode=mode))
    frame, _ = make_smear_frame(3, width=1000, height=700, cells=4)
    regions, cells = find_cells(frame), segment(frame, spec)
    assert len(cells) == len(regions) == 4
    for region, cell in zip(regions, cells):
        crop, found = cell_image_crop(_as_cnmc_image(frame, region), spec)
        assert (found.bbox.w, found.bbox.h) == (region.bbox.w, region.bbox.h)
        np.testing.assert_array_equal(crop, cell.crop)
        np.testing.assert_allclose(preprocess([crop], spec), preprocess([cell.crop], spec), atol=1e-6)


def test_cell_drawn_into_a_smear_frame_reaches_the_model_nearly_unchanged() -> None:
    """Through the segmenter, the outline may differ by a pixel; the input stays close."""
    spec = Preprocessing(crop=CropSpec(mode="cell_box"))
    for seed in range(4):
        img = make_cell_image(seed, "all" if seed % 2 else "hem")
        crop, region = cell_image_crop(img, spec)
        frame = np.empty((700, 900, 3), np.uint8)
        frame[:] = BACKGROUND_RGB
        b = region.bbox
        mask = np.zeros(img.shape[:2], bool)
        mask[b.y : b.y + b.h, b.x : b.x + b.w] = region.mask
        frame[120 : 120 + 450, 260 : 260 + 450][mask] = img[mask]
        (cell,) = segment(frame, spec)
        assert abs(cell.bbox.x - (b.x + 260)) <= 2 and abs(cell.bbox.w - b.w) <= 3
        diff = np.abs(preprocess([crop], spec) - preprocess([cell.crop], spec)) * 255
        assert diff.mean() < 6.0  # grey levels; the rest is the outline's edge pixels


def test_cell_box_fills_the_input_whatever_the_cell_size() -> None:
    spec = Preprocessing(crop=CropSpec(mode="cell_box", margin=0.1))
    for seed in range(6):
        crop, region = cell_image_crop(make_cell_image(seed, "all" if seed % 2 else "hem"), spec)
        fg = crop.max(axis=2) > 12
        ys, xs = np.nonzero(fg)
        side = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
        assert 128 / 1.2 - 3 <= side <= 128 / 1.2 + 3  # the box fills 1/(1 + 2·margin) of the input
        assert abs(xs.mean() - 64) < 8 and abs(ys.mean() - 64) < 8


@pytest.mark.shared_data
def test_real_cnmc_cells_fill_the_input(cnmc_dir) -> None:
    spec = Preprocessing(crop=CropSpec(mode="cell_box"))
    for path in sorted((cnmc_dir / "hem").glob("*.png"))[:3] + sorted((cnmc_dir / "all").glob("*.png"))[:3]:
        crop, region = cell_image_crop(read_image(path), spec)
        assert crop.shape == (128, 128, 3)
        assert region.area > 1000
        assert (crop.max(axis=2) > 12).mean() > 0.35, path.name  # a 450 px canvas would leave ~10%


def test_manifest_crop_mode_round_trips_and_old_manifests_mean_canvas() -> None:
    m = Manifest(preprocessing=Preprocessing(crop=CropSpec(mode="cell_box", margin=0.15)))
    back = Manifest.from_dict(m.to_dict())
    assert back.preprocessing.crop == CropSpec(mode="cell_box", margin=0.15)
    old = m.to_dict()
    del old["preprocessing"]["crop"]["mode"], old["preprocessing"]["crop"]["margin"]
    assert Manifest.from_dict(old).preprocessing.crop.mode == "canvas"


@pytest.mark.parametrize(("key", "value"), [("mode", "box"), ("margin", -0.1), ("margin", 2.0), ("margin", "0.1")])
def test_bad_crop_fields_are_refused_by_name(key: str, value: object) -> None:
    d = Manifest().to_dict()
    d["preprocessing"]["crop"][key] = value
    with pytest.raises(ManifestError, match=f"preprocessing.crop.{key}"):
        Manifest.from_dict(d)
