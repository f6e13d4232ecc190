"""benchmarks/cv_folds.py: the per-fold operating points accuracy.md quotes, on a hand-made oof.csv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_fold_operating_points_and_small_subjects(tmp_path: Path) -> None:
    rows = [  # subject, label, fold, cell_area, cnn
        ("7", 1, 0, 100, 0.9), ("7", 1, 0, 100, 0.8), ("7", 1, 0, 100, 0.2), ("7", 1, 0, 100, 0.7),
        ("H9", 0, 0, 50, 0.1), ("H9", 0, 0, 50, 0.6), ("H9", 0, 0, 50, 0.3), ("H9", 0, 0, 50, 0.2),
        ("1", 1, 1, 90, 0.95), ("1", 1, 1, 90, 0.4),
        ("H1", 0, 1, 40, 0.45), ("H1", 0, 1, 40, 0.05),
    ]  # fmt: skip
    oof = tmp_path / "oof.csv"
    oof.write_text("subject,label,fold,cell_area,cnn\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    out = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "cv_folds.py"), str(oof), "--threshold", "0.5"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "fold 0                 cells     8  sens 0.750  spec 0.750" in out
    assert "fold 1                 cells     4  sens 0.500  spec 1.000" in out
    assert "small ALL subjects (1): 1 of 2 cells right" in out
    assert "small normal subjects (1): 2 of 2 cells right" in out
