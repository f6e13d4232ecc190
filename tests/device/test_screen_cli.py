"""``leukedge screen`` and ``leukedge demo``: outputs, status lines, exit codes, and SIGTERM."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time

import numpy as np
from click.testing import CliRunner
from PIL import Image

from leukedge.bundle import REFERENCE_BUNDLE
from leukedge.cli import main
from leukedge.device.stats import StatsSnapshot
from leukedge.device.status import StatusPrinter, status_line
from tests.device.device_helpers import SMALL_SYNTHETIC


def _screen(*args: str):
    return CliRunner().invoke(main, ["screen", *args])


def test_screen_writes_one_json_line_per_cell(bundle, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    res = _screen("--model", str(bundle.root), "--source", SMALL_SYNTHETIC + "&frames=3", "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len([r for r in records if r.get("record") != "final"]) == 9
    assert [r["cell_id"] for r in records if r.get("record") == "final"] == [0, 1, 2]  # frame 2 is frame 0 again
    assert set(records[0]) >= {"frame", "t_capture", "t_result", "source", "cell", "bbox", "p_all", "label", "model"}
    assert records[0]["model"] == bundle.short_hash and len(records[0]["bbox"]) == 4
    assert "Screened 3 frame(s)" in res.output and "9 cell(s)" in res.output and str(out) in res.output


def test_a_frame_without_cells_gets_a_frame_level_line(bundle, smear_dir, tmp_path) -> None:
    folder = tmp_path / "slide"
    folder.mkdir()
    Image.open(sorted((smear_dir / "JPEGImages").glob("*.jpg"))[0]).save(folder / "a_smear.png")
    Image.fromarray(np.full((480, 640, 3), 210, np.uint8)).save(folder / "b_blank.png")
    out = tmp_path / "cells.jsonl"
    res = _screen("--model", str(bundle.root), "--source", str(folder), "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    blank = [r for r in records if r["source"].endswith("b_blank.png")]
    assert len(blank) == 1 and blank[0]["cell"] is None and blank[0]["p_all"] is None
    smear = [r for r in records if r["source"].endswith("a_smear.png")]
    assert smear and all(r["cell"] is not None for r in smear)


def test_forced_cuda_without_a_device_exits_6(bundle, monkeypatch) -> None:
    monkeypatch.setattr("leukedge.device.preprocessing.cuda_problem", lambda device=0: "pycuda is not installed")
    res = _screen("--model", str(bundle.root), "--source", SMALL_SYNTHETIC, "--preprocess", "cuda")
    assert res.exit_code == 6
    assert "Error: --preprocess cuda: pycuda is not installed" in res.output and "Hint:" in res.output


def test_a_bundle_that_does_not_match_its_model_exits_4(mismatched_bundle) -> None:
    res = _screen("--model", str(mismatched_bundle.root), "--source", SMALL_SYNTHETIC, "-q")
    assert res.exit_code == 4 and "does not match its manifest" in res.output


def test_an_empty_folder_exits_3(bundle, tmp_path) -> None:
    res = _screen("--model", str(bundle.root), "--source", str(tmp_path), "-q")
    assert res.exit_code == 3 and "no image files found" in res.output


def test_an_unknown_results_format_exits_3(bundle, tmp_path) -> None:
    res = _screen("--model", str(bundle.root), "--source", SMALL_SYNTHETIC, "--out", str(tmp_path / "x.xlsx"))
    assert res.exit_code == 3 and "unknown results format" in res.output


def _snap(**kw) -> StatsSnapshot:
    base = dict(
        elapsed_s=2.0, frames=20, cells=200, n_all=50, dropped=3, fps=9.96, cells_per_s=99.6,
        latency_p50_ms=310.4, latency_p99_ms=520.0,
    )  # fmt: skip
    base.update(kw)
    return StatsSnapshot(**base)  # type: ignore[arg-type]


def test_status_line_has_every_counter() -> None:
    line = status_line(_snap())
    for part in ("10.0 fps", "99.6 cells/s", "p50 310 ms", "p99 520 ms", "dropped 3", "ALL 50/200 cells (25%)"):
        assert part in line
    assert "p50 – ms" in status_line(_snap(latency_p50_ms=None, latency_p99_ms=None, cells=0, n_all=0))


def test_status_printer_rewrites_in_place_on_a_tty_and_prints_lines_otherwise() -> None:
    tty, plain = io.StringIO(), io.StringIO()
    StatusPrinter(tty, tty=True, tty_every=0.0)(_snap())
    p = StatusPrinter(plain, tty=False, plain_every=0.0)
    p(_snap())
    p.finish(_snap(frames=21))
    assert tty.getvalue().startswith("\r") and "\n" not in tty.getvalue()
    assert plain.getvalue().count("\n") == 2 and "\r" not in plain.getvalue()


def test_sigterm_stops_capturing_and_flushes_every_screened_frame(bundle, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    cmd = [
        sys.executable, "-m", "leukedge", "screen", "--model", str(bundle.root), "--out", str(out),
        "--source", "synthetic://?width=640&height=480&cells=2&pool=2&fps=15", "--preprocess", "cpu",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.stat().st_size < 2000):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    assert "Stopped by SIGTERM" in stdout
    frames = {json.loads(line)["frame"] for line in out.read_text().splitlines()}  # every line complete
    assert f"Screened {len(frames)} frame(s)" in stdout


def test_demo_with_a_given_bundle_says_what_it_found_and_where(bundle, tmp_path) -> None:
    res = CliRunner().invoke(
        main, ["demo", "--seconds", "1", "--out-dir", str(tmp_path / "d"), "--model", str(bundle.root)]
    )
    assert res.exit_code == 0, res.output
    assert "Found" in res.output and "white cell(s)" in res.output and str(tmp_path / "d" / "cells.jsonl") in res.output
    assert f"results go to {tmp_path / 'd'}/" in res.output  # said before it writes, not only after
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["demo"]["frames"] >= 1 and summary["demo"]["cells"] == summary["run"]["stats"]["cells"]
    assert len((tmp_path / "d" / "cells.jsonl").read_text().splitlines()) >= summary["demo"]["cells"]


def test_demo_uses_the_packaged_reference_bundle(tmp_path) -> None:
    res = CliRunner().invoke(main, ["demo", "--seconds", "1", "--out-dir", str(tmp_path / "d")])
    if not (REFERENCE_BUNDLE / "manifest.json").exists():
        assert res.exit_code == 4 and "not a model bundle folder" in res.output  # until the converters ship it
    else:
        assert res.exit_code == 0, res.output
        assert "onnxruntime" in res.output and (tmp_path / "d" / "cells.jsonl").exists()


def test_screen_help_lists_the_options() -> None:
    res = CliRunner().invoke(main, ["screen", "--help"])
    for opt in (
        "--model",
        "--source",
        "--out",
        "--max-frames",
        "--duration",
        "--backend",
        "--precision",
        "--preprocess",
    ):
        assert opt in res.output


def test_source_may_be_given_as_an_argument(bundle, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    res = _screen(SMALL_SYNTHETIC + "&frames=1", "--model", str(bundle.root), "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == 3


def test_no_source_or_two_sources_are_clear_errors(bundle) -> None:
    res = _screen("--model", str(bundle.root))
    assert res.exit_code == 3 and "no source given" in res.output
    res = _screen("synthetic://", "--source", "csi://0", "--model", str(bundle.root))
    assert res.exit_code == 3 and "two sources given" in res.output


def test_serve_on_port_0_prints_the_address_it_got(bundle) -> None:
    r = CliRunner().invoke(
        main,
        [
            "screen",
            "--model",
            str(bundle.root),
            "--source",
            SMALL_SYNTHETIC,
            "--max-frames",
            "2",
            "--serve",
            "127.0.0.1:0",
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.strip().startswith("live view:"))
    port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
    assert port > 0


def test_an_existing_out_is_not_replaced_without_overwrite(bundle, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    out.write_text('{"an": "earlier run"}\n')
    args = ["screen", "--model", str(bundle.root), "--source", SMALL_SYNTHETIC, "--max-frames", "1", "--quiet"]
    r = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert r.exit_code == 3 and "already exists" in r.output and "--overwrite" in r.output
    assert out.read_text() == '{"an": "earlier run"}\n'
    r = CliRunner().invoke(main, [*args, "--out", str(out), "--overwrite"])
    assert r.exit_code == 0, r.output
    assert "earlier run" not in out.read_text()
