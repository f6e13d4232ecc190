"""``leukedge cv``: a real (tiny) cross-validation by subject, its files, resume, and the threshold it hands to train."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner


def _spec():
    from leukedge.trainer.model import make_preprocessing

    return make_preprocessing(crop_mode="cell_box")


@pytest.fixture(scope="module")
def cv_run(cells6: Path, tmp_path_factory: pytest.TempPathFactory, tiny_options):
    from leukedge.trainer.cv import cross_validate

    out = tmp_path_factory.mktemp("cv")
    opts = replace(tiny_options(epochs=2, patience=0), balance="subject", samples_per_epoch=48, stain=0.2)
    doc = cross_validate(cells6, out, k=3, options=opts, spec=_spec(), n_boot=50)
    return out, doc, opts


def test_every_cell_is_scored_out_of_fold_by_every_model(cv_run) -> None:
    out, doc, _ = cv_run
    assert set(doc["models"]) == {"cnn", "cnn_tta", "knn", "svm", "area"}
    rows = (out / "oof.csv").read_text().splitlines()
    assert rows[0].startswith("subject,label,fold,cell_area,cnn,cnn_tta")
    assert len(rows) - 1 == doc["data"]["cells"] == 96
    scores = np.array([[float(v) for v in r.split(",")[4:]] for r in rows[1:]])
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    folds = [f["subjects"] for f in doc["folds"]]
    assert sorted(s for f in folds for s in f) == sorted({r.split(",")[0] for r in rows[1:]})
    for f in folds:  # every fold holds both classes, and no subject is in two folds
        assert any(s.startswith("H") for s in f) and any(not s.startswith("H") for s in f)


def test_figures_threshold_and_files(cv_run) -> None:
    out, doc, _ = cv_run
    cnn = doc["models"]["cnn"]
    assert 0.0 <= cnn["threshold"] <= 1.0 and len(cnn["per_fold"]) == 3
    ranking = cnn["pooled"]["ranking"]
    lo, hi = ranking["roc_auc"]["ci95"]
    assert lo <= ranking["roc_auc"]["value"] <= hi
    within = ranking["auc_within_area_deciles"]["value"]  # NaN when no area decile holds both classes
    assert np.isnan(within) or 0.0 <= within <= 1.0
    assert {r["subject"] for r in cnn["pooled"]["per_subject"]} == {s for f in doc["folds"] for s in f["subjects"]}
    assert "balanced accuracy" in doc["threshold_policy"]
    table = (out / "cv.md").read_text()
    assert "| area |" in table and "AUC within area deciles" in table
    assert json.loads((out / "cv.json").read_text())["schema"] == "leukedge.cv/1"
    assert (out / "roc.png").stat().st_size > 1000


def test_rerun_reuses_folds_and_a_changed_recipe_retrains(cv_run, cells6: Path) -> None:
    from leukedge.trainer.cv import cross_validate

    out, doc, opts = cv_run
    said: list[str] = []
    again = cross_validate(cells6, out, k=3, options=opts, spec=_spec(), n_boot=50, progress=said.append)
    assert sum("predictions from" in m for m in said) == 3
    assert again["models"]["cnn"]["threshold"] == doc["models"]["cnn"]["threshold"]
    said.clear()
    cross_validate(cells6, out, k=3, options=replace(opts, seed=5), spec=_spec(), n_boot=50, progress=said.append)
    assert not any("predictions from" in m for m in said)


def test_train_takes_the_threshold_the_cv_chose(cv_run, cells6: Path, tmp_path: Path) -> None:
    from leukedge.trainer.cli import train
    from leukedge.trainer.modelio import load_model

    out, _, _ = cv_run
    chosen = json.loads((out / "cv.json").read_text())["models"]["cnn"]["threshold"]
    args = [str(cells6), "--out", str(tmp_path / "m.h5"), "--epochs", "1", "--patience", "0", "--width", "0.0625"]
    args += ["--dense", "16", "--crop", "cell_box", "--balance", "subject", "--samples-per-epoch", "32"]
    args += ["--val-fraction", "0", "--test-fraction", "0", "--threshold-from", str(out / "cv.json")]
    result = CliRunner().invoke(train, args)
    assert result.exit_code == 0, result.output
    _, manifest = load_model(tmp_path / "m.h5")
    assert manifest.decision.threshold == pytest.approx(round(chosen, 4))
    assert "out-of-fold" in manifest.decision.policy
    assert manifest.preprocessing.crop.mode == "cell_box"
    cv = manifest.metrics["cv"]  # what evaluate shows: the CV behind the threshold
    assert cv["threshold"] == chosen and len(cv["folds"]) == 3
    assert cv["threshold_across_folds"]["min"] <= cv["threshold_across_folds"]["max"]


def test_threshold_from_a_file_that_is_not_a_cv_result_is_refused(cells6: Path, tmp_path: Path) -> None:
    from leukedge.trainer.cli import train

    bogus = tmp_path / "cv.json"
    bogus.write_text("{}")
    result = CliRunner().invoke(train, [str(cells6), "--out", str(tmp_path / "m.h5"), "--threshold-from", str(bogus)])
    assert result.exit_code != 0
    assert "not a cv.json" in str(result.exception) + result.output
