"""Finding and reading labelled cell folders, and every bad input the issue lists."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leukedge.errors import InvalidInputError
from leukedge.synthetic import make_cell_image, write_cell_dataset
from leukedge.trainer.dataset import find_cell_files, load_cell, scan, square_crop
from leukedge.trainer.features import FEATURE_NAMES, cell_features, cell_mask


def _save(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def test_cnmc_distributed_layout_with_folds(tmp_path: Path) -> None:
    root = tmp_path / "C-NMC_Leukemia" / "training_data"
    for k, (subject, label) in enumerate([("3", "all"), ("H2", "hem"), ("h3", "hem")]):
        _save(root / f"fold_{k}" / label / f"UID_{subject}_1_1_{label}.bmp", make_cell_image(k, label, size=120))
    files, skipped, ignored = find_cell_files(tmp_path)
    assert not skipped and ignored == 0
    assert [(f.subject, f.label, f.fold) for f in files] == [
        ("3", "all", "fold_0"),
        ("H2", "hem", "fold_1"),
        ("H3", "hem", "fold_2"),  # lower-case donor folded to upper case
    ]


def test_flat_layout_of_mixed_formats(tmp_path: Path) -> None:
    _save(tmp_path / "all" / "UID_5_1_1_all.png", make_cell_image(1, "all", size=100))
    _save(tmp_path / "all" / "UID_5_1_2_all.jpg", make_cell_image(2, "all", size=100))
    _save(tmp_path / "hem" / "UID_H1_1_1_hem.bmp", make_cell_image(3, "hem", size=100))
    _save(tmp_path / "notes" / "stray.png", make_cell_image(4, "hem", size=100))
    data = scan(tmp_path)
    assert data.counts() == {"hem": 1, "all": 2}
    assert data.ignored == 1  # an image outside all/ and hem/ is counted, not used
    assert sorted(set(data.subjects().tolist())) == ["5", "H1"]


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no labelled cell images") as e:
        scan(tmp_path)
    assert "all/" in (e.value.hint or "")
    with pytest.raises(InvalidInputError, match="no such data folder"):
        scan(tmp_path / "missing")


def test_one_class_missing(tmp_path: Path) -> None:
    write_cell_dataset(tmp_path, per_class=3, subjects_per_class=1, seed=1, size=96)
    shutil.rmtree(tmp_path / "hem")
    with pytest.raises(InvalidInputError, match="no 'hem' cell") as e:
        scan(tmp_path)
    assert "hem/" in (e.value.hint or "")
    assert scan(tmp_path, require_both=False).counts() == {"hem": 0, "all": 3}  # evaluation may take one class


def test_unreadable_images_are_skipped_counted_and_listed(tmp_path: Path) -> None:
    write_cell_dataset(tmp_path, per_class=3, subjects_per_class=1, seed=1, size=96)
    (tmp_path / "all" / "UID_9_1_1_all.png").write_bytes(b"")  # empty
    (tmp_path / "hem" / "UID_H9_1_1_hem.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # corrupt
    good = (tmp_path / "all" / "UID_1_1_1_all.png").read_bytes()
    (tmp_path / "all" / "UID_9_2_1_all.png").write_bytes(good[: len(good) // 2])  # truncated
    _save(tmp_path / "hem" / "UID_H9_2_1_hem.png", np.zeros((50, 50), np.uint8))  # grayscale
    data = scan(tmp_path)
    assert len(data.cells) == 6
    reasons = dict(data.skipped)
    assert set(reasons) == {
        "all/UID_9_1_1_all.png",
        "hem/UID_H9_1_1_hem.png",
        "all/UID_9_2_1_all.png",
        "hem/UID_H9_2_1_hem.png",
    }
    assert "empty" in reasons["all/UID_9_1_1_all.png"]
    assert "grayscale" in reasons["hem/UID_H9_2_1_hem.png"]


def test_every_image_unreadable_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "all").mkdir()
    (tmp_path / "all" / "UID_1_1_1_all.png").write_bytes(b"nope")
    with pytest.raises(InvalidInputError, match="could be read"):
        scan(tmp_path)


def test_name_disagreeing_with_folder_is_skipped(tmp_path: Path) -> None:
    write_cell_dataset(tmp_path, per_class=2, subjects_per_class=1, seed=1, size=96)
    _save(tmp_path / "hem" / "UID_7_1_1_all.png", make_cell_image(5, "all", size=96))
    data = scan(tmp_path)
    assert ("hem/UID_7_1_1_all.png", "the name says 'all' but the file is in a 'hem' folder") in data.skipped


def test_mixed_sizes_and_shapes_are_read_and_squared_like_the_scoring_path(tmp_path: Path) -> None:
    from leukedge.manifest import CropSpec
    from leukedge.segment import crop_for, find_cells

    img = make_cell_image(3, "all", size=200)[20:180, :]  # 160 × 200, not square
    _save(tmp_path / "all" / "UID_1_1_1_all.png", img)
    _save(tmp_path / "all" / "UID_1_1_2_all.png", make_cell_image(4, "all", size=450))
    _save(tmp_path / "hem" / "UID_H1_1_1_hem.png", make_cell_image(5, "hem", size=128))
    data = scan(tmp_path)
    assert data.sizes() == {"200x160": 1, "450x450": 1, "128x128": 1}
    sq = load_cell(tmp_path / "all" / "UID_1_1_1_all.png")
    assert sq.shape == (200, 200, 3)
    region = find_cells(img)[0]
    np.testing.assert_array_equal(sq, crop_for(img, region, crop=CropSpec(), out_px=200, single=True))
    assert square_crop(sq) is sq


def test_files_without_cnmc_names_are_their_own_subjects(tmp_path: Path) -> None:
    _save(tmp_path / "all" / "cell_a.png", make_cell_image(1, "all", size=96))
    _save(tmp_path / "hem" / "cell_b.png", make_cell_image(2, "hem", size=96))
    data = scan(tmp_path)
    assert data.unnamed == 2
    assert sorted(data.subjects().tolist()) == ["?cell_a", "?cell_b"]


def test_features_measure_the_cell_in_canvas_pixels() -> None:
    img = np.zeros((450, 450, 3), np.uint8)
    yy, xx = np.mgrid[:450, :450]
    disc = (yy - 225) ** 2 + (xx - 225) ** 2 <= 100**2
    img[disc] = (120, 90, 180)
    f = dict(zip(FEATURE_NAMES, cell_features(img)))
    assert f["area"] == pytest.approx(np.pi * 100**2, rel=0.02)
    assert f["circularity"] == pytest.approx(1.0, abs=0.1)
    assert f["mean_b"] == pytest.approx(180)
    half = cell_features(img[::2, ::2])  # the same cell in a 225-px file: same size on the canvas
    assert half[0] == pytest.approx(f["area"], rel=0.03)
    assert np.isnan(cell_features(np.zeros((64, 64, 3), np.uint8))).all()
    assert cell_mask(img).sum() == disc.sum()


def test_several_folders_and_a_list_file_are_read_together(tmp_path: Path) -> None:
    from leukedge.trainer.dataset import data_roots

    a, b = tmp_path / "a", tmp_path / "b"
    _save(a / "all" / "UID_5_1_1_all.png", make_cell_image(1, "all", size=100))
    _save(a / "hem" / "UID_H1_1_1_hem.png", make_cell_image(2, "hem", size=100))
    _save(b / "all" / "UID_5_1_1_all.png", make_cell_image(3, "all", size=100))  # same name, other folder
    _save(b / "hem" / "UID_H9_1_1_hem.png", make_cell_image(4, "hem", size=100))
    both = scan([a, b])
    assert len(both.cells) == 4 and both.roots == (a, b)
    rels = [c.file.rel for c in both.cells]
    assert len(set(rels)) == 4 and rels[0].startswith("0:") and rels[-1].startswith("1:")
    listing = tmp_path / "folders.txt"
    listing.write_text("# the training pool\na\n\nb\na\n")
    assert data_roots(listing) == (tmp_path / "a", tmp_path / "b")  # relative to the list, each once
    assert [c.file.rel for c in scan(listing).cells] == rels
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(InvalidInputError, match="names no data folder"):
        scan(empty)
    with pytest.raises(InvalidInputError, match="no such data folder"):
        scan([a, tmp_path / "missing"])


def test_load_cell_follows_the_manifest_crop(tmp_path: Path) -> None:
    from leukedge.manifest import CropSpec, Preprocessing
    from leukedge.segment import cell_image_crop

    img = make_cell_image(5, "all", size=450)
    path = _save(tmp_path / "all" / "UID_5_1_1_all.png", img)
    np.testing.assert_array_equal(load_cell(path), img)  # no spec, or "canvas": the padded image
    spec = Preprocessing(crop=CropSpec(mode="cell_box"))
    crop = load_cell(path, spec)
    assert crop.shape == (128, 128, 3)
    np.testing.assert_array_equal(crop, cell_image_crop(img, spec)[0])  # what score feeds the model
