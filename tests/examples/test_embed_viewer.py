"""examples/embed_viewer.py: an application's own loop, submit() + callbacks, boxes drawn off-screen."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import pytest

from tests.examples.helpers import assert_clean_error, read_jsonl, run_example

LABEL_BGR = {
    "all": (40, 40, 230),
    "hem": (60, 200, 40),
    None: (160, 160, 160),
}  # the example's RGB colours, as OpenCV writes them; grey: a cell tracking left unclassified (cut by the frame edge)


def test_boxes_drawn_are_the_cells_reported(tmp_path: Path) -> None:
    view, cells = tmp_path / "view", tmp_path / "cells.jsonl"
    out = run_example("embed_viewer.py", "--frames", "3", "--offscreen", str(view), "--out", str(cells))
    pngs = sorted(view.glob("frame_*.png"))
    assert [p.name for p in pngs] == ["frame_00000.png", "frame_00001.png", "frame_00002.png"]
    drawn = {r["frame"]: r for r in read_jsonl(view / "frames.jsonl")}
    reported = defaultdict(list)
    for rec in read_jsonl(cells):  # the Screener's own results file
        if rec["cell"] is not None:
            reported[rec["frame"]].append(rec)
    assert sorted(drawn) == [0, 1, 2]
    total = 0
    for frame, rec in drawn.items():
        assert [b["bbox"] for b in rec["boxes"]] == [c["bbox"] for c in reported[frame]]
        assert [b["label"] for b in rec["boxes"]] == [c["label"] for c in reported[frame]]
        image = cv2.imread(str(view / rec["file"]))
        assert image.shape == (720, 960, 3)
        for box in rec["boxes"]:  # the box's outline is really in the picture, in its label's colour
            x, y, _w, h = box["bbox"]
            edge = image[y + h // 2, x]  # middle of the left edge
            assert tuple(int(v) for v in edge) == LABEL_BGR[box["label"]], (frame, box)
        total += len(rec["boxes"])
    assert total > 0, "synthetic frames always hold white cells"
    assert f"drew 3 frame(s); screened 3, {total} cell(s)" in out.stdout


@pytest.mark.shared_data
def test_image_folder_as_the_camera(tmp_path: Path, smear_dir: Path) -> None:
    out = run_example(
        "embed_viewer.py", "--images", str(smear_dir / "JPEGImages"), "--frames", "2", "--offscreen", str(tmp_path)
    )
    rows = read_jsonl(tmp_path / "frames.jsonl")
    assert [r["frame"] for r in rows] == [0, 1]
    assert all(len(r["boxes"]) >= 1 for r in rows), "every BCCD frame shows a white cell"
    assert cv2.imread(str(tmp_path / "frame_00000.png")).shape == (480, 640, 3)
    assert "drew 2 frame(s)" in out.stdout


def test_a_wrong_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    out = run_example(
        "embed_viewer.py", "--model", str(tmp_path), "--frames", "1", "--offscreen", str(tmp_path), check=False
    )
    assert_clean_error(out, 4, str(tmp_path), "Hint:")
