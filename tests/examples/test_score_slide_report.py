"""examples/score_slide_report.py: batch scoring in smear mode, then the slide report from its rows."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.examples.helpers import assert_clean_error, read_jsonl, run_example


def counts_printed(stdout: str) -> tuple:
    fields = int(re.search(r"fields \(frames\):\s+(\d+)", stdout).group(1))
    cells = int(re.search(r"cells classified:\s+(\d+)", stdout).group(1))
    all_ = int(re.search(r"ALL:\s+(\d+) of (\d+) cells", stdout).group(1))
    return fields, cells, all_


def check_report_matches_rows(out_dir: Path, stdout: str, images: int) -> None:
    rows = read_jsonl(out_dir / "cells.jsonl")
    scored = [r for r in rows if r["cell"] is not None]
    assert {r["mode"] for r in rows} == {"smear"}
    assert len({r["source"] for r in rows}) == images
    fields, cells, all_ = counts_printed(stdout)
    assert (fields, cells, all_) == (images, len(scored), sum(r["label"] == "all" for r in scored))
    html = (out_dir / "report.html").read_text()
    assert "<title>leukedge slide report – cells.jsonl</title>" in html
    headline = re.search(r"id='headline'>(\d+) of (\d+) cells ALL", html)
    assert headline and (int(headline.group(1)), int(headline.group(2))) == (all_, cells)


def test_synthetic_fields(tmp_path: Path) -> None:
    out = run_example("score_slide_report.py", "--synthetic", "3", "--out-dir", str(tmp_path))
    assert len(list((tmp_path / "fields").glob("*.png"))) == 3
    check_report_matches_rows(tmp_path, out.stdout, 3)


@pytest.mark.shared_data
def test_real_smear_frames(tmp_path: Path, smear_dir: Path) -> None:
    out = run_example(
        "score_slide_report.py", str(smear_dir / "JPEGImages"), "--limit", "4", "--out-dir", str(tmp_path)
    )
    check_report_matches_rows(tmp_path, out.stdout, 4)


def test_report_reads_score_rows_including_images_without_cells(tmp_path: Path) -> None:
    """'leukedge score' rows carry no frame number; the report counts each image as one field."""
    from leukedge.device.scoring import score_files
    from leukedge.report import build_report
    from leukedge.synthetic import make_smear_frame

    Image.fromarray(np.full((300, 400, 3), 210, np.uint8)).save(tmp_path / "empty.png")
    Image.fromarray(make_smear_frame(3, width=640, height=480, cells=5)[0]).save(tmp_path / "field.png")
    s = score_files([str(tmp_path)], tmp_path / "cells.jsonl", mode="smear", progress=False, workers=0)
    assert s.scored == 2 and s.no_cells == 1 and s.cells > 0
    rep = build_report(tmp_path / "cells.jsonl")
    assert not rep.results.problems
    assert rep.summary["frames"] == 2 and rep.summary["empty_frames"] == 1
    assert rep.summary["cells"] == s.cells


def test_an_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "slide").mkdir()
    out = run_example("score_slide_report.py", str(tmp_path / "slide"), "--out-dir", str(tmp_path / "o"), check=False)
    assert_clean_error(out, 3, "no image files")
