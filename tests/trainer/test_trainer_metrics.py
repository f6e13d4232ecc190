"""Metrics are pure functions of (y, p, subject, area); checked against hand counts and sklearn."""

from __future__ import annotations

import numpy as np
import pytest

from leukedge.trainer import metrics


def test_point_metrics_by_hand() -> None:
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1, 0.1, 0.3, 0.2, 0.4])
    m = metrics.point_metrics(y, p, threshold=0.5)
    assert m["sensitivity"] == pytest.approx(3 / 4)
    assert m["specificity"] == pytest.approx(5 / 6)
    assert m["accuracy"] == pytest.approx(8 / 10)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 5 / 6) / 2)
    f1_all, f1_hem = 2 * 3 / (2 * 3 + 1 + 1), 2 * 5 / (2 * 5 + 1 + 1)
    assert m["weighted_f1"] == pytest.approx(0.4 * f1_all + 0.6 * f1_hem)
    assert metrics.confusion(y, p >= 0.5) == {"tp": 3, "fn": 1, "tn": 5, "fp": 1}


def test_auc_and_f1_agree_with_sklearn(rng: np.random.Generator) -> None:
    from sklearn.metrics import f1_score, roc_auc_score

    y = rng.integers(0, 2, 300)
    p = np.round(np.clip(y * 0.3 + rng.normal(0.4, 0.25, 300), 0, 1), 2)  # rounded: many ties
    assert metrics.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p))
    assert metrics.weighted_f1(y, p >= 0.5) == pytest.approx(f1_score(y, p >= 0.5, average="weighted"))
    fpr, tpr, _ = metrics.roc_curve(y, p)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert np.isnan(metrics.roc_auc(np.ones(5), np.linspace(0, 1, 5)))


def test_bootstrap_is_over_subjects_and_stratified(rng: np.random.Generator) -> None:
    subject = np.repeat([f"A{k}" for k in range(6)] + [f"H{k}" for k in range(4)], 20)
    y = np.array([s.startswith("A") for s in subject], int)
    p = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.2, len(y)), 0, 1)
    p[subject == "H3"] = 0.9  # one donor the model gets entirely wrong
    ci = metrics.bootstrap_by_subject(y, p, subject, lambda a, b: metrics.point_metrics(a, b), n=300, seed=1)
    point = metrics.point_metrics(y, p)
    for k in ("accuracy", "specificity", "roc_auc"):
        lo, hi = ci[k]
        assert lo <= point[k] <= hi
    assert ci["specificity"][1] - ci["specificity"][0] > 0.3  # one bad donor of four: a wide interval
    cells_ci = ci["sensitivity"]
    assert not np.isnan(cells_ci[0])  # every replicate had both classes (stratified)
    again = metrics.bootstrap_by_subject(y, p, subject, lambda a, b: metrics.point_metrics(a, b), n=300, seed=1)
    assert again == ci


def test_per_subject_table() -> None:
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.3, 0.1, 0.2, 0.7])
    rows = {r["subject"]: r for r in metrics.per_subject(y, p, np.array(["7", "7", "H1", "H1", "H1"]))}
    assert rows["7"]["cells"] == 2 and rows["7"]["called_all"] == 0.5 and rows["7"]["label"] == "all"
    assert rows["H1"]["accuracy"] == pytest.approx(2 / 3)


def test_calibration_error(rng: np.random.Generator) -> None:
    p = rng.uniform(0, 1, 20000)
    y = (rng.uniform(0, 1, 20000) < p).astype(int)
    assert metrics.calibration(y, p)["ece"] < 0.02  # calibrated by construction
    overconfident = np.where(p > 0.5, 1.0, 0.0)
    assert metrics.calibration(y, overconfident)["ece"] > 0.2


def test_within_area_bin_auc_sees_through_a_size_only_score(rng: np.random.Generator) -> None:
    n = 2000
    y = rng.integers(0, 2, n)
    area = rng.normal(20000 + 6000 * y, 3000)  # ALL cells larger, as in C-NMC
    size_only = 1 / (1 + np.exp(-(area - 23000) / 2000))
    assert metrics.roc_auc(y, size_only) > 0.85
    assert metrics.within_bin_auc(y, size_only, area, bins=10)["auc"] == pytest.approx(0.5, abs=0.08)
    texture = rng.normal(y * 1.5, 1.0)  # a feature independent of size
    assert metrics.within_bin_auc(y, texture + size_only, area, bins=10)["auc"] > 0.75
    assert metrics.spearman(size_only, area) > 0.99


def test_summarize_is_json_ready() -> None:
    import json

    from leukedge.trainer.provenance import jsonable

    y = np.array([1, 1, 0, 0, 1, 0])
    p = np.array([0.8, 0.6, 0.3, 0.1, 0.7, 0.55])
    s = metrics.summarize(y, p, np.array(["1", "2", "H1", "H2", "3", "H3"]), np.arange(6.0), n_boot=50)
    assert set(s["metrics"]) == set(metrics.POINT_METRICS)
    assert s["cells"] == 6 and s["subjects_hem"] == ["H1", "H2", "H3"]
    json.dumps(jsonable(s), allow_nan=False)
    one_class = metrics.summarize(np.ones(3, int), np.array([0.2, 0.9, 0.8]), np.array(["1", "1", "2"]), n_boot=20)
    assert np.isnan(one_class["metrics"]["specificity"]["value"])
    assert json.loads(json.dumps(jsonable(one_class), allow_nan=False))["metrics"]["roc_auc"]["value"] is None
