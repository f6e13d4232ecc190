"""One writer per results file (a lock for the run's life); readers count every image once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from leukedge.device.scoring import read_results, score_files
from leukedge.errors import OutputError
from leukedge.outlock import lock_path_for
from leukedge.report.build import build_report
from leukedge.synthetic import make_cell_image
from tests.device.device_helpers import tiny_bundle

pytest.importorskip("onnx", reason="the test bundle is written with onnx")

SUFFIXES = [".csv", ".jsonl", ".parquet"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cells")
    for i in range(4):
        Image.fromarray(make_cell_image(i, "all" if i % 2 else "hem", size=128)).save(folder / f"c{i}.png")
    return folder


def _hold_lock_in_another_process(out: Path) -> subprocess.Popen:
    """Another process that holds ``out``'s lock, as a running 'leukedge score' does."""
    code = (
        "import sys, time; from leukedge.outlock import OutputLock; "
        "OutputLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_second_writer_is_refused_and_changes_nothing(tmp_path, bundle, cells, suffix) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"r{suffix}"
    score_files([cells / "c0.png"], out, model=bundle.root, workers=0)
    before = out.read_bytes()
    other = _hold_lock_in_another_process(out)
    try:
        for kw in ({"resume": True}, {"overwrite": True}):
            with pytest.raises(OutputError, match=rf"being written by another leukedge run \(process {other.pid}\)"):
                score_files([cells], out, model=bundle.root, workers=0, **kw)
            assert out.read_bytes() == before  # neither appended to nor removed
    finally:
        other.kill()
        other.wait()
    # The holder was killed (SIGKILL): the kernel dropped its lock; its stale lock file is taken over.
    assert lock_path_for(out).exists()
    summary = score_files([cells], out, model=bundle.root, workers=0, resume=True)
    assert summary.already_done == 1 and summary.scored == 3
    assert not lock_path_for(out).exists()  # removed at the end of a run
    assert len({r["source"] for r in read_results(out)}) == 4


def test_two_cli_runs_at_once_one_is_refused(tmp_path, bundle, cells) -> None:
    """Two real 'leukedge score --resume' processes started together: one scores, the other is refused."""
    out = tmp_path / "r.csv"
    cmd = [sys.executable, "-m", "leukedge", "score", str(cells), "--model", str(bundle.root), "--out", str(out)]
    cmd += ["--workers", "0", "--resume", "--no-progress"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    rows = list(read_results(out))
    assert len(rows) == len({r["source"] for r in rows}) == 4  # each image once, whoever won
    if codes == [0, 9]:
        assert any("being written by another leukedge run" in err for _, err in results)
    else:  # the first finished before the second started: it resumed a complete file
        assert codes == [0, 0]


def test_readers_count_an_image_written_twice_once(tmp_path, bundle, cells) -> None:
    """A file two runs appended to (before the lock existed): read_results and the report count each image once."""
    out = tmp_path / "r.jsonl"
    score_files([cells], out, model=bundle.root, workers=0)
    text = out.read_text()
    (tmp_path / "twice.jsonl").write_text(text + text)
    rows = list(read_results(tmp_path / "twice.jsonl"))
    assert len(rows) == len(list(read_results(out))) == 4
    report = build_report(tmp_path / "twice.jsonl")
    assert report.summary["cells"] == build_report(out).summary["cells"]
    assert report.duplicates == 4
    assert any("counted once" in n for n in report.notes)


def test_a_screen_results_file_has_one_writer(tmp_path) -> None:
    from leukedge.sinks.files import CsvSink, JsonlSink

    for cls, name in ((JsonlSink, "cells.jsonl"), (CsvSink, "cells.csv")):
        first = cls(tmp_path / name, "m")
        first.open()
        try:
            with pytest.raises(OutputError, match="being written by another leukedge run"):
                cls(tmp_path / name, "m").open()
        finally:
            first.close()
        second = cls(tmp_path / name, "m")
        second.open()  # free again once the first closed
        second.close()


def test_parquet_reader_counts_an_image_in_two_parts_once(tmp_path, bundle, cells) -> None:
    """Parts that hold the same image twice (two runs wrote parts before the lock existed) read as one image."""
    pytest.importorskip("pyarrow")
    import shutil

    from leukedge.device.scoring.parquet_store import ParquetStore

    out = tmp_path / "r.parquet"
    score_files([cells], out, model=bundle.root, workers=0)
    parts = tmp_path / "r.parquet.parts"
    parts.mkdir()
    shutil.copy(out, parts / "part-000001.parquet")
    shutil.copy(out, parts / "part-000002.parquet")
    rows = list(ParquetStore(out, {"model": "", "precision": "", "backend": ""}).read())
    assert len(rows) == len({r["source"] for r in rows}) == 4
    out.unlink()  # only the parts: the second part repeats the first
    rows = list(ParquetStore(out, {"model": "", "precision": "", "backend": ""}).read())
    assert len(rows) == 4
