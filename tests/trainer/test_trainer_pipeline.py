"""The tf.data pipeline feeds the model exactly what the scoring path would, augmented only for training."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from leukedge.preprocess import preprocess
from leukedge.synthetic import make_cell_image
from leukedge.trainer.dataset import load_cell
from leukedge.trainer.model import make_preprocessing
from leukedge.trainer.pipeline import augment_cell, cell_input, epoch_plan, make_dataset


def test_augmentation_is_seeded_label_preserving_and_keeps_black_black() -> None:
    img = make_cell_image(1, "all", size=160)
    a, b = augment_cell(img, seed=3), augment_cell(img, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.shape == img.shape and a.dtype == np.uint8
    assert (a.max(axis=2) == 0).sum() == (img.max(axis=2) == 0).sum()  # background untouched
    variants = {augment_cell(img, seed=s).tobytes() for s in range(40)}
    assert len(variants) > 20
    gains = [augment_cell(img, seed=s).astype(float).sum() / img.astype(float).sum() for s in range(40)]
    assert min(gains) > 0.85 and max(gains) < 1.15  # small brightness jitter only


def test_epoch_plan_balances_classes_and_is_reproducible() -> None:
    labels = np.array([1] * 30 + [0] * 7)
    order, seeds = epoch_plan(labels, epoch=2, seed=9)
    assert np.bincount(labels[order]).tolist() == [30, 30]
    assert set(order[labels[order] == 0].tolist()) == set(range(30, 37))  # every minority cell, repeated
    again, seeds2 = epoch_plan(labels, epoch=2, seed=9)
    np.testing.assert_array_equal(order, again)
    np.testing.assert_array_equal(seeds, seeds2)
    other, _ = epoch_plan(labels, epoch=3, seed=9)
    assert not np.array_equal(order, other)
    unbalanced, _ = epoch_plan(labels, epoch=0, seed=9, balance=False)
    assert sorted(unbalanced.tolist()) == list(range(37))


def test_dataset_matches_the_core_preprocessing_exactly(tmp_path: Path) -> None:
    from PIL import Image

    spec = make_preprocessing(log_alpha=0.4)
    paths = []
    for k, label in enumerate(["all", "hem", "all"]):
        p = tmp_path / f"c{k}.png"
        Image.fromarray(make_cell_image(k, label, size=200 + 50 * k)).save(p)
        paths.append(str(p))
    ds = make_dataset(paths, np.array([1, 0, 1]), spec, batch_size=2)
    batches = list(ds.as_numpy_iterator())
    assert [b[0].shape for b in batches] == [(2, 128, 128, 3), (1, 128, 128, 3)]
    x = np.concatenate([b[0] for b in batches])
    expected = preprocess([load_cell(p) for p in paths], spec)
    np.testing.assert_array_equal(x, expected)  # no second implementation: bit-identical
    assert np.concatenate([b[1] for b in batches]).tolist() == [1, 0, 1]
    aug = np.concatenate(
        [b[0] for b in make_dataset(paths, np.ones(3), spec, batch_size=3, augment_seeds=np.arange(3))]
    )
    np.testing.assert_array_equal(aug[1], cell_input(paths[1], spec, augment_seed=1))
    assert not np.array_equal(aug, x)


def test_subject_balanced_plan_halves_classes_and_tempers_large_subjects() -> None:
    from leukedge.trainer.pipeline import subject_balanced_plan

    labels = np.array([0] * 400 + [0] * 4 + [1] * 50)
    subjects = np.array(["H22"] * 400 + ["H1"] * 4 + ["7"] * 50, dtype=object)
    order, seeds = subject_balanced_plan(labels, subjects, epoch=0, seed=1, size=4000)
    assert len(order) == len(seeds) == 4000
    assert (labels[order] == 1).sum() == 2000
    drawn = subjects[order]
    # weights √400 : √4 = 10 : 1 among the normal donors (not 100 : 1)
    ratio = (drawn == "H22").sum() / (drawn == "H1").sum()
    assert 7 < ratio < 14
    again, _ = subject_balanced_plan(labels, subjects, epoch=0, seed=1, size=4000)
    np.testing.assert_array_equal(order, again)


def test_stain_jitter_changes_colour_keeps_black_shape_and_dtype() -> None:
    from leukedge.synthetic import make_cell_image

    img = make_cell_image(2, "all", size=128)
    out = augment_cell(img, seed=3, stain=0.5, colour=0.0, brightness=0.0)
    plain = augment_cell(img, seed=3, stain=0.0, colour=0.0, brightness=0.0)  # the same rotation and flip
    assert out.shape == img.shape and out.dtype == np.uint8
    black = plain.max(axis=2) == 0
    assert black.any() and out[black].max() == 0  # the C-NMC background stays black
    assert np.abs(out[~black].astype(int) - plain[~black].astype(int)).mean() > 2  # the stain changed
