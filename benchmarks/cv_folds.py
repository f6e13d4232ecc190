"""The CV's CNN at one threshold, fold by fold: the operating points accuracy.md quotes per fold.

    python benchmarks/cv_folds.py artifacts/reference/cv/oof.csv [--threshold T]

T defaults to the packaged reference bundle's ``decision.threshold``.  Prints each fold's
sensitivity and specificity at T, the pooled figures at T and at 0.5, and how the small
subjects (≤ 3 cells each) fare, per class.  Out-of-fold only: every score is from a model
that never saw the cell's subject.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from cv_fusion import read_oof  # same folder

from leukedge.trainer.metrics import point_metrics


def line(name: str, y: np.ndarray, p: np.ndarray, t: float) -> str:
    m = point_metrics(y, p, threshold=t)
    return f"{name:<22} cells {len(y):>5}  sens {m['sensitivity']:.3f}  spec {m['specificity']:.3f}  AUC {m['roc_auc']:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("oof", type=Path, help="oof.csv written by leukedge cv")
    ap.add_argument("--threshold", type=float, help="default: the reference bundle's")
    ap.add_argument("--model", default="cnn", help="column of oof.csv (cnn, cnn_tta, area, svm, knn)")
    args = ap.parse_args()
    if args.threshold is None:
        from leukedge.bundle import Bundle

        args.threshold = Bundle.load("reference").manifest.decision.threshold
    d, _ = read_oof(args.oof)
    y, p, fold, subject = d["label"].astype(bool), d["model:" + args.model], d["fold"], d["subject"]
    t = args.threshold
    print(f"{args.model} at threshold {t}")
    for f in sorted(set(fold)):
        k = fold == f
        print(line(f"fold {int(f)}", y[k], p[k], t))
    print(line("pooled", y, p, t))
    print(line("pooled at 0.5", y, p, 0.5))
    names, counts = np.unique(subject, return_counts=True)
    small = np.isin(subject, names[counts <= 3])
    for cls, label in ((True, "ALL"), (False, "normal")):
        k = small & (y == cls)
        right = int(((p[k] >= t) == cls).sum())
        print(f"small {label} subjects ({len(set(subject[k]))}): {right} of {int(k.sum())} cells right")


if __name__ == "__main__":
    main()
