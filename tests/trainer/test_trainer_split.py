"""Splits are by subject, seeded, and leak neither subjects nor copied cells."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from leukedge.errors import InvalidInputError
from leukedge.synthetic import write_cell_dataset
from leukedge.trainer.dataset import scan
from leukedge.trainer.dedup import deduplicate
from leukedge.trainer.split import ROLES, Split, check_no_leakage, split_subjects


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory):
    root = write_cell_dataset(tmp_path_factory.mktemp("split"), per_class=24, subjects_per_class=6, seed=3, size=96)
    return scan(root).cells


def _roles(split: Split, cells) -> dict[str, set[str]]:
    return {role: {c.file.subject for c in split.cells(cells, role)} for role in ROLES}


def test_seeded_split_is_by_subject_and_reproducible(cells) -> None:
    a = split_subjects(cells, val_fraction=0.2, test_fraction=0.2, seed=5)
    b = split_subjects(cells, val_fraction=0.2, test_fraction=0.2, seed=5)
    c = split_subjects(cells, val_fraction=0.2, test_fraction=0.2, seed=6)
    assert a == b
    assert (a.val, a.test) != (c.val, c.test)
    roles = _roles(a, cells)
    assert (
        not (roles["train"] & roles["val"])
        and not (roles["train"] & roles["test"])
        and not (roles["val"] & roles["test"])
    )
    assert roles["train"] | roles["val"] | roles["test"] == {c.file.subject for c in cells}
    for role in ("train", "val", "test"):  # each role holds both classes
        assert {c.file.label for c in a.cells(cells, role)} == {"all", "hem"}
    check_no_leakage(a, cells)


def test_named_subjects_and_folds(cells) -> None:
    s = split_subjects(cells, val_subjects=["1", "h2"], test_subjects=["3", "H4"])
    assert (s.val, s.test) == (("1", "H2"), ("3", "H4"))
    with pytest.raises(InvalidInputError, match="not subjects of this data"):
        split_subjects(cells, val_subjects=["99"])
    with pytest.raises(InvalidInputError, match="both validation and test"):
        split_subjects(cells, val_subjects=["1", "H1"], test_subjects=["1"])
    with pytest.raises(InvalidInputError, match="no 'hem' subject"):
        split_subjects(cells, val_subjects=["1", "2"], test_fraction=0)
    with pytest.raises(InvalidInputError, match="no cell is in that fold"):
        split_subjects(cells, val_fold="fold_0")


def test_fold_split(tmp_path: Path) -> None:
    flat = write_cell_dataset(tmp_path / "flat", per_class=12, subjects_per_class=4, seed=2, size=96)
    root = tmp_path / "training_data"
    for f in sorted(flat.glob("*/*.png")):
        subject = f.stem.split("_")[1]
        fold = "fold_0" if subject in ("1", "2", "H1", "H2") else "fold_1" if subject in ("3", "H3") else "fold_2"
        (root / fold / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / fold / f.parent.name / f.name)
    data = scan(tmp_path / "training_data")
    s = split_subjects(data.cells, val_fold="fold_1", test_fold="fold_2")
    assert (s.train, s.val, s.test) == (("1", "2", "H1", "H2"), ("3", "H3"), ("4", "H4"))


def test_a_dominant_subject_stays_in_training(tmp_path: Path) -> None:
    root = write_cell_dataset(tmp_path / "data", per_class=8, subjects_per_class=4, seed=2, size=96)
    big = write_cell_dataset(tmp_path / "big", per_class=30, subjects_per_class=1, seed=9, size=96)
    for f in (big / "hem").glob("*.png"):
        shutil.copy(f, root / "hem" / f.name.replace("UID_H1_", "UID_H22_"))
    data, _ = deduplicate(scan(root))
    for seed in range(8):  # H22 holds most normal cells: drawing it out would leave nothing to learn from
        assert "H22" in split_subjects(data.cells, val_fraction=0.3, test_fraction=0.3, seed=seed).train


def test_copies_across_subjects_are_removed_before_the_split(tmp_path: Path) -> None:
    root = write_cell_dataset(tmp_path, per_class=12, subjects_per_class=4, seed=4, size=96)
    for f in sorted((root / "hem").glob("UID_H1_*.png")):  # H6 is a copy of H1, as H6 copies H2 in C-NMC
        shutil.copy(f, root / "hem" / f.name.replace("UID_H1_", "UID_H6_"))
    data = scan(root)
    with pytest.raises(InvalidInputError, match="near-duplicate cells across"):
        check_no_leakage(Split(train=("1", "2", "H1", "H2"), val=("3", "4", "H3", "H4", "H6")), data.cells)
    kept, removed = deduplicate(data)
    assert {r.reason for r in removed} == {"duplicate across subjects"}
    assert {r.file.split("/")[1].split("_")[1] for r in removed} == {"H6"}
    assert "H6" not in {c.file.subject for c in kept.cells}
    for seed in range(5):
        check_no_leakage(split_subjects(kept.cells, seed=seed), kept.cells)


def test_conflicting_labels_remove_the_whole_group(tmp_path: Path) -> None:
    root = write_cell_dataset(tmp_path, per_class=4, subjects_per_class=2, seed=4, size=96)
    shutil.copy(root / "all" / "UID_1_1_1_all.png", root / "hem" / "UID_H7_1_1_hem.png")
    _, removed = deduplicate(scan(root))
    assert {r.file for r in removed} == {"all/UID_1_1_1_all.png", "hem/UID_H7_1_1_hem.png"}
    assert {r.reason for r in removed} == {"label conflict"}


def test_subject_with_two_roles_is_leakage(cells) -> None:
    with pytest.raises(InvalidInputError, match="both the train and the val"):
        check_no_leakage(Split(train=("1", "H1"), val=("1", "H2")), cells)


@pytest.mark.shared_data
def test_real_cnmc_duplicates_and_a_leak_free_split(cnmc_dir: Path) -> None:
    """SOURCES.md: both cells of H6 are copies of H2's; the same cell also appears twice within donors."""
    data = scan(cnmc_dir)
    kept, removed = deduplicate(data)
    across = {(r.file, r.duplicate_of) for r in removed if r.reason == "duplicate across subjects"}
    assert across == {
        ("hem/UID_H6_1_1_hem.png", "hem/UID_H2_1_1_hem.png"),
        ("hem/UID_H6_1_2_hem.png", "hem/UID_H2_1_2_hem.png"),
    }
    assert 10 <= len(removed) <= 40  # re-imaged cells within H22, 23 and 2
    assert all(r.bits <= 32 for r in removed)
    split = split_subjects(kept.cells, seed=0)
    assert "H22" in split.train and "H6" not in split.train + split.val + split.test
    check_no_leakage(split, kept.cells)
    hashes = {role: np.stack([c.phash for c in split.cells(kept.cells, role)]) for role in ROLES}
    assert all(len(h) for h in hashes.values())
