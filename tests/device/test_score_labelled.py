"""score_labelled: the one scoring path evaluate uses, on every backend; progress output."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from leukedge.device.scoring import read_results, score_files, score_labelled
from leukedge.device.scoring.progress import Progress
from leukedge.errors import InvalidInputError
from tests.device.device_helpers import score_bundles


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    pytest.importorskip("onnx", reason="the test bundle is written with onnx")
    return score_bundles().build_onnx_bundle(tmp_path_factory.mktemp("bundle"))


def test_labelled_scores_match_score_files_and_carry_labels(synthetic_cells, bundle, tmp_path) -> None:
    s = score_labelled([synthetic_cells], bundle.root, precision="fp32", workers=1, batch_size=16)
    assert len(s.rows) == 80 and not s.failed
    assert s.run == {"model": bundle.short_hash, "precision": "fp32", "backend": "onnxruntime"}
    assert s.y_true.sum() == 40 and set(s.subjects) == {"1", "2", "3", "4", "5", "H1", "H2", "H3", "H4", "H5"}
    assert (s.areas > 1000).all() and {r["mode"] for r in s.rows} == {"cells"}
    out = tmp_path / "r.jsonl"
    score_files([synthetic_cells], out, model=bundle.root, precision="fp32", mode="cells", workers=0)
    by_source = {r["source"]: r for r in read_results(out)}
    for r in s.rows:
        f = by_source[r["source"]]
        assert (f["subject"], f["true_label"], f["area"]) == (r["subject"], r["true_label"], r["area"])
        assert f["p_all"] == pytest.approx(r["p_all"], abs=1e-6)
    # The test model's p_all grows with cell size, and ALL cells are larger: scores are not noise.
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(s.y_true, s.p_all) > 0.8


def test_int8_and_fp32_come_from_the_same_path(synthetic_cells, bundle) -> None:
    fp32 = score_labelled([synthetic_cells], bundle.root, precision="fp32", workers=0)
    int8 = score_labelled([synthetic_cells], bundle.root, precision="int8", workers=0)
    assert [r["source"] for r in fp32.rows] == [r["source"] for r in int8.rows]
    assert int8.run["precision"] == "int8"
    assert np.abs(fp32.p_all - int8.p_all).max() < 0.05


def test_unlabelled_and_unreadable_inputs(bundle, synthetic_cells, tmp_path) -> None:
    (tmp_path / "cell.png").write_bytes((synthetic_cells / "all" / "UID_1_1_1_all.png").read_bytes())
    with pytest.raises(InvalidInputError, match="1 of 1 image\\(s\\) have no C-NMC name") as err:
        score_labelled([tmp_path / "cell.png"], bundle.root, workers=0)
    assert "UID_<subject>_<image>_<cell>_<all|hem>" in err.value.hint
    bad = tmp_path / "UID_9_1_1_all.png"
    bad.write_bytes(b"")
    s = score_labelled([bad, synthetic_cells / "all" / "UID_1_1_1_all.png"], bundle.root, workers=0)
    assert len(s.rows) == 1 and s.failed == [(str(bad), f"{bad}: file is empty (0 bytes)")]


@pytest.mark.shared_data
def test_real_cnmc_labels_and_subjects_come_from_the_names(cnmc_dir, bundle) -> None:
    s = score_labelled([cnmc_dir], bundle.root, precision="int8", batch_size=64)
    with open(cnmc_dir / "manifest.csv", newline="") as fh:
        truth = {Path(r["file"]).name: (r["subject"].upper(), r["label"]) for r in csv.DictReader(fh)}
    assert len(s.rows) == len(truth) and not s.failed
    for r in s.rows:
        assert (r["subject"], r["true_label"]) == truth[Path(r["source"]).name]
        assert 0.0 <= r["p_all"] <= 1.0 and r["area"] > 0


@pytest.mark.slow
def test_keras_h5_onnx_and_int8_score_alike(synthetic_cells, tmp_path) -> None:
    """What evaluate relies on: one path for the .h5, its FP32 ONNX and its INT8 ONNX."""
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf2onnx")
    b = score_bundles().build_keras_bundle(tmp_path / "kb")
    h5 = score_labelled([synthetic_cells], b.root / "model.h5", workers=0, batch_size=32)
    fp32 = score_labelled([synthetic_cells], b.root, backend="onnxruntime", precision="fp32", workers=1)
    int8 = score_labelled([synthetic_cells], b.root, backend="onnxruntime", precision="int8", workers=1)
    assert h5.run["backend"] == "keras" and h5.run["precision"] == "fp32"
    np.testing.assert_allclose(h5.p_all, fp32.p_all, atol=1e-4)
    assert np.abs(fp32.p_all - int8.p_all).max() < 0.05
    assert h5.subjects == fp32.subjects and (h5.areas == int8.areas).all()


def test_progress_in_a_log_is_plain_lines() -> None:
    log = io.StringIO()
    p = Progress(10, stream=log, every_s=0.0)
    for _ in range(10):
        p.update(1)
    p.update(0, failed=1)
    p.close()
    text = log.getvalue()
    assert "\r" not in text and text.count("\n") == 12
    assert text.splitlines()[-1].startswith("score: 10/10 images (100%)")
    assert "img/s" in text and "ETA" in text and "1 failed" in text.splitlines()[-1]


def test_progress_on_a_terminal_is_a_bar() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Tty()
    p = Progress(5, stream=term)
    p.update(5)
    p.close()
    assert "\r" in term.getvalue() and "5/5" in term.getvalue() and "img/s" in term.getvalue()
    quiet = io.StringIO()
    p = Progress(5, stream=quiet, enabled=False)
    p.update(5)
    p.close()
    assert quiet.getvalue() == ""
