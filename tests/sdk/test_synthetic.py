from __future__ import annotations

import numpy as np

from leukedge.cnmc import parse_cnmc_name
from leukedge.synthetic import make_cell_image, make_smear_frame, write_cell_dataset


def test_seeded_and_deterministic() -> None:
    a1, t1 = make_smear_frame(42, width=640, height=480, cells=2)
    a2, t2 = make_smear_frame(42, width=640, height=480, cells=2)
    b, _ = make_smear_frame(43, width=640, height=480, cells=2)
    np.testing.assert_array_equal(a1, a2)
    assert t1 == t2 and not np.array_equal(a1, b)


def test_classes_differ_like_blasts_and_lymphocytes() -> None:
    def stats(label: str):
        sizes, ncr = [], []
        for seed in range(12):
            img = make_cell_image(seed, label).astype(int)
            cell = img.max(axis=2) > 12
            blue = img[..., 2] - (img[..., 0] + img[..., 1]) / 2
            nucleus = cell & (blue > 75)
            sizes.append(cell.sum())
            ncr.append(nucleus.sum() / cell.sum())
        return np.mean(sizes), np.mean(ncr)

    size_all, ncr_all = stats("all")
    size_hem, ncr_hem = stats("hem")
    assert size_all > 1.3 * size_hem  # blasts are larger
    assert ncr_all > ncr_hem + 0.1  # with a higher nucleus-to-cytoplasm ratio


def test_dataset_is_cnmc_named(tmp_path) -> None:
    root = write_cell_dataset(tmp_path, per_class=6, subjects_per_class=3, size=64)
    all_files = sorted((root / "all").glob("*.png"))
    hem_files = sorted((root / "hem").glob("*.png"))
    assert len(all_files) == len(hem_files) == 6
    subjects = {parse_cnmc_name(p.name).subject for p in hem_files}
    assert subjects == {"H1", "H2", "H3"}
    assert all(parse_cnmc_name(p.name).label == "all" for p in all_files)


def test_parse_cnmc_names() -> None:
    n = parse_cnmc_name("training_data/fold_0/hem/UID_h3_12_4_hem.bmp")
    assert n is not None and n.subject == "H3" and n.is_normal_donor and (n.image, n.cell) == (12, 4)
    a = parse_cnmc_name("UID_23_1_2_all.png")
    assert a is not None and a.subject == "23" and a.label == "all" and not a.is_normal_donor
    assert parse_cnmc_name("BloodImage_00012.jpg") is None
    assert parse_cnmc_name("UID_23_1_2_maybe.png") is None
