"""``evaluate``: held-out subjects only, figures with intervals, baselines, report files, bad input."""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from leukedge.errors import BundleError, InvalidInputError
from leukedge.trainer.evaluation import evaluate


@pytest.fixture(scope="module")
def report(trained, cells6: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("report")
    return evaluate(trained.model_path, cells6, report_dir=out, baselines=True, n_boot=200), out


def test_evaluates_only_subjects_the_model_never_saw(trained, report) -> None:
    doc, _ = report
    split = trained.manifest.provenance["split"]["subjects"]
    evaluated = set(doc["cnn"]["subjects_all"]) | set(doc["cnn"]["subjects_hem"])
    assert evaluated == set(split["test"])
    assert set(doc["data"]["left_out_subjects"]) == set(split["train"]) | set(split["val"])
    assert doc["cnn"]["cells"] == 16 and doc["data"]["evaluated"] == 16


def test_figures_have_intervals_per_subject_rows_and_calibration(report) -> None:
    doc, _ = report
    cnn = doc["cnn"]
    for key in ("accuracy", "sensitivity", "specificity", "weighted_f1", "roc_auc"):
        m = cnn["metrics"][key]
        assert 0.0 <= m["value"] <= 1.0
        lo, hi = m["ci95"]
        assert lo <= m["value"] <= hi
    assert cnn["metrics"]["accuracy"]["value"] >= 0.8  # the tiny model generalises to its held-out subjects
    assert {r["subject"] for r in cnn["per_subject"]} == set(cnn["subjects_all"] + cnn["subjects_hem"])
    assert 0.0 <= cnn["calibration"]["ece"] <= 1.0 and cnn["calibration"]["bins"]
    assert "within_bin_auc" in cnn["area"] and "spearman_score_area" in cnn["area"]
    assert doc["model"]["runtime"] == "keras fp32"
    assert doc["model"]["decision"]["threshold"] == 0.5
    json.dumps(doc, allow_nan=False)


def test_baselines_are_scored_on_the_same_cells(report) -> None:
    doc, _ = report
    assert set(doc["baselines"]) == {"knn", "svm", "area"}
    for b in doc["baselines"].values():
        assert b["cells"] == doc["cnn"]["cells"]
        assert b["subjects_all"] == doc["cnn"]["subjects_all"]
        assert b["fitted_on"]["subjects"] == sorted(doc["model"]["trained_on"]["train"])
    # synthetic ALL cells are larger: size alone separates them
    assert doc["baselines"]["area"]["metrics"]["roc_auc"]["value"] > 0.9


def test_report_files_json_and_self_contained_html(report) -> None:
    doc, out = report
    data = json.loads((out / "evaluation.json").read_text())
    assert data["cnn"]["metrics"] == doc["cnn"]["metrics"]
    assert len(data["cells"]) == 16 and {"p_all", "p_all_area", "subject", "area"} <= set(data["cells"][0])
    html = (out / "report.html").read_text()
    pngs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(pngs) == 5  # training curves, confusion matrix, ROC, reliability, score vs area
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert 'src="http' not in html and "<script" not in html  # nothing fetched from elsewhere
    for text in ("sensitivity (ALL recall)", "weighted F1", "Per subject", "area baseline", "Skipped files"):
        assert text in html


def test_unreadable_files_are_skipped_and_listed(trained, cells6: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(cells6, data)
    bad = data / "all" / "UID_1_99_1_all.png"
    bad.write_bytes(b"not an image")
    doc = evaluate(trained.model_path, data, n_boot=50, subjects="all")
    assert [s["file"] for s in doc["data"]["skipped"]] == [bad.relative_to(data).as_posix()]
    assert doc["data"]["evaluated"] == 96 and doc["data"]["found"] == 97
    assert doc["data"]["subjects"] == "all"


def test_one_class_only_reports_what_is_defined(trained, cells6: Path, tmp_path: Path) -> None:
    data = tmp_path / "only_all"
    shutil.copytree(cells6 / "all", data / "all")
    doc = evaluate(trained.model_path, data, n_boot=50)
    assert doc["cnn"]["cells_hem"] == 0 and doc["cnn"]["metrics"]["specificity"]["value"] is None
    assert doc["cnn"]["metrics"]["sensitivity"]["value"] is not None
    assert any("one class" in n for n in doc["notes"])


def test_only_seen_subjects_is_a_clear_error(trained, cells6: Path, tmp_path: Path) -> None:
    data = tmp_path / "seen"
    train_subjects = trained.manifest.provenance["split"]["subjects"]["train"]
    for f in cells6.glob("*/*.png"):
        if f.stem.split("_")[1] in train_subjects:
            (data / f.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, data / f.parent.name / f.name)
    with pytest.raises(InvalidInputError, match="used to train or validate") as e:
        evaluate(trained.model_path, data, n_boot=10)
    assert "--subjects all" in (e.value.hint or "")
    val = evaluate(trained.model_path, cells6, n_boot=10, subjects="val")
    assert set(val["cnn"]["subjects_all"] + val["cnn"]["subjects_hem"]) == set(
        trained.manifest.provenance["split"]["subjects"]["val"]
    )
    with pytest.raises(InvalidInputError, match="none of the model's test subjects"):
        evaluate(trained.model_path, data, n_boot=10, subjects="test")


def test_copies_of_training_cells_in_another_folder_are_left_out(trained, cells6: Path, tmp_path: Path) -> None:
    data = tmp_path / "other"
    subjects = trained.manifest.provenance["split"]["subjects"]
    train_file = next((cells6 / "hem").glob(f"UID_{subjects['train'][-1]}_*"))
    for f in cells6.glob("*/*.png"):
        if f.stem.split("_")[1] not in subjects["test"]:
            continue
        (data / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, data / f.parent.name / f.name)
    shutil.copy(train_file, data / "hem" / "UID_H77_1_1_hem.png")  # a training cell filed under a new donor
    doc = evaluate(trained.model_path, data, n_boot=10)
    assert doc["data"]["possible_copies_of_training"] == ["hem/UID_H77_1_1_hem.png"]
    assert "H77" not in doc["cnn"]["subjects_hem"]


def test_a_file_that_is_not_a_leukedge_model(tmp_path: Path, cells6: Path) -> None:
    import h5py

    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(BundleError, match="not a leukedge model"):
        evaluate(plain, cells6)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(BundleError, match="not a readable HDF5"):
        evaluate(junk, cells6)


@pytest.mark.parametrize("interpolation", ["area", "linear"])
def test_evaluate_predicts_through_the_scoring_engine_with_training_crops(
    trained, cells6: Path, tmp_path: Path, interpolation: str
) -> None:
    """predict_files (score's engine) sees exactly the crops training saw, whatever the manifest's resize."""
    from dataclasses import replace

    from leukedge.device.classifier import Classifier
    from leukedge.device.runtimes import open_runtime
    from leukedge.trainer.dataset import load_cell
    from leukedge.trainer.modelio import read_manifest, write_manifest
    from leukedge.trainer.predict import predict_files

    model = tmp_path / "model.h5"
    model.write_bytes(Path(trained.model_path).read_bytes())
    m = read_manifest(model)
    write_manifest(model, replace(m, preprocessing=replace(m.preprocessing, interpolation=interpolation)))
    files = sorted((cells6 / "all").glob("*.png"))[:4] + sorted((cells6 / "hem").glob("*.png"))[:4]
    via_score = predict_files(files, model)
    with open_runtime(model) as rt:
        direct = Classifier(rt).p_all([load_cell(f) for f in files])
    assert via_score.failed == []
    np.testing.assert_allclose(via_score.p_all, direct, atol=1e-6)


def test_several_folders_evaluate_as_one(trained, cells6: Path, report, tmp_path: Path) -> None:
    """The data split over two folders (linked, not copied) gives the same figures as one folder."""
    for label, folder in (("all", tmp_path / "a"), ("hem", tmp_path / "b")):
        (folder / label).mkdir(parents=True)
        for f in (cells6 / label).iterdir():
            (folder / label / f.name).symlink_to(f)
    doc = evaluate(trained.model_path, [tmp_path / "a", tmp_path / "b"], n_boot=50)
    one = report[0]
    assert doc["cnn"]["cells"] == one["cnn"]["cells"]
    assert doc["cnn"]["metrics"]["roc_auc"]["value"] == pytest.approx(one["cnn"]["metrics"]["roc_auc"]["value"])
    assert doc["data"]["folders"] == [str((tmp_path / "a").resolve()), str((tmp_path / "b").resolve())]
