"""Model files are untrusted input, and every argument mistake gets a clear error before the slow work."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from leukedge.cli import main
from leukedge.converters.labelled import balanced_selection, label_of
from leukedge.synthetic import write_cell_dataset
from tests.converters.tinymodels import build, synthetic_sets, tiny_manifest, trained_tiny


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = tmp_path_factory.getbasetemp() / "tiny"
    r.mkdir(exist_ok=True)
    return r


def convert(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["convert", *map(str, args)])


def _error(r, code: int, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output and "Error: " in r.output
    for f in fragments:
        assert f in r.output, r.output


def test_lambda_layer_is_refused_before_keras_loads_it(tmp_path: Path) -> None:
    import keras

    from leukedge.trainer.modelio import save_model

    manifest = tiny_manifest()
    inp = keras.Input((32, 32, 3), name="input")
    x = keras.layers.Lambda(lambda t: t * 2.0, name="evil")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="predictions")(x))
    path = save_model(model, tmp_path / "lambda.h5", manifest)
    _error(convert(path, "--out", tmp_path / "b"), 4, "Lambda", "refuses to load", "Hint:")
    assert not (tmp_path / "b").exists()


def test_corrupt_truncated_and_foreign_model_files(root: Path, tmp_path: Path) -> None:
    good = trained_tiny(root).read_bytes()
    (tmp_path / "truncated.h5").write_bytes(good[: len(good) // 2])
    _error(convert(tmp_path / "truncated.h5"), 4, "truncated or corrupt")
    (tmp_path / "noise.h5").write_bytes(np.random.default_rng(0).bytes(4096))
    _error(convert(tmp_path / "noise.h5"), 4, "not a readable HDF5 model file")
    (tmp_path / "empty.keras").write_bytes(b"")
    _error(convert(tmp_path / "empty.keras"), 4, "empty")
    (tmp_path / "model.onnx").write_bytes(b"x")
    _error(convert(tmp_path / "model.onnx"), 4, "expected a Keras model file")
    _error(convert(tmp_path / "missing.h5"), 4, "no such model file")
    plain = build(tiny_manifest())
    plain.save(tmp_path / "plain.h5")  # a Keras model, but not one leukedge trained
    _error(convert(tmp_path / "plain.h5"), 4, "not a leukedge model", "leukedge train")


def test_missing_empty_and_unlabelled_folders(root: Path, tmp_path: Path) -> None:
    model = trained_tiny(root)
    train, val = synthetic_sets(root)
    _error(convert(model, "--calib-data", tmp_path / "nowhere"), 3, "--calib-data", "no such folder")
    _error(convert(model, "--validate", tmp_path / "nowhere"), 3, "--validate", "no such folder")
    (tmp_path / "empty").mkdir()
    _error(convert(model, "--calib-data", tmp_path / "empty"), 3, "holds no image")
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    shutil.copy(next((val / "all").glob("*.png")), unlabelled / "cell_001.png")
    _error(convert(model, "--calib-data", train, "--validate", unlabelled), 3, "have no label", "all/ and hem/")
    one_class = tmp_path / "one_class"
    shutil.copytree(val / "all", one_class / "all")
    _error(convert(model, "--calib-data", train, "--validate", one_class), 3, "needs both 'all' and 'hem'")


def test_too_few_calibration_cells_are_refused(root: Path, tmp_path: Path) -> None:
    few = write_cell_dataset(tmp_path / "few", per_class=10, subjects_per_class=2, seed=3, size=64)
    _error(convert(trained_tiny(root), "--calib-data", few), 3, "20 usable cell image(s)", "at least 32")
    _error(convert(trained_tiny(root), "--calib-size", 8), 3, "--calib-size is 8")


def test_out_folder_that_is_not_a_bundle_is_left_alone(root: Path, tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_text("precious")
    _error(convert(trained_tiny(root), "--out", tmp_path / "mine"), 3, "not empty and is not a model bundle")
    assert (tmp_path / "mine" / "thesis.docx").read_text() == "precious"


def test_engine_without_tensorrt_fails_fast(root: Path, tmp_path: Path, monkeypatch) -> None:
    import sys
    import types

    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # stubs-only install
    _error(convert(trained_tiny(root), "--engine", "--out", tmp_path / "b"), 5, "not TensorRT", "JetPack")
    assert not (tmp_path / "b").exists()


def test_unreadable_calibration_images_are_skipped_and_counted(root: Path, tmp_path: Path) -> None:
    from leukedge.converters.convert import ConvertOptions
    from leukedge.converters.inputs import plan_inputs

    calib = write_cell_dataset(tmp_path / "calib", per_class=20, subjects_per_class=4, seed=5, size=64)
    (calib / "all" / "UID_9_1_1_all.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(calib / "hem" / "UID_H9_1_1_hem.png")  # grayscale
    messages: list = []
    plan = plan_inputs(trained_tiny(root), ConvertOptions(out=tmp_path / "b", calib_data=calib), echo=messages.append)
    assert plan.calib is not None and len(plan.calib) + len(plan.calib.skipped) == 42
    assert any("unreadable image(s) skipped" in m for m in messages)


def test_selection_balances_classes_as_far_as_they_allow_and_rotates_subjects(tmp_path: Path) -> None:
    names = [f"all/UID_{s}_{i}_1_all.png" for s in (1, 2) for i in range(1, 41)]  # two ALL subjects, 40 each
    names += [f"hem/UID_H{s}_{i}_1_hem.png" for s in (1, 2, 3) for i in range(1, 6)]  # 15 hem cells
    files = [label_of(Path(n)) for n in names]
    chosen = balanced_selection(files, 60)
    labels = [f.label for f in chosen]
    assert labels.count("hem") == 15 and labels.count("all") == 45  # hem has only 15: ALL takes the rest
    subjects = [f.subject for f in chosen if f.label == "all"]
    assert sorted([subjects.count("1"), subjects.count("2")]) == [22, 23]  # the subjects take turns
    assert balanced_selection(files, 60, seed=0) == chosen  # seeded
    assert len(balanced_selection(files, 1000)) == len(files)
    small = balanced_selection(files, 20)
    assert [f.label for f in small].count("all") == [f.label for f in small].count("hem") == 10
