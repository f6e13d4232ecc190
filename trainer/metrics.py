"""Classification metrics as pure functions of arrays, reusable anywhere.

Inputs are always the same four arrays: ``y`` (1 = ALL, 0 = normal),
``p`` (the ALL probability), ``subject`` (one id per cell) and ``area`` (cell
area).  Nothing here reads files or models.

Confidence intervals come from a bootstrap over subjects, stratified by class:
C-NMC labels belong to subjects, so cells of one subject are not independent
and a bootstrap over cells would give intervals far too narrow.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

POINT_METRICS = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "weighted_f1", "roc_auc")


def confusion(y: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    """True/false positives/negatives, ALL being positive."""
    y, pred = np.asarray(y, bool), np.asarray(pred, bool)
    return {
        "tp": int(np.sum(y & pred)),
        "fn": int(np.sum(y & ~pred)),
        "tn": int(np.sum(~y & ~pred)),
        "fp": int(np.sum(~y & pred)),
    }


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def weighted_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """F1 of each class weighted by its support (the C-NMC challenge metric)."""
    c = confusion(y, pred)
    n = sum(c.values())
    f1_all = _ratio(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"])
    f1_hem = _ratio(2 * c["tn"], 2 * c["tn"] + c["fn"] + c["fp"])
    parts = [(f1_all, c["tp"] + c["fn"]), (f1_hem, c["tn"] + c["fp"])]
    return float(sum(f * w for f, w in parts if w) / n) if n else float("nan")


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney, ties count half); NaN with one class."""
    y = np.asarray(y, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _ranks(np.asarray(p, np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    average = np.cumsum(counts) - (counts - 1) / 2.0
    return average[inverse.ravel()]


def roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate, thresholds), from (0, 0) to (1, 1)."""
    y = np.asarray(y, bool)
    order = np.argsort(-np.asarray(p, np.float64), kind="mergesort")
    ps, ys = np.asarray(p, np.float64)[order], y[order]
    cut = np.r_[np.nonzero(np.diff(ps))[0], len(ps) - 1]
    tps, fps = np.cumsum(ys)[cut], np.cumsum(~ys)[cut]
    tpr = np.r_[0.0, tps / max(1, y.sum())]
    fpr = np.r_[0.0, fps / max(1, (~y).sum())]
    return fpr, tpr, np.r_[np.inf, ps[cut]]


def point_metrics(y: np.ndarray, p: np.ndarray, *, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, sensitivity (ALL recall), specificity, balanced accuracy, weighted F1, ROC-AUC."""
    y = np.asarray(y, bool)
    pred = np.asarray(p) >= threshold
    c = confusion(y, pred)
    sens = _ratio(c["tp"], c["tp"] + c["fn"])
    spec = _ratio(c["tn"], c["tn"] + c["fp"])
    return {
        "accuracy": _ratio(c["tp"] + c["tn"], len(y)),
        "sensitivity": sens,
        "specificity": spec,
        "balanced_accuracy": float(np.nanmean([sens, spec])) if not (np.isnan(sens) and np.isnan(spec)) else np.nan,
        "weighted_f1": weighted_f1(y, pred),
        "roc_auc": roc_auc(y, p),
    }


def log_loss_balanced(y: np.ndarray, p: np.ndarray, *, eps: float = 1e-7) -> float:
    """Cross-entropy averaged within each class, then over classes (each class counts equally)."""
    y = np.asarray(y, bool)
    p = np.clip(np.asarray(p, np.float64), eps, 1 - eps)
    parts = [-np.log(p[y]).mean() if y.any() else np.nan, -np.log(1 - p[~y]).mean() if (~y).any() else np.nan]
    return float(np.nanmean(parts))


def subject_labels(y: np.ndarray, subject: np.ndarray) -> dict[Any, int]:
    """Each subject's label (its cells' majority label)."""
    out = {}
    for s in np.unique(subject):
        out[s] = int(np.asarray(y)[subject == s].mean() >= 0.5)
    return out


def bootstrap_by_subject(
    y: np.ndarray,
    p: np.ndarray,
    subject: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    *,
    n: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of ``statistic(y, p)`` over resamples of subjects, within each class.

    Each replicate draws, with replacement, as many ALL subjects as there are
    and as many normal subjects as there are, and pools their cells.
    """
    y, p, subject = np.asarray(y), np.asarray(p), np.asarray(subject)
    labels = subject_labels(y, subject)
    members = {s: np.nonzero(subject == s)[0] for s in labels}
    strata = [[s for s, lab in labels.items() if lab == c] for c in (0, 1)]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(n):
        idx = np.concatenate(
            [members[s] for stratum in strata if stratum for s in rng.choice(stratum, size=len(stratum))]
        )
        for k, value in statistic(y[idx], p[idx]).items():
            draws.setdefault(k, []).append(value)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {}
    for k, vals in draws.items():
        v = np.asarray(vals, np.float64)
        v = v[~np.isnan(v)]
        out[k] = (float(np.percentile(v, lo)), float(np.percentile(v, hi))) if len(v) else (np.nan, np.nan)
    return out


def per_subject(y: np.ndarray, p: np.ndarray, subject: np.ndarray, *, threshold: float = 0.5) -> list[dict[str, Any]]:
    """One row per subject: label, cells, mean ALL probability, fraction called ALL, accuracy."""
    rows = []
    y, p, subject = np.asarray(y), np.asarray(p), np.asarray(subject)
    for s, lab in subject_labels(y, subject).items():
        m = subject == s
        called = p[m] >= threshold
        rows.append(
            {
                "subject": str(s),
                "label": "all" if lab else "hem",
                "cells": int(m.sum()),
                "mean_p_all": float(p[m].mean()),
                "called_all": float(called.mean()),
                "accuracy": float((called == y[m].astype(bool)).mean()),
            }
        )
    return rows


def calibration(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error over equal-width bins of p_all, and the reliability table."""
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        m = which == b
        if not m.any():
            continue
        conf, freq = float(p[m].mean()), float(y[m].mean())
        ece += m.mean() * abs(conf - freq)
        rows.append(
            {"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(m.sum()), "mean_p": conf, "frac_all": freq}
        )
    return {"ece": float(ece) if len(p) else np.nan, "bins": rows}


def within_bin_auc(y: np.ndarray, p: np.ndarray, area: np.ndarray, *, bins: int = 5) -> dict[str, Any]:
    """AUC counting only (ALL, normal) pairs of cells in the same area bin (equal-count bins).

    Cell size alone separates the classes in C-NMC; a model that sees only
    size scores ~0.5 here.  Pairs from all bins are pooled (weight = pairs).
    """
    y, p, area = np.asarray(y, bool), np.asarray(p, np.float64), np.asarray(area, np.float64)
    ok = ~np.isnan(area)
    y, p, area = y[ok], p[ok], area[ok]
    if len(area) == 0:
        return {"auc": np.nan, "pairs": 0, "bins": []}
    edges = np.unique(np.quantile(area, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.digitize(area, edges[1:-1]), 0, max(0, len(edges) - 2))
    concordant, pairs, rows = 0.0, 0, []
    for b in np.unique(which):
        m = which == b
        yp, ye = y[m], p[m]
        n_pos, n_neg = int(yp.sum()), int((~yp).sum())
        auc = roc_auc(yp, ye)
        rows.append({"bin": int(b), "n_all": n_pos, "n_hem": n_neg, "auc": auc})
        if n_pos and n_neg:
            concordant += auc * n_pos * n_neg
            pairs += n_pos * n_neg
    return {"auc": float(concordant / pairs) if pairs else np.nan, "pairs": int(pairs), "bins": rows}


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (here: of the ALL score with cell area)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 3:
        return np.nan
    ra, rb = _ranks(a[ok]), _ranks(b[ok])
    sa, sb = ra.std(), rb.std()
    return float(((ra - ra.mean()) * (rb - rb.mean())).mean() / (sa * sb)) if sa and sb else np.nan


def youden_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold maximising sensitivity + specificity (reported, never stored)."""
    fpr, tpr, thr = roc_curve(y, p)
    k = int(np.argmax(tpr - fpr))
    return float(min(1.0, thr[k]))


def summarize(
    y: np.ndarray,
    p: np.ndarray,
    subject: np.ndarray,
    area: np.ndarray | None = None,
    *,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every figure the evaluation report shows, as plain JSON-able values."""
    y, p, subject = np.asarray(y), np.asarray(p, np.float64), np.asarray(subject)
    point = point_metrics(y, p, threshold=threshold)
    ci = bootstrap_by_subject(y, p, subject, lambda a, b: point_metrics(a, b, threshold=threshold), n=n_boot, seed=seed)
    out: dict[str, Any] = {
        "cells": len(y),
        "cells_all": int(np.sum(y == 1)),
        "cells_hem": int(np.sum(y == 0)),
        "subjects_all": sorted({str(s) for s, lab in subject_labels(y, subject).items() if lab}),
        "subjects_hem": sorted({str(s) for s, lab in subject_labels(y, subject).items() if not lab}),
        "threshold": float(threshold),
        "confusion": confusion(y, p >= threshold),
        "metrics": {k: {"value": point[k], "ci95": list(ci.get(k, (np.nan, np.nan)))} for k in POINT_METRICS},
        "per_subject": per_subject(y, p, subject, threshold=threshold),
        "calibration": calibration(y, p),
        "bootstrap": {"replicates": n_boot, "over": "subjects, stratified by class", "seed": seed},
    }
    if area is not None:
        out["area"] = {
            "within_bin_auc": within_bin_auc(y, p, area),
            "spearman_score_area": spearman(p, area),
        }
    return out
