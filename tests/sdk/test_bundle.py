from __future__ import annotations

import json

import pytest

from leukedge.bundle import Bundle, write_bundle
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
