"""Would an explicit size input pay?  Fuse the CV's out-of-fold CNN score with cell area, nested by fold.

    python benchmarks/cv_fusion.py artifacts/reference/cv/oof.csv

For each fold, a class-balanced logistic regression on [logit(p_cnn), log(area)] is
fitted on the *other* folds' out-of-fold rows and scores the fold; no fold's labels
choose its own weights.  Prints pooled ROC-AUC and AUC within area deciles of the CNN,
area alone and the fusion, with the same subject bootstrap as ``leukedge cv``.
The product does not ship this fusion (the model bundle has one image input); the
figures say whether giving the model size as an explicit input is worth building.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np


def read_oof(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """oof.csv's columns by position: subject, label, fold, cell area, then one per model."""
    with path.open(newline="") as f:
        header, *rows = list(csv.reader(f))
    cols = list(zip(*rows))
    d: dict[str, np.ndarray] = {"subject": np.array(cols[0], dtype=object)}
    for k, name in enumerate(("label", "fold", "cell_area"), start=1):
        d[name] = np.array(cols[k], np.float64)
    models = header[4:]
    for k, name in enumerate(models, start=4):
        d["model:" + name] = np.array(cols[k], np.float64)
    return d, models


def fused(p: np.ndarray, area: np.ndarray, y: np.ndarray, fold: np.ndarray) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    x = np.column_stack([np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1)), np.log(np.maximum(area, 1.0))])
    out = np.full(len(y), np.nan)
    for f in np.unique(fold):
        held = fold == f
        lr = LogisticRegression(class_weight="balanced").fit(x[~held], y[~held].astype(int))
        out[held] = lr.predict_proba(x[held])[:, 1]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("oof", type=Path)
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()

    from leukedge.trainer.cv_report import model_figures

    d, _models = read_oof(args.oof)
    y, fold, area, subj = d["label"].astype(int), d["fold"].astype(int), d["cell_area"], d["subject"]
    candidates = {
        "cnn": d["model:cnn"],
        "cnn_tta": d["model:cnn_tta"],
        "area only (logistic regression)": d["model:area"],
        "cnn+area (nested fusion)": fused(d["model:cnn"], area, y, fold),
    }
    print("| model | ROC-AUC | AUC within area deciles | sensitivity | specificity |")
    print("|---|---|---|---|---|")
    for name, p in candidates.items():
        m = model_figures(y, subj, area, fold, p, n_boot=args.bootstrap, seed=0)
        r, pm = m["pooled"]["ranking"], m["pooled"]["metrics"]

        def fmt(v: dict) -> str:
            return f"{v['value']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}]"

        print(
            f"| {name} | {fmt(r['roc_auc'])} | {fmt(r['auc_within_area_deciles'])} | "
            f"{fmt(pm['sensitivity'])} | {fmt(pm['specificity'])} |"
        )


if __name__ == "__main__":
    main()
