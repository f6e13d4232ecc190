from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from leukedge import extras
from leukedge.cli import main
from leukedge.cli.registry import COMMANDS, CommandSpec
from leukedge.extras import Dependency
from leukedge.synthetic import make_smear_frame

ALL_COMMANDS = ["train", "evaluate", "convert", "segment", "screen", "score", "report", "bench", "demo", "doctor"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_help_lists_every_subcommand() -> None:
    r = run("--help")
    assert r.exit_code == 0
    for name in ALL_COMMANDS:
        assert f"  {name} " in r.output


def test_version() -> None:
    from leukedge import __version__

    r = run("--version")
    assert r.exit_code == 0 and __version__ in r.output


def test_console_script_is_installed() -> None:
    out = subprocess.run([sys.executable, "-m", "leukedge", "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "leukedge, version" in out.stdout


def test_doctor_json_reports_every_component() -> None:
    r = run("doctor", "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    names = {c["name"] for c in data["checks"]}
    assert {"opencv", "onnxruntime", "tensorflow", "tensorrt", "pycuda+gpu", "picamera2"} <= names
    for c in data["checks"]:
        assert c["status"] in ("ok", "missing", "unusable")
        if c["status"] != "ok":
            assert c["detail"], c  # every "no" says why
    trt = next(c for c in data["checks"] if c["name"] == "tensorrt")
    assert trt["status"] == "missing" and "JetPack" in trt["fix"]


def test_doctor_text() -> None:
    r = run("doctor")
    assert r.exit_code == 0 and "You can:" in r.output and "GStreamer" in r.output


def test_command_with_missing_extra_says_which_extra(monkeypatch) -> None:
    monkeypatch.setitem(extras.DEPENDENCIES, "unobtainium", Dependency("unobtainium_xyz", "testing", "pip install x"))
    monkeypatch.setitem(
        COMMANDS, "fancy", CommandSpec("leukedge.cli.doctor:doctor", "A fancy command.", ("unobtainium",), "fancy")
    )
    listing = run("--help")
    assert "fancy" in listing.output and "leukedge[fancy]" in listing.output
    r = run("fancy", "--whatever")
    assert r.exit_code == 5
    assert "Error: 'leukedge fancy' needs unobtainium" in r.output
    assert "pip install 'leukedge[fancy]'" in r.output
    assert "Traceback" not in r.output


@pytest.fixture
def smear_folder(tmp_path):
    d = tmp_path / "smears"
    d.mkdir()
    for i in range(2):
        frame, _ = make_smear_frame(i, width=800, height=600, cells=2)
        Image.fromarray(frame).save(d / f"frame{i}.png")
    frame, _ = make_smear_frame(9, width=800, height=600, cells=0)
    Image.fromarray(frame).save(d / "empty.png")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (d / "zero.png").write_bytes(b"")
    return d


def test_segment_writes_cells_crops_and_records_skips(smear_folder, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    r = run("segment", str(smear_folder), "--out", str(out), "--crops", str(tmp_path / "crops"))
    assert r.exit_code == 8, r.output  # some inputs failed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    cells = [row for row in rows if row["cell"] is not None]
    assert len(cells) == 4
    assert all(set(row) == {"source", "cell", "bbox", "area", "crop"} for row in cells)
    assert all((tmp_path / "crops" / row["crop"]).is_file() for row in cells)
    empty = [row for row in rows if row["cell"] is None]
    assert len(empty) == 1 and empty[0]["source"].endswith("empty.png")
    crops = sorted((tmp_path / "crops").glob("*.png"))
    assert len(crops) == 4 and np.asarray(Image.open(crops[0])).shape == (450, 450, 3)
    errors = [json.loads(line) for line in (tmp_path / "cells.jsonl.errors.jsonl").read_text().splitlines()]
    assert {e["source"].rsplit("/", 1)[1] for e in errors} == {"broken.jpg", "zero.png"}
    assert any("0 bytes" in e["error"] for e in errors)
    assert "2 of 5 input(s) could not be read" in r.output and "Traceback" not in r.output


@pytest.mark.shared_data
def test_segment_real_bccd_frames(smear_dir, tmp_path) -> None:
    files = sorted((smear_dir / "JPEGImages").glob("*.jpg"))[:5]
    r = run("segment", *map(str, files), "--out", str(tmp_path / "c.jsonl"))
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert {row["source"] for row in rows} == {str(f) for f in files}


def test_segment_user_errors_are_one_line(tmp_path) -> None:
    r = run("segment", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "o.jsonl"))
    assert r.exit_code == 3
    assert r.output.startswith("Error: ") and "no such file or folder" in r.output and "Traceback" not in r.output
    (tmp_path / "empty").mkdir()
    r = run("segment", str(tmp_path / "empty"), "--out", str(tmp_path / "o.jsonl"))
    assert r.exit_code == 3 and "no image files" in r.output


def test_type_stubs_alone_do_not_count_as_installed(tmp_path, monkeypatch) -> None:
    (tmp_path / "fakevendor").mkdir()
    (tmp_path / "fakevendor" / "__init__.pyi").write_text("x: int\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        extras.DEPENDENCIES, "fakevendor", Dependency("fakevendor", "testing", "pip install fakevendor")
    )
    assert not extras.has("fakevendor")
    with pytest.raises(extras.MissingDependencyError, match="fakevendor is needed for testing but is not installed"):
        extras.require("fakevendor")


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf", "1e400"])
def test_every_float_option_of_every_command_refuses_non_finite_values(bad: str) -> None:
    import click

    ctx = click.Context(main)
    checked = 0
    for name in main.list_commands(ctx):
        cmd = main.get_command(ctx, name)
        for p in cmd.params if cmd is not None else []:
            if isinstance(p, click.Option) and getattr(p.type, "name", "") in ("float", "float range"):
                with pytest.raises(click.BadParameter, match="not a finite number|not in the range"):
                    p.type.convert(bad, p, None)
                checked += 1
    assert checked >= 8  # segment --source-scale, screen --serve-fps/--duration, bench, demo, train, convert …


def test_segment_source_scale_has_a_range(tmp_path) -> None:
    r = run("segment", str(tmp_path), "--out", str(tmp_path / "o.jsonl"), "--source-scale", "-1")
    assert r.exit_code == 2 and "--source-scale" in r.output
