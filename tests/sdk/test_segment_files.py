"""leukedge segment: the same output rules as score, every input accounted for, every crop its own name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from leukedge.cli import main
from leukedge.errors import InvalidInputError, OutputError
from leukedge.outlock import OutputLock
from leukedge.segment_files import crop_names, segment_files
from leukedge.synthetic import make_smear_frame


def _smear(path: Path, seed: int, cells: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame, _ = make_smear_frame(seed, width=800, height=600, cells=cells)
    Image.fromarray(frame).save(path)
    return path


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def smears(tmp_path) -> Path:
    root = tmp_path / "in"
    _smear(root / "a" / "x.png", 1)
    _smear(root / "b" / "x.png", 2)
    _smear(root / "c" / "y.png", 3)
    _smear(root / "c" / "y.jpg", 4)
    return root


def _lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_crop_has_its_own_name(smears, tmp_path) -> None:
    out, crops = tmp_path / "cells.jsonl", tmp_path / "crops"
    summary = segment_files([smears], out, crops_dir=crops, crop_px=64)
    cells = [r for r in _lines(out) if r["cell"] is not None]
    assert summary.cells == len(cells) >= 4 and len({r["source"] for r in cells}) == 4
    written = sorted(p.relative_to(crops).as_posix() for p in crops.rglob("*.png"))
    assert len(written) == len(cells) == len({r["crop"] for r in cells})  # one file per cell, none shared
    assert sorted(r["crop"] for r in cells) == written
    assert {c.split("/")[0] for c in written} == {"a", "b", "c"}


def test_crop_names_are_distinct_for_any_listing() -> None:
    files = [Path(p) for p in ("a/x.png", "b/x.png", "c/y.png", "c/y.jpg", "c/y.JPG", "c/y_jpg.png", "d.png")]
    names = crop_names(files)
    assert len(set(names.values())) == len(files)


def test_an_existing_out_is_refused_without_overwrite(smears, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    out.write_text("precious\n")
    r = run("segment", smears, "--out", out)
    assert r.exit_code == 3 and "already exists" in r.output and "--overwrite" in r.output
    assert out.read_text() == "precious\n"
    assert run("segment", smears, "--out", out, "--overwrite").exit_code == 0
    assert out.read_text() != "precious\n"


def test_an_input_is_never_written_over(smears, tmp_path) -> None:
    target = smears / "a" / "x.png"
    before = target.read_bytes()
    for extra in ([], ["--overwrite"]):
        r = run("segment", smears, "--out", target, *extra)
        assert r.exit_code == 3 and "is one of the input images" in r.output
    r = run("segment", smears, "--out", tmp_path / "o.jsonl", "--crops", smears / "c")
    assert r.exit_code == 3 and "holds input images" in r.output
    assert target.read_bytes() == before and not list(smears.rglob("*_cell*.png"))


def test_crops_of_an_earlier_run_are_not_replaced_silently(smears, tmp_path) -> None:
    crops = tmp_path / "crops"
    segment_files([smears], tmp_path / "1.jsonl", crops_dir=crops, crop_px=32)
    with pytest.raises(InvalidInputError, match="already holds crops of these images"):
        segment_files([smears], tmp_path / "2.jsonl", crops_dir=crops, crop_px=32)
    segment_files([smears], tmp_path / "2.jsonl", crops_dir=crops, crop_px=32, overwrite=True)


def test_an_old_errors_file_is_not_left_behind(smears, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    errors = tmp_path / "cells.jsonl.errors.jsonl"
    errors.write_text('{"source": "old", "error": "from an earlier run"}\n')
    segment_files([smears], out, overwrite=True)
    assert not errors.exists()


def test_a_folder_that_cannot_be_listed_is_counted_not_skipped(smears, tmp_path, monkeypatch) -> None:
    """As root no folder is unreadable, so the listing call fails as it does for another user."""
    real = os.scandir
    hidden = str(smears / "b")

    def scandir(path=".", *a, **kw):
        if os.fspath(path) == hidden:
            raise PermissionError(13, "Permission denied", hidden)
        return real(path, *a, **kw)

    monkeypatch.setattr(os, "scandir", scandir)
    out = tmp_path / "cells.jsonl"
    r = run("segment", smears, "--out", out)
    assert r.exit_code == 8, r.output
    assert "could not be read" in r.output
    errors = _lines(tmp_path / "cells.jsonl.errors.jsonl")
    assert errors == [{"source": hidden, "error": "folder cannot be read: Permission denied"}]
    r = run("segment", hidden, "--out", tmp_path / "b.jsonl")  # named directly
    assert r.exit_code == 3 and "1 folder(s) could not be read" in r.output and "Permission denied" in r.output


def test_a_huge_crop_size_is_refused_before_any_allocation(smears, tmp_path) -> None:
    r = run("segment", smears, "--out", tmp_path / "o.jsonl", "--crops", tmp_path / "c", "--crop-px", "60000")
    assert r.exit_code == 2 and "60000" in r.output
    with pytest.raises(InvalidInputError, match=r"--crop-px is 60000, expected an integer in \[16, 4096\]"):
        segment_files([smears], tmp_path / "o.jsonl", crops_dir=tmp_path / "c", crop_px=60000)


def test_full_disk_and_unwritable_folder_are_clear_errors(smears, tmp_path) -> None:
    full = tmp_path / "full.jsonl"
    full.symlink_to("/dev/full")  # every write: ENOSPC
    r = run("segment", smears, "--out", full, "--overwrite")
    assert r.exit_code == 9 and "No space left on device" in r.output and "Traceback" not in r.output
    r = run("segment", smears, "--out", "/sys/leukedge-test/cells.jsonl")  # sysfs: no new files, even for root
    assert r.exit_code == 9 and "Operation not permitted" in r.output and "Traceback" not in r.output


def test_a_second_writer_is_refused(smears, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    with OutputLock(out), pytest.raises(OutputError, match="being written by another leukedge run"):
        segment_files([smears], out)


def test_segment_shows_progress(smears, tmp_path) -> None:
    r = CliRunner().invoke(main, ["segment", str(smears), "--out", str(tmp_path / "o.jsonl"), "--progress"])
    assert r.exit_code == 0 and "segment: 4/4 images" in r.output
