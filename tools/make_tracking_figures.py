"""Draw the two pictures of docs/tracking.md from a moving synthetic slide.

Usage:
    python tools/make_tracking_figures.py [--out docs/img] [--frames 260]

* ``tracking_frame.jpg``: a still frame with each cell's box and cell_id (green: counted;
  grey: cut by the frame's edge or not yet counted), and the stage's move that led there
  (the arrow: the shifts of the last moving frames, summed, drawn from the frame's centre);
* ``tracking_focus.png``: the focus score of every frame of the run, with the frames skipped
  as defocused, over-exposed or moving, and the frames drawn defocused.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np

from leukedge.bundle import REFERENCE_BUNDLE, Bundle
from leukedge.segment import segment
from leukedge.synthetic_slide import MovingSlide, SlideSettings
from leukedge.tracking import SlideTracker

SETTINGS = SlideSettings(width=1280, height=720, cells=40)


def run(frames: int) -> Tuple[List[Dict[str, Any]], Optional[Tuple[np.ndarray, List[Any], Tuple[float, float]]]]:
    spec = Bundle.load(REFERENCE_BUNDLE, verify=False).manifest.preprocessing
    slide = MovingSlide(seed=2, frames=frames, settings=SETTINGS)
    tracker = SlideTracker(label_for=lambda p: "all" if p >= 0.5 else "hem")
    rows: List[Dict[str, Any]] = []
    shown = None
    move = np.zeros(2)
    for i in range(frames):
        image, truth = slide.frame(i)
        cells = segment(image, spec)
        ft = tracker.observe(i, image, [c.bbox for c in cells], [0.5] * len(cells))
        rows.append({"focus": ft.focus, "skip": ft.skip, "defocused": truth.defocused})
        if ft.skip == "moving" and ft.step is not None:
            step = np.array((ft.step.dx, ft.step.dy))
            moving_before = len(rows) > 1 and rows[-2]["skip"] == "moving"
            move = move + step if moving_before else step  # the shifts of this move, summed
        elif ft.skip is None and shown is None and i > frames // 3 and sum(c is not None for c in ft.cell_ids) >= 3:
            shown = (image, list(zip([c.bbox for c in cells], ft.cell_ids)), (float(move[0]), float(move[1])))
    return rows, shown


def draw_frame(image: np.ndarray, boxes: List[Any], move: Tuple[float, float], out: Path) -> None:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    for box, cid in boxes:
        colour = (60, 170, 40) if cid is not None else (150, 150, 150)
        cv2.rectangle(bgr, (box.x, box.y), (box.x + box.w, box.y + box.h), colour, 3)
        text = f"cell {cid}" if cid is not None else "-"
        cv2.putText(bgr, text, (box.x + 4, box.y + 28), cv2.FONT_HERSHEY_SIMPLEX, 0.9, colour, 2, cv2.LINE_AA)
    h, w = bgr.shape[:2]
    centre = (w // 2, h // 2)
    shrink = min(1.0, 0.35 * w / max(1.0, float(np.hypot(*move))))  # a long move is drawn shortened
    tip = (int(centre[0] + move[0] * shrink), int(centre[1] + move[1] * shrink))
    cv2.arrowedLine(bgr, centre, tip, (30, 30, 220), 4, cv2.LINE_AA, tipLength=0.08)
    label = (
        f"the image moved ({move[0]:.0f}, {move[1]:.0f}) px on the way here (arrow not to scale)"
        if shrink < 1
        else f"the image moved ({move[0]:.0f}, {move[1]:.0f}) px on the way here"
    )
    cv2.putText(bgr, label, (20, h - 24), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (30, 30, 220), 2, cv2.LINE_AA)
    small = cv2.resize(bgr, (w * 3 // 5, h * 3 // 5), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out), small, [cv2.IMWRITE_JPEG_QUALITY, 80])


def draw_focus(rows: List[Dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(rows))
    focus = np.array([r["focus"] for r in rows])
    fig, ax = plt.subplots(figsize=(9, 3), dpi=90)
    ax.plot(x, focus, color="#999999", lw=0.8, label="focus score (variance of the Laplacian)")
    for skip, colour, marker in (
        ("moving", "#7a9cc6", "."),
        ("defocused", "#d62728", "x"),
        ("over-exposed", "#ff9900", "^"),
    ):
        sel = [i for i, r in enumerate(rows) if r["skip"] == skip]
        ax.scatter(x[sel], focus[sel], s=14, c=colour, marker=marker, label=f"skipped: {skip}")
    drawn = [i for i, r in enumerate(rows) if r["defocused"]]
    ax.scatter(x[drawn], focus[drawn] * 0 + focus.max() * 1.05, s=10, c="#d62728", marker="|", label="drawn defocused")
    ax.set_xlabel("frame")
    ax.set_ylabel("focus score (log)")
    ax.set_yscale("log")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="docs/img")
    ap.add_argument("--frames", type=int, default=260)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, shown = run(a.frames)
    if shown is None:
        raise SystemExit("no still frame with three counted cells: try more --frames")
    draw_frame(*shown, out / "tracking_frame.jpg")
    draw_focus(rows, out / "tracking_focus.png")
    print(f"wrote {out / 'tracking_frame.jpg'} and {out / 'tracking_focus.png'}")


if __name__ == "__main__":
    main()
