"""score, screen and report: full disks, unwritable folders, unreadable folders and vanishing files
end in a clear error or a counted failure, never a traceback or a silent skip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from leukedge.cli import main
from leukedge.errors import InvalidImageError
from leukedge.images import read_image
from leukedge.synthetic import make_cell_image
from tests.device.device_helpers import SMALL_SYNTHETIC, tiny_bundle

pytest.importorskip("onnx", reason="the test bundle is written with onnx")

UNWRITABLE = "/sys/leukedge-test"  # sysfs takes no new files, even from root


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def cells(tmp_path) -> Path:
    folder = tmp_path / "cells"
    for sub in ("a", "b"):
        (folder / sub).mkdir(parents=True)
        for i in range(2):
            img = make_cell_image(i, "hem", size=128)
            Image.fromarray(img).save(folder / sub / f"c{i}.png")
    return folder


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def _clean(r, code: int, *needles: str) -> None:
    assert r.exit_code == code, r.output
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    for n in needles:
        assert n in r.output, (n, r.output)


# A file that cannot grow, as on a full disk: the kernel's file-size limit makes writes fail (EFBIG).
CAPPED = (
    "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600)); sys.argv[0] = 'leukedge'; "
    "from leukedge.cli import main; main()"
)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_score_to_a_full_disk_or_unwritable_folder(tmp_path, bundle, cells, suffix) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    args = ["score", cells, "--model", bundle.root, "--workers", "0", "--no-progress"]
    _clean(run(*args, "--out", f"{UNWRITABLE}/r{suffix}"), 9, "Operation not permitted")
    out = tmp_path / f"r{suffix}"
    proc = subprocess.run(
        [sys.executable, "-c", CAPPED, *map(str, args), "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 9, proc.stderr
    assert "File too large" in proc.stderr and "--resume" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / f"r{suffix}.lock").exists()


def test_screen_to_a_full_disk_prints_its_summary_then_a_clear_error(tmp_path, bundle) -> None:
    full = tmp_path / "cells.jsonl"
    full.symlink_to("/dev/full")
    r = run(
        "screen", "--model", bundle.root, "--source", SMALL_SYNTHETIC, "--out", full, "--max-frames", "3", "--quiet"
    )
    _clean(r, 9, "Screened 3 frame(s)", "results could not be written in full", "No space left on device")


def test_report_to_an_unwritable_folder(tmp_path, bundle, cells) -> None:
    out = tmp_path / "r.jsonl"
    assert run("score", cells, "--model", bundle.root, "--out", out, "--workers", "0").exit_code == 0
    _clean(run("report", out, "--out", f"{UNWRITABLE}/report.html"), 9, "report.html")


def test_score_counts_a_folder_it_cannot_list(tmp_path, bundle, cells, monkeypatch) -> None:
    real, hidden = os.scandir, str(cells / "b")

    def scandir(path=".", *a, **kw):
        if os.fspath(path) == hidden:
            raise PermissionError(13, "Permission denied", hidden)
        return real(path, *a, **kw)

    monkeypatch.setattr(os, "scandir", scandir)
    out = tmp_path / "r.csv"
    r = run("score", cells, "--model", bundle.root, "--out", out, "--workers", "0", "--no-progress")
    _clean(r, 8, "folder cannot be read: Permission denied")
    errors = [json.loads(x) for x in (tmp_path / "r.csv.errors.jsonl").read_text().splitlines()]
    assert errors == [{"source": hidden, "error": "folder cannot be read: Permission denied"}]
    _clean(run("score", hidden, "--model", bundle.root, "--out", tmp_path / "b.csv"), 3, "could not be read")


def test_a_file_that_vanishes_while_it_is_read_is_a_clear_error(tmp_path, monkeypatch) -> None:
    path = tmp_path / "c.png"
    Image.fromarray(make_cell_image(0, "hem", size=64)).save(path)
    real_stat, real_unlink = os.stat, os.unlink

    def stat_then_delete(p, *a, **kw):  # the file is there when looked at, gone when opened
        st = real_stat(p, *a, **kw)
        if os.fspath(p) == str(path):
            monkeypatch.setattr(os, "stat", real_stat)
            real_unlink(path)
        return st

    monkeypatch.setattr(os, "stat", stat_then_delete)
    with pytest.raises(InvalidImageError, match="no such file"):
        read_image(path)


def test_a_folder_source_whose_files_vanish_mid_run(tmp_path, bundle) -> None:
    """Files deleted from a folder:// source after it listed them: skipped and counted, the run goes on."""
    from leukedge.device.sources.files import ImageFilesSource

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(make_cell_image(i, "hem", size=64)).save(folder / f"f{i}.png")
    src = ImageFilesSource(str(folder))
    src._open()
    (folder / "f1.png").unlink()
    (folder / "f2.png").unlink()
    got = [src._read() for _ in range(3)]
    assert [g[1]["source"] for g in got if g is not None] == [str(folder / "f0.png"), str(folder / "f3.png")]
    assert len(src.skipped) == 2 and all("no such file" in why for _p, why in src.skipped)
