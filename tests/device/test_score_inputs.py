"""Bad input to leukedge score: non-images, empty files, permission denied, duplicates, link loops."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from leukedge.cli import main
from leukedge.device.scoring import read_results, score_files
from leukedge.images import FileListing, iter_image_files
from leukedge.synthetic import make_cell_image
from tests.device.device_helpers import score_bundles

pytest.importorskip("onnx", reason="the test bundle is written with onnx")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return score_bundles().build_onnx_bundle(tmp_path_factory.mktemp("bundle"), int8=False)


def _cell(path: Path, seed: int) -> Path:
    Image.fromarray(make_cell_image(seed, "hem", size=160)).save(path)
    return path


@pytest.fixture
def messy(tmp_path, monkeypatch) -> Path:
    """Two good cells and one of every kind of bad input, in one folder tree."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    _cell(d / "UID_1_1_1_all.png", 1)
    _cell(d / "sub" / "UID_H2_1_1_hem.png", 2)
    (d / "notes.txt").write_text("not an image, ignored by the folder walk")
    (d / "fake.png").write_text("not an image, but named like one")
    (d / "empty.png").write_bytes(b"")
    locked = _cell(d / "locked.png", 3)
    locked.chmod(0)
    real_access = os.access
    # Root reads anything: make the check see what a user would (as tests/sdk/test_images.py does).
    monkeypatch.setattr(os, "access", lambda p, mode: real_access(p, mode) and Path(p).name != "locked.png")
    os.symlink("loop_b.png", d / "loop_a.png")
    os.symlink("loop_a.png", d / "loop_b.png")
    os.symlink("gone.png", d / "dangling.png")
    os.symlink(".", d / "sub" / "self")  # folder loops: never followed
    os.symlink("..", d / "sub" / "up")
    os.symlink("UID_1_1_1_all.png", d / "alias.png")  # the same image under another name
    return d


REASONS = {
    "fake.png": "not a readable image",
    "empty.png": "file is empty (0 bytes)",
    "locked.png": "permission denied",
    "loop_a.png": "symbolic link loop",
    "loop_b.png": "symbolic link loop",
    "dangling.png": "broken symbolic link",
}


def test_every_bad_input_is_recorded_with_its_reason_and_the_run_goes_on(messy, bundle, tmp_path) -> None:
    good = messy / "UID_1_1_1_all.png"
    out = tmp_path / "r.csv"
    inputs = [messy, good, str(messy / "*.png"), messy / "sub" / ".." / "UID_1_1_1_all.png"]
    s = score_files(inputs, out, model=bundle.root, workers=0, progress=False)
    failed = {Path(p).name: why for p, why in s.failed}
    assert set(failed) == set(REASONS)
    for name, reason in REASONS.items():
        assert reason in failed[name], (name, failed[name])
    rows = list(read_results(out))
    assert sorted(Path(r["source"]).name for r in rows) == ["UID_1_1_1_all.png", "UID_H2_1_1_hem.png"]
    assert s.scored == 2 and [p.name for p in s.ignored] == ["notes.txt"]
    dupes = {(a.name, b.name) for a, b in s.duplicates}
    assert ("UID_1_1_1_all.png", "UID_1_1_1_all.png") in dupes and ("alias.png", "UID_1_1_1_all.png") in dupes
    errors = [json.loads(line) for line in s.errors_path.read_text().splitlines()]
    assert {Path(e["source"]).name for e in errors} == set(REASONS)


def test_cli_exit_code_says_something_failed(messy, bundle, tmp_path) -> None:
    out = tmp_path / "r.jsonl"
    res = CliRunner().invoke(
        main, ["score", str(messy), "--model", str(bundle.root), "--out", str(out), "--workers", "0", "--no-progress"]
    )
    assert res.exit_code == 8, res.output
    assert "2 image(s) scored (2 as cells), 2 cell(s)" in res.output
    assert "Error: 6 of 8 image(s) could not be scored" in res.output and "r.jsonl.errors.jsonl" in res.output
    assert "Hint:" in res.output and "--resume" in res.output
    assert "Traceback" not in res.output


def test_cli_clean_run_exits_zero(bundle, tmp_path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    _cell(d / "a.png", 1)
    res = CliRunner().invoke(
        main, ["score", str(d), "--model", str(bundle.root), "--out", str(tmp_path / "r.csv"), "--workers", "1"]
    )
    assert res.exit_code == 0, res.output
    assert "1 image(s) scored (1 as cells), 1 cell(s)" in res.output


def test_no_images_and_bad_options_are_clear_errors(bundle, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(main, ["score", str(tmp_path / "empty"), "--model", str(bundle.root), "--out", "r.csv"])
    assert r.exit_code == 3 and "no image files" in r.output
    r = CliRunner().invoke(main, ["score", str(tmp_path / "nope"), "--model", str(bundle.root), "--out", "r.csv"])
    assert r.exit_code == 3 and "no such file or folder" in r.output
    r = CliRunner().invoke(main, ["score", str(tmp_path), "--model", str(tmp_path / "nobundle"), "--out", "r.csv"])
    assert r.exit_code == 4 and "not a model bundle folder" in r.output


def test_patterns_do_not_recurse_through_link_loops(tmp_path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    _cell(d / "a.png", 1)
    for name in ("l1", "l2", "l3"):  # glob.glob(recursive=True) runs ~forever on these
        os.symlink(".", d / name)
    t0 = time.monotonic()
    listing = FileListing()
    files = iter_image_files([str(d / "**" / "*.png"), str(d / "**"), str(d / "l1" / "*.png")], listing=listing)
    assert time.monotonic() - t0 < 5
    assert [f.name for f in files] == ["a.png"]
    assert len(listing.duplicates) == 2
