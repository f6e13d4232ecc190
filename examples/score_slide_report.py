"""Batch-score a slide's images (smear mode) and produce the slide report (one HTML file).

What it shows
    The offline path, e.g. on a Jetson or a lab PC after a slide was scanned
    into a folder of field images: ``leukedge.device.scoring.score_files``
    finds the white cells in every image, classifies them and writes one row
    per cell (CSV, JSON Lines or Parquet; crash-safe, resumable); then
    ``leukedge.report.write_report`` turns that file into the slide report
    (cells counted, ALL fraction with its Wilson 95% interval, adequacy,
    indeterminate band, per-field counts, audit trail).  The same two steps
    on the command line are ``leukedge score`` and ``leukedge report``.

What it needs
    leukedge with ONNX Runtime and the packaged reference model (or your
    bundle, ``--model``).  Images: a folder of smear photographs, e.g.
    ``../shared/data/smear_frames/JPEGImages``; without ``IMAGES`` a few
    synthetic smear frames are drawn into ``OUT/fields``.

How to run (from the repository root)
    python examples/score_slide_report.py ../shared/data/smear_frames/JPEGImages --limit 8 --out-dir /tmp/slide
    python examples/score_slide_report.py --synthetic 4 --out-dir /tmp/slide-synthetic

Writes ``OUT/cells.jsonl`` (one row per cell) and ``OUT/report.html``, and
prints the slide summary.  Exit status 8 when some images could not be
scored (they are listed in ``OUT/cells.jsonl.errors.jsonl``), as ``leukedge score``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from leukedge import run_main


def synthetic_fields(folder: Path, n: int, seed: int = 0) -> List[Path]:
    """``n`` drawn smear fields as PNG files (what a slide scanner would leave in a folder)."""
    import cv2

    from leukedge.synthetic import make_smear_frame

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        frame, _truth = make_smear_frame(seed + i, width=800, height=600, cells=8)
        path = folder / f"field_{i:03d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("images", nargs="?", help="folder of the slide's field images (searched recursively)")
    ap.add_argument("--synthetic", type=int, metavar="N", help="no folder: draw N synthetic fields instead")
    ap.add_argument("--limit", type=int, help="score only the first N images (sorted by name)")
    ap.add_argument("--model", default="reference", help="bundle folder, or 'reference' (the packaged model)")
    ap.add_argument("--out-dir", required=True, help="where cells.jsonl and report.html go")
    ap.add_argument("--workers", type=int, help="decoding/segmenting processes (default: one per core; 0: none)")
    ap.add_argument("--min-cells", type=int, default=200, help="cells needed for an adequate count")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if bool(args.images) == bool(args.synthetic):
        ap.error("give an IMAGES folder or --synthetic N (one of them)")

    from leukedge.device.scoring import score_files
    from leukedge.images import iter_image_files
    from leukedge.report import format_summary, write_report

    if args.synthetic:
        inputs = [str(p) for p in synthetic_fields(out / "fields", args.synthetic)]
    else:
        inputs = sorted(str(p) for p in iter_image_files([args.images]))[: args.limit]
    results = out / "cells.jsonl"
    scored = score_files(
        inputs, results, model=args.model, mode="smear", overwrite=True, progress=False, workers=args.workers
    )
    print(
        f"scored {scored.scored} image(s), {scored.cells} cell(s) in {scored.seconds:.1f} s "
        f"[{scored.run['backend']} {scored.run['precision']}] -> {results}"
    )
    model = None if args.model == "reference" else args.model
    report = write_report(results, out / "report.html", min_cells=args.min_cells, model=model)
    print(format_summary(dict(report.summary, model=", ".join(sorted(report.models)))))
    print(f"report: {out / 'report.html'}")
    for path, why in scored.failed:
        print(f"failed: {path}: {why}", file=sys.stderr)
    return 8 if scored.failed else 0


if __name__ == "__main__":
    sys.exit(run_main(main))  # errors as the CLI prints them: Error/Hint, exit code
