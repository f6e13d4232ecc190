"""Embed the leukedge Screener in a microscope application's own acquisition loop, with a live viewer.

What it shows
    Your software owns the camera: it grabs frames in its own loop and hands
    each one to ``Screener.submit(frame)``; results come back on the
    Screener's results thread through ``on_frame`` / ``on_cell`` callbacks.
    The viewer draws every cell's box live (red: ALL, green: normal, grey:
    unclassified) with its p_ALL, in an OpenCV window, or, with ``--offscreen
    DIR``, into annotated PNG files (no display needed: tests, headless PCs).

What it needs
    leukedge (``pip install leukedge``: numpy, OpenCV, ONNX Runtime) and the
    packaged reference model.  A window needs an OpenCV with GUI support
    (``opencv-python``, not ``-headless``); ``--offscreen`` works with either.

How to run (from the repository root)
    python examples/embed_viewer.py --frames 100                      # window; q or Esc quits
    python examples/embed_viewer.py --frames 4 --offscreen /tmp/viewer --out /tmp/viewer/cells.jsonl
    python examples/embed_viewer.py --images ../shared/data/smear_frames/JPEGImages --frames 5 --offscreen /tmp/viewer

The "camera" here is ``leukedge.synthetic.make_smear_frame`` (or an image
folder); in your application it is your own capture call.  Offscreen mode
also writes ``DIR/frames.jsonl``: per frame, the boxes drawn and their labels.
"""

from __future__ import annotations

import argparse
import itertools
import json
import queue
import sys
from pathlib import Path
from typing import Dict, Iterator, Optional

import cv2
import numpy as np

from leukedge import Cell, FrameResult, Screener, run_main

COLOURS = {"all": (230, 40, 40), "hem": (40, 200, 60)}  # RGB; anything else (unclassified) is grey
GREY = (160, 160, 160)


def synthetic_camera(seed: int, width: int, height: int) -> Iterator[np.ndarray]:
    """Stands in for the application's camera: endless RGB smear frames."""
    from leukedge.synthetic import make_smear_frame

    for i in itertools.count():
        frame, _truth = make_smear_frame(seed + i, width=width, height=height, cells=6)
        yield frame


def folder_camera(folder: str) -> Iterator[np.ndarray]:
    """Frames from an image folder, decoded by leukedge's one image reader."""
    from leukedge.images import iter_image_files, read_image

    for path in iter_image_files([folder]):
        yield read_image(path)


def annotate(frame: np.ndarray, result: FrameResult) -> np.ndarray:
    """A BGR copy of ``frame`` (RGB) with each cell's box and p_ALL drawn; ready for imshow/imwrite."""
    out = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    for cell in result.cells:
        r, g, b = COLOURS.get(cell.label or "", GREY)
        b_ = cell.bbox
        cv2.rectangle(out, (b_.x, b_.y), (b_.x + b_.w - 1, b_.y + b_.h - 1), (b, g, r), 2)
        text = f"{cell.label or '?'} {cell.p_all:.2f}" if cell.p_all is not None else "?"
        cv2.putText(out, text, (b_.x, max(12, b_.y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (b, g, r), 1, cv2.LINE_AA)
    banner = f"frame {result.index}: {len(result.cells)} cells, {result.n_all} ALL, {1000 * result.latency_s:.0f} ms"
    cv2.putText(out, banner, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 2, cv2.LINE_AA)
    return out


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="reference", help="bundle folder, or 'reference' (the packaged model)")
    ap.add_argument("--images", help="use this image folder as the camera instead of synthetic frames")
    ap.add_argument("--frames", type=int, default=50, help="frames to grab (default 50)")
    ap.add_argument("--offscreen", metavar="DIR", help="write annotated PNGs to DIR instead of opening a window")
    ap.add_argument("--out", help="also write the per-cell results (JSON Lines) here")
    ap.add_argument("--width", type=int, default=960)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.frames < 1:
        ap.error("--frames must be at least 1")
    camera = folder_camera(args.images) if args.images else synthetic_camera(args.seed, args.width, args.height)
    out_dir = Path(args.offscreen) if args.offscreen else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)

    results: queue.Queue[FrameResult] = queue.Queue()
    tally: Dict[str, int] = {}
    shown: Dict[int, np.ndarray] = {}  # frames submitted, waiting for their results

    def count_cell(cell: Cell, result: FrameResult) -> None:  # runs on the Screener's results thread
        tally[cell.label or "unclassified"] = tally.get(cell.label or "unclassified", 0) + 1

    # block=True: offscreen, every frame is screened; live, submit() never waits and stale frames are dropped
    model = None if args.model == "reference" else args.model
    screener = Screener(model, source=None, block=out_dir is not None, out=args.out)
    log = open(out_dir / "frames.jsonl", "w") if out_dir is not None else None
    drawn = 0
    with screener:
        screener.on_frame(results.put)  # cheap: hand the result to the UI thread
        screener.on_cell(count_cell)
        print("\n".join(f"{k:>10}: {v}" for k, v in screener.describe().items()), file=sys.stderr)

        def draw(result: FrameResult) -> bool:
            nonlocal drawn
            for stale in [i for i in shown if i < result.index]:
                del shown[stale]  # results come in frame order: those frames were dropped as stale
            frame = shown.pop(result.index, None)
            if frame is None:
                return True
            image = annotate(frame, result)
            drawn += 1
            if out_dir is None:
                cv2.imshow("leukedge", image)
                return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)  # q or Esc: stop
            name = f"frame_{result.index:05d}.png"
            cv2.imwrite(str(out_dir / name), image)
            boxes = [{"bbox": c.bbox.as_list(), "label": c.label, "p_all": c.p_all} for c in result.cells]
            log.write(json.dumps({"frame": result.index, "file": name, "boxes": boxes}) + "\n")  # type: ignore[union-attr]
            return True

        keep_going = True
        for frame in itertools.islice(camera, args.frames):  # the application's acquisition loop
            index = screener.submit(frame)
            shown[index] = frame
            while keep_going:
                try:
                    keep_going = draw(results.get_nowait())
                except queue.Empty:
                    break
            if not keep_going:
                break
        screener.end()  # no more frames: leaving the block screens those in flight, then closes
    while keep_going and shown:  # results of the last frames, delivered while the Screener closed
        try:
            keep_going = draw(results.get_nowait())
        except queue.Empty:
            break  # the rest were dropped as stale (live mode)
    if log is not None:
        log.close()
    st = screener.stats()
    print(
        f"drew {drawn} frame(s); screened {st.frames}, {st.cells} cell(s): "
        + ", ".join(f"{n} {k}" for k, n in sorted(tally.items()))
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))  # errors as the CLI prints them: Error/Hint, exit code
