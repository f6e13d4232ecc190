"""Tracking in the running pipeline: cell_ids, final records, unique counts in every output."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import leukedge
from leukedge.cli import main
from leukedge.report import build_report
from leukedge.tracking import CellTrack, TrackingSettings
from tests.device.device_helpers import SMALL_SYNTHETIC

SLIDE = "synthetic://?mode=slide&width=960&height=540&cells=3&frames=90&seed=3"


def test_screener_gives_each_cell_one_final_record(bundle, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    tracks: list = []
    with leukedge.Screener(bundle, source=SLIDE, preprocess="cpu", out=out) as s:
        s.on_track(tracks.append)
        results = list(s)
    assert len(results) == 90
    assert tracks and all(isinstance(t, CellTrack) for t in tracks)
    ids = [t.cell_id for t in tracks]
    assert sorted(ids) == list(range(len(ids)))  # one final record per cell, ids dense from 0
    assert s.tracks == tracks
    assert s.tracking_stats()["unique_cells"] == len(tracks)
    looked = {c.cell_id for r in results for c in r.cells if c.cell_id is not None}
    assert looked == set(ids)
    assert all(
        "track" in r.meta and r.meta["track"]["state"] in ("still", "moving", "new_field", "unknown") for r in results
    )
    assert any(r.finals for r in results)  # finals during the run also ride on the frame that ended them
    records = [json.loads(line) for line in out.read_text().splitlines()]
    finals = [r for r in records if r.get("record") == "final"]
    assert sorted(r["cell_id"] for r in finals) == sorted(ids)
    rep = build_report(out)
    assert rep.summary["counting"] == "unique cells" and rep.summary["cells"] == len(ids)
    assert sum(rep.summary["frames_skipped"].values()) >= 1  # the slide moves, so some frames are skipped


def test_pool_source_counts_its_distinct_cells(bundle, tmp_path) -> None:
    """The default synthetic source cycles 2 frames of 3 cells: 6 cells, however long it runs."""
    out = tmp_path / "cells.jsonl"
    res = CliRunner().invoke(
        main,
        ["screen", "--model", str(bundle.root), "--source", SMALL_SYNTHETIC + "&frames=8", "--out", str(out), "-q"],
    )
    assert res.exit_code == 0, res.output
    assert "unique cells:      6 (each cell counted once)" in res.output
    rep = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "r.html")])
    assert rep.exit_code == 0, rep.output
    assert "unique cells:      6" in rep.output and "fields visited 2" in rep.output
    # screen's own end-of-run summary says what report says of the same file
    tracking_line = next(line for line in rep.output.splitlines() if line.strip().startswith("tracking:"))
    assert "cells per field" in tracking_line and tracking_line in res.output
    html = (tmp_path / "r.html").read_text()
    assert "unique cells (each counted once)</th><td class='n' id='cells'>6<" in html


def test_tracking_off_counts_per_frame_and_the_report_says_so(bundle, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    with leukedge.Screener(
        bundle, source=SMALL_SYNTHETIC + "&frames=4", preprocess="cpu", out=out, tracking=False
    ) as s:
        results = list(s)
    assert all(c.cell_id is None for r in results for c in r.cells) and s.tracks == []
    rep = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "r.html")])
    assert "cells classified:  12" in rep.output and "may count one cell several times" in rep.output


def test_screen_tracking_options(bundle, tmp_path) -> None:
    args = ["screen", "--model", str(bundle.root), "--source", SMALL_SYNTHETIC + "&frames=2", "-q"]
    res = CliRunner().invoke(main, [*args, "--focus-ratio", "0.5", "--min-looks", "1", "--max-clipped", "0.1"])
    assert res.exit_code == 0, res.output
    assert "unique cells:      6" in res.output  # one look is enough now
    bad = CliRunner().invoke(main, [*args, "--focus-ratio", "2"])
    assert bad.exit_code == 2 and "--focus-ratio" in bad.output and "Traceback" not in bad.output
    off = CliRunner().invoke(main, [*args, "--tracking", "off"])
    assert "cells classified:  6" in off.output


def test_tracking_argument_is_checked(bundle) -> None:
    with pytest.raises(leukedge.errors.InvalidInputError, match="tracking="):
        leukedge.Screener(bundle, source=SMALL_SYNTHETIC, tracking="yes")
    s = leukedge.Screener(bundle, source=SMALL_SYNTHETIC, tracking=TrackingSettings())
    assert s.tracker is not None


def test_a_still_field_is_classified_once_per_cell(bundle) -> None:
    """The same frame 12 times: each cell goes to the classifier on first sight only; every later
    frame's cells carry their track's p_all and label."""
    with leukedge.Screener(bundle, source=SMALL_SYNTHETIC + "&pool=1&frames=12", preprocess="cpu") as s:
        results = list(s)
        stats = s.stats()
    track = s.tracking_stats()
    n = len(results[0].cells)
    assert n >= 1 and track["cells_found"] == 12 * n
    assert track["cells_classified"] == n  # not 12 × n
    assert stats.batches >= 1 and stats.mean_batch * stats.batches == n
    assert track["unique_cells"] == n and len(s.tracks) == n
    first = {c.cell_id: c.p_all for c in results[1].cells}
    for r in results[1:]:
        assert all(c.label in ("all", "hem") and c.p_all == first[c.cell_id] for c in r.cells)
