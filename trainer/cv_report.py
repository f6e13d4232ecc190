"""The figures and files of ``leukedge cv``: pooled and per-fold metrics, with subject-bootstrap intervals.

For each model (the CNN, the CNN with 8-view test-time augmentation, the
baselines) on the pooled out-of-fold predictions: the threshold chosen by
``cv.THRESHOLD_POLICY``, accuracy, sensitivity, specificity, ROC-AUC and AUC
within equal-area deciles with 95% intervals from a bootstrap over subjects
(stratified by class), per-subject accuracy, and per fold the same point
figures and the fold's own best threshold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from leukedge.trainer import metrics

AREA_BINS = 10  # deciles: the bins the reference model is judged on


def balanced_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold that maximises balanced accuracy (midpoint between neighbouring scores)."""
    fpr, tpr, thr = metrics.roc_curve(y, p)
    k = int(np.argmax(tpr - fpr))
    below = p[p < thr[k]]
    t = float(thr[k]) if not len(below) else float((thr[k] + below.max()) / 2)
    return min(1.0, max(0.0, t))


def _ranking(y: np.ndarray, p: np.ndarray, area: np.ndarray) -> dict[str, float]:
    both = len(set(np.asarray(y).tolist())) == 2
    return {
        "roc_auc": metrics.roc_auc(y, p) if both else float("nan"),
        "auc_within_area_deciles": metrics.within_bin_auc(y, p, area, bins=AREA_BINS)["auc"] if both else float("nan"),
    }


def model_figures(
    y: np.ndarray, subj: np.ndarray, area: np.ndarray, fold_of: np.ndarray, p: np.ndarray, *, n_boot: int, seed: int
) -> dict[str, Any]:
    thr = balanced_threshold(y, p)
    pooled = metrics.summarize(y, p, subj, area, threshold=thr, n_boot=n_boot, seed=seed)
    rank = _ranking(y, p, area)
    idx = np.arange(len(y))
    ci = metrics.bootstrap_by_subject(
        y, idx, subj, lambda a, i: _ranking(a, p[i.astype(int)], area[i.astype(int)]), n=n_boot, seed=seed
    )
    pooled["ranking"] = {k: {"value": v, "ci95": list(ci[k])} for k, v in rank.items()}
    pooled["at_0.5"] = metrics.point_metrics(y, p, threshold=0.5)
    per_fold = []
    for f in np.unique(fold_of):
        m = fold_of == f
        point = metrics.point_metrics(y[m], p[m], threshold=thr)
        own = balanced_threshold(y[m], p[m]) if len(set(y[m].tolist())) == 2 else float("nan")
        per_fold.append(
            {"fold": int(f), "cells": int(m.sum()), **_ranking(y[m], p[m], area[m]), **point, "own_threshold": own}
        )
    owns = [r["own_threshold"] for r in per_fold if not np.isnan(r["own_threshold"])]
    return {
        "threshold": thr,
        "threshold_across_folds": {"min": min(owns), "max": max(owns)} if owns else None,
        "pooled": pooled,
        "per_fold": per_fold,
    }


def summarize_cv(
    y: np.ndarray,
    subj: np.ndarray,
    area: np.ndarray,
    fold_of: np.ndarray,
    scores: dict[str, np.ndarray],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``cv.json`` document's figures, one block per model."""
    return {
        "schema": "leukedge.cv/1",
        "models": {
            name: model_figures(y, subj, area, fold_of, p, n_boot=n_boot, seed=seed) for name, p in scores.items()
        },
    }


def _fmt(v: dict[str, Any]) -> str:
    lo, hi = v["ci95"]
    return f"{v['value']:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown_table(doc: dict[str, Any]) -> str:
    """The pooled table, then per-fold AUCs, then per-subject accuracy of the CNN."""
    lines = [
        "| model | ROC-AUC | AUC within area deciles | sensitivity | specificity | threshold (fold range) |",
        "|---|---|---|---|---|---|",
    ]
    for name, m in doc["models"].items():
        r, pm, spread = m["pooled"]["ranking"], m["pooled"]["metrics"], m["threshold_across_folds"]
        rng = f" ({spread['min']:.2f}–{spread['max']:.2f})" if spread else ""
        lines.append(
            f"| {name} | {_fmt(r['roc_auc'])} | {_fmt(r['auc_within_area_deciles'])} | "
            f"{_fmt(pm['sensitivity'])} | {_fmt(pm['specificity'])} | {m['threshold']:.3f}{rng} |"
        )
    lines += [
        "",
        "| model | " + " | ".join(f"fold {r['fold']} AUC / in-decile" for r in doc["models"]["cnn"]["per_fold"]) + " |",
    ]
    lines.append("|---" * (1 + len(doc["models"]["cnn"]["per_fold"])) + "|")
    for name, m in doc["models"].items():
        cells = [f"{r['roc_auc']:.3f} / {r['auc_within_area_deciles']:.3f}" for r in m["per_fold"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| subject | class | cells | CNN accuracy | area-only accuracy |", "|---|---|---|---|---|"]
    area_rows = {r["subject"]: r for r in doc["models"].get("area", {}).get("pooled", {}).get("per_subject", [])}
    for r in doc["models"]["cnn"]["pooled"]["per_subject"]:
        a = area_rows.get(r["subject"])
        lines.append(
            f"| {r['subject']} | {r['label']} | {r['cells']} | {r['accuracy']:.2f} | {a['accuracy']:.2f} |"
            if a
            else f"| {r['subject']} | {r['label']} | {r['cells']} | {r['accuracy']:.2f} | — |"
        )
    return "\n".join(lines) + "\n"


def write_cv(out: Path, doc: dict[str, Any], arrays: dict[str, Any]) -> None:
    """cv.json, cv.md, oof.csv and the plots (roc.png, score_vs_area.png) in ``out``."""
    from leukedge.trainer.provenance import jsonable

    (out / "cv.json").write_text(json.dumps(jsonable(doc), indent=1) + "\n", encoding="utf-8")
    (out / "cv.md").write_text(markdown_table(doc), encoding="utf-8")
    names = list(arrays["scores"])
    rows = ["subject,label,fold,cell_area," + ",".join(names)]
    for i in range(len(arrays["y"])):
        vals = ",".join(f"{arrays['scores'][n][i]:.6f}" for n in names)
        rows.append(
            f"{arrays['subject'][i]},{int(arrays['y'][i])},{int(arrays['fold'][i])},{arrays['area'][i]:.1f},{vals}"
        )
    (out / "oof.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    try:
        from leukedge.trainer import plots
    except ImportError:  # matplotlib is part of the train extra; without it, no plots
        return
    y = arrays["y"]
    curves = {}
    for n in names:
        fpr, tpr, _ = metrics.roc_curve(y, arrays["scores"][n])
        curves[n] = (fpr, tpr, metrics.roc_auc(y, arrays["scores"][n]))
    (out / "roc.png").write_bytes(plots.roc(curves))
    (out / "score_vs_area.png").write_bytes(plots.score_vs_area(arrays["scores"]["cnn"], arrays["area"], y))
