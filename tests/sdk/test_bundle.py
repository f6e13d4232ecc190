from __future__ import annotations

import json

import pytest

from leukedge.bundle import REFERENCE_BUNDLE, Bundle, write_bundle
from leukedge.errors import BundleError
from leukedge.manifest import Manifest


@pytest.fixture
def bundle_dir(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"fake onnx bytes")
    write_bundle(tmp_path, Manifest(), {"onnx_fp32": "model.onnx"})
    return tmp_path


def test_write_then_load(bundle_dir) -> None:
    b = Bundle.load(bundle_dir)
    assert b.path_of("onnx_fp32") == bundle_dir / "model.onnx"
    assert len(b.model_hash) == 64 and b.short_hash == b.model_hash[:12]
    assert Bundle.load(bundle_dir / "manifest.json").root == bundle_dir


def test_replaced_model_is_refused(bundle_dir) -> None:
    (bundle_dir / "model.onnx").write_bytes(b"another model")
    with pytest.raises(BundleError, match="does not match its manifest"):
        Bundle.load(bundle_dir)
    Bundle.load(bundle_dir, verify=False)  # the caller may opt out of hashing


def test_missing_file_and_missing_key(bundle_dir) -> None:
    b = Bundle.load(bundle_dir)
    with pytest.raises(BundleError, match="has no 'onnx_int8' model"):
        b.path_of("onnx_int8")
    (bundle_dir / "model.onnx").unlink()
    with pytest.raises(BundleError, match="model.onnx, which is missing"):
        Bundle.load(bundle_dir)


def test_not_a_bundle(tmp_path) -> None:
    with pytest.raises(BundleError, match="not a model bundle folder") as err:
        Bundle.load(tmp_path / "model.h5")
    assert "model file, not a bundle" in (err.value.hint or "")


def test_path_escaping_the_bundle_is_refused(bundle_dir) -> None:
    d = json.loads((bundle_dir / "manifest.json").read_text())
    d["files"]["onnx_fp32"]["path"] = "../model.onnx"
    (bundle_dir / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match="plain name inside the bundle"):
        Bundle.load(bundle_dir, verify=False)


# --- the model id covers every file the bundle uses and the label-deciding manifest fields ---------


def _edit_manifest(root, edit) -> None:
    d = json.loads((root / "manifest.json").read_text())
    edit(d)
    (root / "manifest.json").write_text(json.dumps(d))


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["decision"].__setitem__("threshold", 0.45),
        lambda d: d["decision"].__setitem__("indeterminate", [0.2, 0.7]),
        lambda d: d["preprocessing"]["log"].__setitem__("gaussian_sigma", 2.0),
        lambda d: d["preprocessing"]["log"].__setitem__("enabled", False),
        lambda d: d["preprocessing"].__setitem__("scale", 1.0),
        lambda d: d["preprocessing"]["crop"].__setitem__("canvas_px", 300),
        lambda d: d.__setitem__("output_name", "probs"),
        lambda d: d["files"].__setitem__("calibration", {"path": "model.onnx", "sha256": "0" * 64}),
    ],
    ids=["threshold", "band", "log-sigma", "log-off", "scale", "canvas", "output-name", "another-file"],
)
def test_model_id_changes_with_every_decision_field_and_file(bundle_dir, edit) -> None:
    before = Bundle.load(bundle_dir).model_hash
    _edit_manifest(bundle_dir, edit)
    assert Bundle.load(bundle_dir, verify=False).model_hash != before


def test_model_id_ignores_prose(bundle_dir) -> None:
    before = Bundle.load(bundle_dir).model_hash
    _edit_manifest(bundle_dir, lambda d: d["decision"].__setitem__("policy", "reworded"))
    _edit_manifest(bundle_dir, lambda d: d.__setitem__("provenance", {"note": "added later"}))
    assert Bundle.load(bundle_dir).model_hash == before


def _external_bundle(root):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    model = onnx.load(str(REFERENCE_BUNDLE / "model.onnx"))
    onnx.save_model(model, str(root / "model.onnx"), save_as_external_data=True, location="weights.bin")
    write_bundle(root, Manifest(), {"onnx_fp32": "model.onnx"})
    return model, numpy_helper


def test_external_weights_are_listed_hashed_and_in_the_id(tmp_path) -> None:
    _external_bundle(tmp_path)
    b = Bundle.load(tmp_path)
    assert b.manifest.files["onnx_fp32:weights.bin"].path == "weights.bin"
    before = b.model_hash
    data = bytearray((tmp_path / "weights.bin").read_bytes())
    data[:4] = bytes(4)  # negate, zero, change: any edit of the weights
    (tmp_path / "weights.bin").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="weights.bin: SHA-256 is"):
        Bundle.load(tmp_path)
    write_bundle(tmp_path, Manifest(), {"onnx_fp32": "model.onnx"})  # re-created: a new identity
    assert Bundle.load(tmp_path).model_hash != before


def test_external_weights_the_manifest_does_not_list_are_refused(tmp_path) -> None:
    _external_bundle(tmp_path)
    _edit_manifest(tmp_path, lambda d: d["files"].pop("onnx_fp32:weights.bin"))
    with pytest.raises(BundleError, match="reads its weights from 'weights.bin', which the manifest does not list"):
        Bundle.load(tmp_path)


def test_reference_bundle_still_loads() -> None:
    b = Bundle.load("reference")
    assert b.content_sha256("onnx_fp32") == b.manifest.files["onnx_fp32"].sha256


def test_reference_by_name_however_it_arrives(tmp_path, monkeypatch) -> None:
    from pathlib import Path

    monkeypatch.chdir(tmp_path)  # no folder named 'reference' here
    assert Bundle.load(Path("reference")).root == REFERENCE_BUNDLE  # click hands a Path to 'evaluate'
    assert Bundle.load("reference").root == REFERENCE_BUNDLE
