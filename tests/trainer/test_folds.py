"""Cross-validation folds: whole subjects, both classes in every fold, large donors apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from leukedge.errors import InvalidInputError
from leukedge.trainer.dataset import Cell, CellFile
from leukedge.trainer.folds import subject_folds


def _cells(counts: dict[str, int]) -> list[Cell]:
    out = []
    for subject, n in counts.items():
        label = "hem" if subject.startswith("H") else "all"
        for i in range(n):
            f = CellFile(Path(f"{subject}_{i}.png"), f"{label}/{subject}_{i}.png", label, subject)
            out.append(Cell(f, np.zeros(32, np.uint8), np.zeros((32, 32, 3), np.uint8), np.zeros(20), (450, 450)))
    return out


POOL = {
    "2": 80,
    "16": 50,
    "23": 90,
    "30": 200,
    "34": 350,
    "1": 2,
    "5": 2,
    "H14": 380,
    "H22": 360,
    "H1": 2,
    "H2": 2,
    "H5": 2,
}


def test_every_subject_once_both_classes_each_fold_large_donors_apart() -> None:
    folds = subject_folds(_cells(POOL), 3)
    flat = [s for f in folds for s in f]
    assert sorted(flat) == sorted(POOL) and len(flat) == len(set(flat))
    for f in folds:
        assert any(s.startswith("H") for s in f) and any(not s.startswith("H") for s in f)
    fold_of = {s: k for k, f in enumerate(folds) for s in f}
    assert fold_of["H14"] != fold_of["H22"]
    assert len({fold_of[s] for s in ("34", "30", "23")}) == 3  # the three largest patients apart


def test_folds_are_deterministic() -> None:
    assert subject_folds(_cells(POOL), 4) == subject_folds(_cells(POOL), 4)


@pytest.mark.parametrize("k", [1, 6])
def test_impossible_fold_counts_are_refused(k: int) -> None:
    with pytest.raises(InvalidInputError, match="expected 2 to 5"):
        subject_folds(_cells(POOL), k)
