"""Counting each cell once on a moving synthetic slide: unique cells against the truth,
revisits without double counting, defocused-frame skipping, and the cost per frame.

Usage:
    python benchmarks/tracking_slide.py [--frames 1200] [--seed 0] [--width 1920 --height 1080]
        [--json OUT]

The slide (:class:`leukedge.synthetic_slide.MovingSlide`) is drawn once; each frame is
segmented with the real segmenter, and its cells get a p_all from their true class (the
classifier is not what is measured here; ``benchmarks/pipeline_synthetic.py --tracking``
measures the pipeline with it).  Figures:

* unique cells counted vs the truth: cells shown whole, clear of the frame's edge by more than
  8 px (``EDGE_PX``), in at least ``min_looks`` frames that are still, sharp and well exposed
  (target: within 2%);
* cells paired with more than one cell_id (double counts) and cell_ids given to more than one
  cell (merged tracks), found by matching each tracked box to the drawn boxes (IoU >= 0.5);
* revisits without double counting: of the planned returns to a field, the share whose cells
  all kept one cell_id (target: >= 98%);
* defocused-frame skipping: of the still, well-exposed frames, the share judged right: a frame
  drawn defocused is skipped (for any reason), a sharp one is not skipped as defocused
  (target: >= 98%); with the misses, the false skips, and the sharp still frames skipped as
  moving (the first frame after a move, whose shift still includes the move's last step);
* the time tracking costs per frame (working image, motion, focus, exposure, pairing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from typing import Any, Dict, List, Set

import numpy as np

from leukedge.bundle import REFERENCE_BUNDLE, Bundle
from leukedge.segment import segment
from leukedge.synthetic_slide import STILL, MovingSlide, SlideFrame, SlideSettings
from leukedge.tracking import SlideTracker
from leukedge.tracking.tracks import EDGE_PX


def run(frames: int, seed: int, width: int, height: int) -> Dict[str, Any]:
    spec = Bundle.load(REFERENCE_BUNDLE, verify=False).manifest.preprocessing
    slide = MovingSlide(seed, frames, SlideSettings(width=width, height=height))
    tracker = SlideTracker(label_for=lambda p: "all" if p >= 0.5 else "hem")
    rng = np.random.default_rng(seed)
    ids_of_truth: Dict[int, Set[int]] = defaultdict(set)
    truths_of_id: Dict[int, Set[int]] = defaultdict(set)
    eligible: Dict[int, int] = defaultdict(int)
    focus_rows: List[Dict[str, Any]] = []
    cost: List[Any] = []
    for i in range(frames):
        image, truth = slide.frame(i)
        cells = segment(image, spec)
        boxes = [c.bbox for c in cells]
        labels = [_true_label(slide, truth, b) for b in boxes]
        p_all = [float(np.clip((0.85 if lab == "all" else 0.15) + rng.normal(0, 0.05), 0, 1)) for lab in labels]
        t0 = time.perf_counter()
        judged = tracker.judge(i, image)  # grey copy, exposure, motion, focus
        t1 = time.perf_counter()
        ft = tracker.pair(judged, boxes, p_all)  # cell tracks
        cost.append((t1 - t0, time.perf_counter() - t1))
        _pair_with_truth(truth, boxes, ft.cell_ids, ids_of_truth, truths_of_id)
        if truth.motion == STILL and not truth.defocused and not truth.overexposed:
            for ident, box, _ in truth.cells:
                eligible[ident] += _clear_of_edge(box, width, height)
        focus_rows.append(
            {
                "frame": i,
                "focus": ft.focus,
                "skip": ft.skip,
                "defocused": truth.defocused,
                "overexposed": truth.overexposed,
                "motion": truth.motion,
            }
        )
    tracker.finish()
    return _figures(slide, tracker, frames, eligible, ids_of_truth, truths_of_id, focus_rows, cost)


def _clear_of_edge(box: Any, width: int, height: int) -> bool:
    """Whole and clear of the frame's edge by more than EDGE_PX: a box nearer the edge cannot be
    told from a cut cell's (the segmenter stops ~3 px short of the edge), and is not counted."""
    m = EDGE_PX + 1
    return box.x >= m and box.y >= m and box.x + box.w <= width - m and box.y + box.h <= height - m


def _true_label(slide: MovingSlide, truth: SlideFrame, box: Any) -> str:
    best = max(truth.cells, key=lambda c: c[1].iou(box), default=None)
    return slide.cells[best[0]].label if best is not None and best[1].iou(box) >= 0.5 else "hem"


def _pair_with_truth(
    truth: SlideFrame,
    boxes: List[Any],
    ids: List[Any],
    ids_of_truth: Dict[int, Set[int]],
    truths_of_id: Dict[int, Set[int]],
) -> None:
    for box, cid in zip(boxes, ids):
        if cid is None:
            continue
        best = max(truth.cells, key=lambda c: c[1].iou(box), default=None)
        if best is not None and best[1].iou(box) >= 0.5:
            ids_of_truth[best[0]].add(cid)
            truths_of_id[cid].add(best[0])


def _figures(
    slide: MovingSlide,
    tracker: SlideTracker,
    frames: int,
    eligible: Dict[int, int],
    ids_of_truth: Dict[int, Set[int]],
    truths_of_id: Dict[int, Set[int]],
    focus_rows: List[Dict[str, Any]],
    cost: List[Any],
) -> Dict[str, Any]:
    min_looks = tracker.settings.tracks.min_looks
    truth_count = sum(1 for n in eligible.values() if n >= min_looks)
    counted = tracker.cells.confirmed
    doubled = sorted(t for t, ids in ids_of_truth.items() if len(ids) > 1)
    not_a_cell = sum(1 for c in range(counted) if c not in truths_of_id)
    ineligible = sorted(t for t in ids_of_truth if eligible.get(t, 0) < min_looks)
    merged = sorted(c for c, ts in truths_of_id.items() if len(ts) > 1)
    revisits = [slide.truth(i) for i in range(frames) if slide.truth(i).revisit]
    clean = sum(all(len(ids_of_truth.get(ident, ())) <= 1 for ident, _, _ in r.cells) for r in revisits)
    judged = [r for r in focus_rows if r["motion"] == STILL and not r["overexposed"]]
    missed = sum(r["defocused"] and r["skip"] is None for r in judged)  # a defocused frame looked at
    wrong = sum(not r["defocused"] and r["skip"] == "defocused" for r in judged)
    right = len(judged) - missed - wrong
    lagged = sum(not r["defocused"] and r["skip"] == "moving" for r in judged)
    return {
        "frames": frames,
        "frame_size": [slide.settings.width, slide.settings.height],
        "cells_on_slide": len(slide.cells),
        "truth_unique_cells": truth_count,
        "counted_unique_cells": counted,
        "count_error_pct": round(100.0 * (counted - truth_count) / max(1, truth_count), 2),
        "double_counted_cells": len(doubled),
        "merged_tracks": len(merged),
        "counted_ids_matching_no_drawn_cell": not_a_cell,
        "counted_cells_not_in_truth": len(ineligible),
        "revisits": len(revisits),
        "revisits_without_double_count_pct": round(100.0 * clean / max(1, len(revisits)), 2),
        "defocus_frames_judged": len(judged),
        "defocus_drawn": sum(r["defocused"] for r in judged),
        "defocus_accuracy_pct": round(100.0 * right / max(1, len(judged)), 2),
        "defocus_missed": missed,
        "infocus_skipped_wrongly": wrong,
        "still_frames_skipped_as_moving": lagged,
        "tracking_ms_per_frame_mean": round(1000 * float(np.mean([a + b for a, b in cost])), 2),
        "tracking_ms_per_frame_p99": round(1000 * float(np.percentile([a + b for a, b in cost], 99)), 2),
        "judge_ms_per_frame_mean": round(1000 * float(np.mean([a for a, _ in cost])), 2),
        "pair_ms_per_frame_mean": round(1000 * float(np.mean([b for _, b in cost])), 2),
        "tracker": tracker.stats(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    out = run(a.frames, a.seed, a.width, a.height)
    text = json.dumps(out, indent=1)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
