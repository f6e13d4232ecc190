"""A bundle is served only as its manifest describes it, and a results file holds one model's rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from leukedge.bundle import CLASSES_KEY, Bundle, write_bundle
from leukedge.device.runtimes import open_runtime
from leukedge.device.scoring import score_files
from leukedge.errors import BundleError, InvalidInputError, ManifestError
from leukedge.synthetic import make_cell_image
from tests.device.device_helpers import tiny_bundle

onnx = pytest.importorskip("onnx", reason="the test bundle is written with onnx")


def _edit(root: Path, edit) -> None:
    d = json.loads((root / "manifest.json").read_text())
    edit(d)
    (root / "manifest.json").write_text(json.dumps(d))


@pytest.fixture
def cells(tmp_path) -> Path:
    folder = tmp_path / "cells"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(make_cell_image(i, "all" if i % 2 else "hem", size=128)).save(folder / f"c{i}.png")
    return folder


def test_a_wrong_output_name_is_refused_not_ignored(tmp_path) -> None:
    tiny_bundle(tmp_path / "b")
    _edit(tmp_path / "b", lambda d: d.__setitem__("output_name", "logits_typo"))
    with pytest.raises(
        BundleError, match=r"names the output 'logits_typo', but the model's outputs are \['predictions'\]"
    ):
        with open_runtime(tmp_path / "b", backend="onnxruntime", precision="fp32"):
            pass


def test_the_order_recorded_in_the_onnx_model_wins_over_an_edited_manifest(tmp_path) -> None:
    b = tiny_bundle(tmp_path / "b")
    model = onnx.load(str(b.path_of("onnx_fp32")))
    entry = model.metadata_props.add()
    entry.key, entry.value = CLASSES_KEY, json.dumps(["hem", "all"])
    onnx.save(model, str(b.path_of("onnx_fp32")))
    write_bundle(b.root, b.manifest, {"onnx_fp32": "model.onnx"})
    with open_runtime(b.root, backend="onnxruntime", precision="fp32") as rt:  # agrees: runs
        assert rt.manifest.classes == ("hem", "all")
    # Both 'classes' and the provenance edited to the swapped order: the model's own record refuses it.
    _edit(
        b.root,
        lambda d: (
            d.__setitem__("classes", ["all", "hem"]),
            d["provenance"].__setitem__("training", {"classes": ["all", "hem"]}),
        ),
    )
    with pytest.raises(BundleError, match="trained with the output order"):
        with open_runtime(b.root, backend="onnxruntime", precision="fp32"):
            pass


def test_swapped_classes_are_refused_before_scoring(tmp_path, cells) -> None:
    tiny_bundle(tmp_path / "b")
    _edit(tmp_path / "b", lambda d: d.__setitem__("classes", ["all", "hem"]))
    with pytest.raises(ManifestError, match="trained with the output order"):
        score_files([cells], tmp_path / "r.csv", model=tmp_path / "b", workers=0)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["decision"].__setitem__("threshold", 0.45),
        lambda d: d["preprocessing"]["log"].__setitem__("alpha", 0.5),
    ],
    ids=["threshold", "log-alpha"],
)
def test_resume_refuses_a_bundle_whose_identity_changed(tmp_path, cells, suffix, edit) -> None:
    tiny_bundle(tmp_path / "b")
    out = tmp_path / f"r{suffix}"
    score_files([cells / "c0.png"], out, model=tmp_path / "b", workers=0)
    before = Bundle.load(tmp_path / "b").short_hash
    _edit(tmp_path / "b", edit)
    assert Bundle.load(tmp_path / "b").short_hash != before
    with pytest.raises(InvalidInputError, match="refusing to mix two models' scores"):
        score_files([cells], out, model=tmp_path / "b", workers=0, resume=True)
