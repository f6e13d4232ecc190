"""leukedge score: modes, formats, resume, refusals, and one preprocessing path (score_files)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leukedge.device.classifier import Classifier
from leukedge.device.runtimes import open_runtime
from leukedge.device.scoring import read_results, score_files
from leukedge.errors import InvalidInputError
from leukedge.images import read_image
from leukedge.segment import segment
from leukedge.synthetic import make_cell_image, make_smear_frame
from tests.device.device_helpers import score_bundles

pytest.importorskip("onnx", reason="the test bundle is written with onnx")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return score_bundles().build_onnx_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def other_bundle(tmp_path_factory):
    return score_bundles().build_onnx_bundle(tmp_path_factory.mktemp("other"), seed=1, int8=False)


def _save(path: Path, img: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """6 C-NMC-named cells (225 px) and 2 smear frames with 3 cells each."""
    root = tmp_path_factory.mktemp("imgs")
    for i in range(6):
        label = "all" if i % 2 else "hem"
        subject = f"{i % 3 + 1}" if label == "all" else f"H{i % 3 + 1}"
        _save(root / "cells" / f"UID_{subject}_{i + 1}_1_{label}.png", make_cell_image(i, label, size=225))
    for i in range(2):
        frame, _ = make_smear_frame(100 + i, width=720, height=540, cells=3)
        _save(root / "smears" / f"frame{i}.png", frame)
    return root


def _rows(path: Path) -> list:
    return list(read_results(path))


def test_auto_mode_scores_cells_and_smears_through_the_core_preprocessing(images, bundle, tmp_path) -> None:
    out = tmp_path / "r.jsonl"
    s = score_files([images], out, model=bundle.root, precision="fp32", workers=2, batch_size=4, progress=False)
    rows = _rows(out)
    assert s.scored == 8 and not s.failed and s.modes == {"cells": 6, "smear": 2}
    cells = [r for r in rows if r["mode"] == "cells"]
    assert len(cells) == 6 and all(r["n_cells"] == 1 and r["cell"] == 0 for r in cells)
    assert {(r["subject"], r["true_label"]) for r in cells} >= {("H1", "hem"), ("2", "all")}
    smear = [r for r in rows if r["mode"] == "smear"]
    assert len(smear) == 6 and all(r["subject"] is None and r["n_cells"] == 3 for r in smear)
    assert all(r["model"] == bundle.short_hash and r["precision"] == "fp32" for r in rows)
    # The scores equal the classifier on segment()'s crops: one preprocessing path.
    with open_runtime(bundle.root, backend="onnxruntime", precision="fp32") as rt:
        clf = Classifier(rt)
        for path in sorted((images / "smears").glob("*.png")) + sorted((images / "cells").glob("*.png")):
            found = segment(read_image(path), rt.manifest.preprocessing)
            expect = clf.p_all([c.crop for c in found])
            got = [r for r in rows if r["source"] == str(path.resolve())]
            assert [r["bbox"] for r in got] == [c.bbox.as_list() for c in found]
            assert [r["area"] for r in got] == [c.area for c in found]
            np.testing.assert_allclose([r["p_all"] for r in got], expect, atol=1e-6)
            assert [r["label"] for r in got] == [rt.manifest.label_for(float(p)) for p in expect]


@pytest.mark.shared_data
def test_auto_mode_keeps_every_real_cnmc_cell_a_cell(shared_data, bundle, tmp_path) -> None:
    """UID_34_22_4's cell touches its canvas (94% of the border black): auto once sent it to smear
    mode, where segmentation found nothing and the cell went unscored. A C-NMC name is a cell."""
    real = read_image(shared_data / "cnmc_extra" / "all" / "UID_34_22_4_all.png")
    _save(tmp_path / "in" / "UID_34_22_4_all.png", real)
    _save(tmp_path / "in" / "cell.png", real)  # renamed: the image rule alone must still say "cell"
    edged = real.copy()
    edged[:8], edged[-8:] = 200, 200  # bright top and bottom rows: no longer a cell on black
    _save(tmp_path / "in" / "UID_34_22_5_all.png", edged)
    _save(tmp_path / "in" / "edged.png", edged)
    s = score_files([tmp_path / "in"], tmp_path / "r.csv", model=bundle.root, workers=0, progress=False)
    modes = {Path(r["source"]).name: r["mode"] for r in _rows(tmp_path / "r.csv")}
    assert modes == {
        "UID_34_22_4_all.png": "cells",
        "cell.png": "cells",
        "UID_34_22_5_all.png": "cells",
        "edged.png": "smear",
    }, modes
    assert s.cells >= 3


def test_forced_modes(images, bundle, tmp_path) -> None:
    cells = score_files([images], tmp_path / "c.csv", model=bundle.root, mode="cells", workers=0, progress=False)
    rows = _rows(tmp_path / "c.csv")
    assert cells.modes == {"cells": 8} and len(rows) == 8  # a smear frame as one (odd) cell
    smear = score_files([images / "cells"], tmp_path / "s.csv", model=bundle.root, mode="smear", workers=0)
    # A C-NMC cell passes through segmentation as itself: smear mode scores it exactly as cells mode.
    by_src = {r["source"]: r["p_all"] for r in rows}
    assert smear.modes == {"smear": 6}
    for r in _rows(tmp_path / "s.csv"):
        assert r["n_cells"] == 1 and r["p_all"] == by_src[r["source"]]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_formats_hold_the_same_rows(images, bundle, tmp_path, suffix) -> None:
    ref = tmp_path / "ref.jsonl"
    score_files([images], ref, model=bundle.root, workers=0, progress=False)
    out = tmp_path / f"r{suffix}"
    score_files([images], out, model=bundle.root, workers=0, progress=False)
    assert _rows(out) == _rows(ref)
    if suffix == ".parquet":
        assert not out.with_name(out.name + ".parts").exists()  # merged and tidied


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_resume_scores_only_what_is_missing(images, bundle, tmp_path, suffix) -> None:
    data = tmp_path / "data"
    data.mkdir()
    files = sorted(images.rglob("*.png"))
    for f in files[:5]:
        (data / f.name).write_bytes(f.read_bytes())
    out = tmp_path / f"r{suffix}"
    first = score_files([data], out, model=bundle.root, workers=0, progress=False)
    for f in files[5:]:
        (data / f.name).write_bytes(f.read_bytes())
    second = score_files([data], out, model=bundle.root, workers=0, resume=True, progress=False)
    assert (first.scored, second.scored, second.already_done) == (5, 3, 5)
    rows = _rows(out)
    per_source = Counter(r["source"] for r in rows)
    assert len(per_source) == 8
    assert all(per_source[r["source"]] == r["n_cells"] or r["n_cells"] == 0 for r in rows)
    third = score_files([data], out, model=bundle.root, workers=0, resume=True, progress=False)
    assert third.scored == 0 and len(_rows(out)) == len(rows)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_existing_output_is_never_replaced_silently(images, bundle, tmp_path, suffix) -> None:
    out = tmp_path / f"r{suffix}"
    score_files([images / "cells"], out, model=bundle.root, workers=0, progress=False)
    with pytest.raises(InvalidInputError, match="already exists") as err:
        score_files([images / "cells"], out, model=bundle.root, workers=0)
    assert "--resume" in err.value.hint and "--overwrite" in err.value.hint
    s = score_files([images / "smears"], out, model=bundle.root, workers=0, overwrite=True, progress=False)
    assert s.scored == 2 and {r["mode"] for r in _rows(out)} == {"smear"}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_resume_refuses_a_file_written_by_another_model(images, bundle, other_bundle, tmp_path, suffix) -> None:
    out = tmp_path / f"r{suffix}"
    score_files([images / "cells"], out, model=bundle.root, precision="int8", workers=0, progress=False)
    before = _rows(out)
    with pytest.raises(InvalidInputError, match="refusing to mix two models' scores") as err:
        score_files([images], out, model=other_bundle.root, workers=0, resume=True)
    msg = err.value.message
    assert bundle.short_hash in msg and other_bundle.short_hash in msg
    assert "another --out" in err.value.hint and "--overwrite" in err.value.hint
    # The same bundle at another precision is another model too.
    with pytest.raises(InvalidInputError, match=r"\(int8, onnxruntime\).*\(fp32, onnxruntime\)"):
        score_files([images], out, model=bundle.root, precision="fp32", workers=0, resume=True)
    assert _rows(out) == before  # untouched


def test_not_a_score_file_is_refused(images, bundle, tmp_path) -> None:
    csv_out = tmp_path / "r.csv"
    csv_out.write_text("name,score\na,1\n")
    with pytest.raises(InvalidInputError, match="not a leukedge score file"):
        score_files([images / "cells"], csv_out, model=bundle.root, workers=0, resume=True)
    jl = tmp_path / "r.jsonl"
    jl.write_text('{"frame": 1}\n{"frame": 2}\n')
    with pytest.raises(InvalidInputError, match="line 1 is not a complete score row"):
        score_files([images / "cells"], jl, model=bundle.root, workers=0, resume=True)
    assert jl.read_text() == '{"frame": 1}\n{"frame": 2}\n'
    with pytest.raises(InvalidInputError, match="unknown results format '.txt'"):
        score_files([images / "cells"], tmp_path / "r.txt", model=bundle.root, workers=0)


def test_parquet_without_pyarrow_says_how_to_install(images, bundle, tmp_path, monkeypatch) -> None:
    import sys

    from leukedge.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingDependencyError, match="needs pyarrow") as err:
        score_files([images / "cells"], tmp_path / "r.parquet", model=bundle.root, workers=0)
    assert "leukedge[parquet]" in err.value.hint


def test_errors_file_names_each_failure_and_is_cleared_on_resume(images, bundle, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    good = sorted((images / "cells").glob("*.png"))[0]
    (data / good.name).write_bytes(good.read_bytes())
    (data / "broken.png").write_bytes(b"not an image at all")
    out = tmp_path / "r.jsonl"
    s = score_files([data], out, model=bundle.root, workers=0, progress=False)
    assert s.scored == 1 and [Path(p).name for p, _ in s.failed] == ["broken.png"]
    assert s.errors_path == tmp_path / "r.jsonl.errors.jsonl"
    errs = [json.loads(line) for line in s.errors_path.read_text().splitlines()]
    assert errs[0]["source"].endswith("broken.png") and "not a readable image" in errs[0]["error"]
    _save(data / "broken.png", make_cell_image(3, "all", size=225))  # the user fixes the file
    again = score_files([data], out, model=bundle.root, workers=0, resume=True, progress=False)
    assert again.scored == 1 and not again.failed and not s.errors_path.exists()
    assert len(_rows(out)) == 2


def test_work_in_flight_is_bounded(images, bundle, monkeypatch) -> None:
    """Memory stays flat: only ``window`` chunks are ever submitted ahead of what was consumed."""
    import concurrent.futures

    from leukedge.device.scoring import engine
    from leukedge.device.scoring.engine import iter_prepared
    from leukedge.device.scoring.work import PrepareOptions

    submitted = []

    class Counting(concurrent.futures.ProcessPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            submitted.append(args[0])
            return super().submit(fn, *args, **kwargs)

    monkeypatch.setattr(engine, "ProcessPoolExecutor", Counting)
    paths = sorted(images.rglob("*.png")) * 3  # 24 images
    opts = PrepareOptions(mode="auto", spec=bundle.manifest.preprocessing)
    seen = 0
    for item in iter_prepared(paths, opts, workers=1, chunk=1, window=3):
        seen += 1
        assert len(submitted) <= seen + 3
        assert item.position == seen - 1  # in input order
    assert seen == len(submitted) == 24


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_a_file_name_that_is_not_utf8_is_stored_and_resumed(images, bundle, tmp_path, suffix) -> None:
    import os

    data = tmp_path / "data"
    data.mkdir()
    cell = sorted((images / "cells").glob("*.png"))[0].read_bytes()
    (data / "plain.png").write_bytes(cell)
    with open(os.path.join(os.fsencode(data), b"caf\xe9.png"), "wb") as fh:  # Latin-1 name
        fh.write(cell)
    out = tmp_path / f"r{suffix}"
    s = score_files([data], out, model=bundle.root, workers=0, progress=False)
    assert s.scored == 2 and not s.failed
    names = sorted(Path(r["source"]).name for r in _rows(out))
    assert names == ["caf\\xe9.png", "plain.png"]
    again = score_files([data], out, model=bundle.root, workers=0, resume=True, progress=False)
    assert again.scored == 0 and again.already_done == 2
