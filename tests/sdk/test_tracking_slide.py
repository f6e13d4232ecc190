"""SlideTracker on a moving synthetic slide: each cell counted once, revisits, bad input."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from leukedge.synthetic_slide import STILL, MovingSlide, SlideSettings
from leukedge.tracking import SlideTracker, TrackingSettings
from leukedge.types import BBox

SMALL = SlideSettings(width=960, height=540, cells=24, still=(6, 12), speed=(60.0, 120.0), p_revisit=0.5, p_jump=0.15)


def _label(p: float) -> str:
    return "all" if p >= 0.5 else "hem"


def _detections(truth, width: int, height: int):
    """The drawn cells as a segmenter would box them: clipped to the frame."""
    out = []
    for ident, b, _ in truth.cells:
        x0, y0 = max(0, b.x), max(0, b.y)
        x1, y1 = min(width, b.x + b.w), min(height, b.y + b.h)
        if x1 - x0 > 10 and y1 - y0 > 10:
            out.append((ident, BBox(x0, y0, x1 - x0, y1 - y0)))
    return out


@pytest.fixture(scope="module")
def slide() -> MovingSlide:
    return MovingSlide(seed=3, frames=160, settings=SMALL)


def _run(slide: MovingSlide, tracker: SlideTracker, frames, spoil=None):
    ids_of = defaultdict(set)
    truths_of = defaultdict(set)
    eligible = defaultdict(int)
    finals = []
    for i in frames:
        image, truth = slide.frame(i)
        dets = _detections(truth, SMALL.width, SMALL.height)
        if spoil is not None:
            image, dets = spoil(i, image, dets)
        p = [0.9 if ident < len(slide.cells) and slide.cells[ident].label == "all" else 0.1 for ident, _ in dets]
        ft = tracker.observe(i, image, [b for _, b in dets], p)
        finals += ft.finals
        for (ident, _), cid in zip(dets, ft.cell_ids):
            if cid is not None:
                ids_of[ident].add(cid)
                truths_of[cid].add(ident)
        if truth.motion == STILL and not truth.defocused and not truth.overexposed:
            for ident, _, whole in truth.cells:
                eligible[ident] += whole
    finals += tracker.finish()
    return ids_of, truths_of, eligible, finals


def test_each_cell_is_counted_once_on_a_moving_slide(slide) -> None:
    tracker = SlideTracker(label_for=_label)
    ids_of, truths_of, eligible, finals = _run(slide, tracker, range(slide.frames))
    truth_count = sum(1 for n in eligible.values() if n >= 2)
    assert truth_count >= 8
    assert all(len(v) == 1 for v in ids_of.values()), "a cell got two cell_ids"
    assert all(len(v) == 1 for v in truths_of.values()), "one cell_id was given to two cells"
    assert tracker.cells.confirmed == pytest.approx(truth_count, abs=1)
    assert sorted(t.cell_id for t in finals) == list(range(tracker.cells.confirmed))  # one final each
    for t in finals:  # the combined p_all follows the true class
        (ident,) = truths_of[t.cell_id]
        assert t.label == slide.cells[ident].label
        assert 1 <= len(t.looks) <= 3
    stats = tracker.stats()
    assert stats["unique_cells"] == len(finals) and stats["fields"] >= 3
    assert sum(slide.truth(i).revisit for i in range(slide.frames)) >= 1


def test_defocused_and_overexposed_frames_are_skipped(slide) -> None:
    tracker = SlideTracker(label_for=_label)
    skips = {}
    for i in range(slide.frames):
        image, truth = slide.frame(i)
        skips[i] = (tracker.observe(i, image, [], []).skip, truth)
    still = [(s, t) for s, t in skips.values() if t.motion == STILL and not t.overexposed]
    assert any(t.defocused for _, t in still)
    right = sum((s == "defocused") == t.defocused for s, t in still)
    assert right >= 0.97 * len(still)
    assert all(s == "over-exposed" for s, t in skips.values() if t.overexposed)
    assert tracker.stats()["skipped"]["moving"] > 0


def test_bad_input_warns_or_starts_a_field_and_never_merges(slide, rng) -> None:
    """A frame of another size, a black frame, a noise frame, a bumped stage: no crash, no merge."""
    events = {20: "size", 24: "black", 28: "noise", 32: "bump"}

    def spoil(i, image, dets):
        kind = events.get(i)
        if kind == "size":
            return np.ascontiguousarray(image[:400, :720]), [
                (k, b) for k, b in dets if b.x + b.w <= 720 and b.y + b.h <= 400
            ]
        if kind == "black":
            return np.zeros_like(image), []
        if kind == "noise":
            return rng.integers(0, 256, image.shape, dtype=np.uint8), [(10_000, BBox(100, 100, 150, 150))]
        if kind == "bump":
            moved = np.roll(image, (200, 300), axis=(0, 1))
            return moved, [
                (k, BBox(b.x + 300, b.y + 200, b.w, b.h))
                for k, b in dets
                if b.x + b.w + 300 < 960 and b.y + b.h + 200 < 540
            ]
        return image, dets

    tracker = SlideTracker(TrackingSettings(), label_for=_label)
    ids_of, truths_of, _, _ = _run(slide, tracker, range(60), spoil)
    assert all(len(v) == 1 for v in truths_of.values()), "one cell_id was given to two cells"
    assert 10_000 not in ids_of  # the blob in the noise frame is never a counted cell
    assert tracker.skipped["under-exposed"] >= 1
    assert tracker.new_fields >= 2
