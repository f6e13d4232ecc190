"""Real end-to-end training on tiny widths: learns, is deterministic, resumes, records its provenance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from leukedge.errors import InvalidInputError
from leukedge.trainer.modelio import load_model, read_manifest


def _weights(path: Path) -> list[np.ndarray]:
    model, _ = load_model(path)
    return [np.asarray(w) for w in model.get_weights()]


def test_tiny_model_learns_the_synthetic_two_class_set(trained) -> None:
    v = trained.validation
    assert v["accuracy"] >= 0.9, v
    assert v["cells"] == 32 and v["subjects"] == 4
    assert 0.2 < v["called_all"] < 0.8  # inference mode: not collapsed to one class
    m = read_manifest(trained.model_path)
    assert m.classes == ("hem", "all") and m.input_name == "input" and m.output_name == "predictions"
    assert m.decision.threshold == 0.5 and "class-balanced" in m.decision.policy
    assert m.metrics["validation"]["accuracy"] == v["accuracy"]
    hist = m.metrics["history"]
    assert len(hist["loss"]) == trained.epochs_run and len(hist["val_loss"]) == trained.epochs_run
    assert hist["loss"][-1] < hist["loss"][0]


def test_model_file_carries_its_provenance_and_split(trained, cells6: Path) -> None:
    m = read_manifest(trained.model_path)
    prov = m.provenance
    assert prov["data"]["folder"] == str(cells6.resolve())
    assert prov["data"]["files"] == 96 and len(prov["data"]["files_sha256"]) == 64
    subjects = prov["split"]["subjects"]
    assert len(subjects["val"]) == 4 and len(subjects["test"]) == 2
    assert not set(subjects["train"]) & set(subjects["val"] + subjects["test"])
    assert prov["seed"] == 0 and prov["versions"]["tensorflow"]
    assert prov["training"]["classes"] == list(m.classes) == ["hem", "all"]  # the order the labels were encoded in
    assert prov["model"]["width"] == 1 / 16 and prov["model"]["params"] > 0 and prov["model"]["macs"] > 0
    assert m.preprocessing.log.enabled and m.preprocessing.input_height == 128
    split = json.loads(trained.split_path.read_text())
    assert split["subjects"] == subjects
    test_files = split["files"]["test"]
    assert {f["subject"] for f in test_files} == set(subjects["test"])
    assert all(len(f["phash"]) == 64 for f in test_files)
    import h5py

    with h5py.File(trained.model_path) as f:
        assert "optimizer_weights" not in f  # saved without optimizer state
    model, _ = load_model(trained.model_path)
    assert model.get_layer("block5_pool").__class__.__name__ == "AveragePooling2D"


@pytest.mark.slow
def test_same_seed_same_weights_and_exact_resume(
    synthetic_cells: Path, tmp_path: Path, tiny_options, tiny_split
) -> None:
    from leukedge.trainer.training import train

    opts = tiny_options(epochs=2)
    full = train(synthetic_cells, tmp_path / "a.h5", options=opts, split=tiny_split())

    def interrupt_after_first_epoch(msg: str) -> None:
        if msg.startswith("epoch   1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            synthetic_cells, tmp_path / "b.h5", options=opts, split=tiny_split(), progress=interrupt_after_first_epoch
        )
    assert not (tmp_path / "b.h5").exists()
    assert (tmp_path / "b.ckpt" / "state.json").is_file()
    lines: list[str] = []
    resumed = train(synthetic_cells, tmp_path / "b.h5", options=opts, split=tiny_split(), progress=lines.append)
    assert resumed.resumed_at == 1 and resumed.epochs_run == 2
    assert sum(line.startswith("epoch ") for line in lines) == 1  # only the missing epoch ran
    for a, b in zip(_weights(full.model_path), _weights(resumed.model_path)):
        np.testing.assert_array_equal(a, b)
    assert full.manifest.metrics["history"]["loss"] == resumed.manifest.metrics["history"]["loss"]

    other = train(synthetic_cells, tmp_path / "c.h5", options=tiny_options(epochs=2, seed=1), split=tiny_split())
    assert any(not np.array_equal(a, b) for a, b in zip(_weights(full.model_path), _weights(other.model_path)))


def test_a_checkpoint_of_another_run_is_refused(
    trained, cells6: Path, tmp_path: Path, tiny_options, tiny_split
) -> None:
    from leukedge.trainer.training import train

    shutil.copytree(trained.model_path.with_name("model.ckpt"), tmp_path / "m.ckpt")  # the fixture's checkpoint
    split = tiny_split(val_fraction=0.34, test_fraction=0.17)
    with pytest.raises(InvalidInputError, match=r"checkpoint of a different run \(differs in: options") as e:
        train(cells6, tmp_path / "m.h5", options=tiny_options(epochs=10, seed=3), split=split)
    assert "--restart" in (e.value.hint or "")
    r = train(cells6, tmp_path / "m.h5", options=tiny_options(epochs=1, seed=3), split=split, resume=False)
    assert r.resumed_at == 0 and r.epochs_run == 1


def test_bad_output_path_and_missing_class_fail_before_training(
    synthetic_cells: Path, tmp_path: Path, tiny_options
) -> None:
    from leukedge.trainer.training import train

    with pytest.raises(InvalidInputError, match="expected a .h5"):
        train(synthetic_cells, tmp_path / "model.onnx", options=tiny_options(epochs=1))
    one = tmp_path / "one"
    shutil.copytree(synthetic_cells / "all", one / "all")
    with pytest.raises(InvalidInputError, match="no 'hem' cell"):
        train(one, tmp_path / "m.h5", options=tiny_options(epochs=1))


@pytest.mark.slow
def test_batch_norm_variant_does_not_collapse_at_inference(
    cells6: Path, tmp_path: Path, tiny_options, tiny_split
) -> None:
    """BatchNorm statistics are re-measured after each epoch; without that this model calls every cell normal."""
    from leukedge.trainer.training import train

    split = tiny_split(val_fraction=0.34, test_fraction=0.17)
    r = train(cells6, tmp_path / "bn.h5", options=tiny_options(epochs=4, batch_norm=True), split=split)
    assert 0.2 < r.validation["called_all"] < 0.8, r.validation
    assert r.validation["accuracy"] >= 0.8
    assert not [w for w in r.warnings if "collapsed" in w]


@pytest.mark.shared_data
def test_trains_on_real_cnmc_cells(cnmc_dir: Path, tmp_path: Path, tiny_options) -> None:
    """A few real cells per subject, linked (not copied) into a C-NMC-style folder."""
    from leukedge.trainer.training import SplitOptions, train

    root = tmp_path / "cnmc"
    for label in ("all", "hem"):
        (root / label).mkdir(parents=True)
    chosen = sorted((cnmc_dir / "all").glob("UID_23_*"))[:6] + sorted((cnmc_dir / "all").glob("UID_16_*"))[:6]
    chosen += sorted((cnmc_dir / "hem").glob("UID_H22_*"))[:8] + sorted((cnmc_dir / "hem").glob("UID_H1*_*"))[:6]
    for f in chosen:
        (root / f.parent.name / f.name).symlink_to(f)
    opts = tiny_options(epochs=1)
    r = train(root, tmp_path / "real.h5", options=opts, split=SplitOptions(val_subjects=("16", "H11"), test_fraction=0))
    m = read_manifest(r.model_path)
    assert m.provenance["data"]["sizes"] == {"450x450": len(chosen)}
    assert m.provenance["split"]["subjects"]["val"] == ["16", "H11"]
    assert r.validation["cells"] == 6 + 2
    assert np.isfinite(r.validation["loss_balanced"])
