"""New vs old segmentation: same cells, same crops, same classifier outputs, and the speed of each.

Usage:
    python benchmarks/segment_faithful.py [--old-rev REV] [--bccd DIR] [--synthetic N]
        [--truth-frames N] [--json OUT.json]

The old ``leukedge.segment`` is loaded from git (``git show REV:sdk/segment.py``;
default: the last commit that traced outlines at full resolution).  Both segment
every BCCD frame (640×480) and N synthetic 1920×1080 frames of 10 cells with the
reference bundle's preprocessing; cells are paired by box IoU.  Reported:
unpaired cells, box IoU and mask IoU of pairs, absolute pixel difference of the
model crops, the largest difference between a new crop and resizing its drawn
canvas (the crop's definition), and, with the reference bundle on ONNX Runtime
FP32, |Δp_all| and label flips.  Timing: ``segment()`` per frame, one OpenCV
thread, best of 3.

Two yardsticks for the flips: the same model on the old BCCD masks eroded and
dilated by one pixel (how much a one-pixel outline change moves it anyway), and
its accuracy against the drawn labels of ``--truth-frames`` synthetic frames
(10 cells, 2 of them touching) with each detector's crops.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from leukedge import segment as new_segment
from leukedge.bundle import Bundle
from leukedge.device.classifier import Classifier
from leukedge.device.runtimes import open_runtime
from leukedge.images import read_image
from leukedge.preprocess import interpolation_code
from leukedge.synthetic import make_smear_frame

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BCCD = REPO.parent / "shared" / "data" / "smear_frames"
OLD_REV = "074204f"  # outlines traced at full resolution (before 2026-11-26 afternoon)


def load_old(rev: str):
    src = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:sdk/segment.py"], check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_segment.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_segment", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_segment"] = mod
    spec.loader.exec_module(mod)
    return mod


def mask_iou(a, b) -> float:
    """IoU of two Regions' masks placed in frame coordinates."""
    x0, y0 = min(a.bbox.x, b.bbox.x), min(a.bbox.y, b.bbox.y)
    x1 = max(a.bbox.x + a.bbox.w, b.bbox.x + b.bbox.w)
    y1 = max(a.bbox.y + a.bbox.h, b.bbox.y + b.bbox.h)
    ma, mb = np.zeros((y1 - y0, x1 - x0), bool), np.zeros((y1 - y0, x1 - x0), bool)
    ma[a.bbox.y - y0 : a.bbox.y - y0 + a.bbox.h, a.bbox.x - x0 : a.bbox.x - x0 + a.bbox.w] = a.mask
    mb[b.bbox.y - y0 : b.bbox.y - y0 + b.bbox.h, b.bbox.x - x0 : b.bbox.x - x0 + b.bbox.w] = b.mask
    return float((ma & mb).sum() / max(1, (ma | mb).sum()))


def drawn_canvas_crop(frame, region, spec, out_px: int):
    """The crop by its definition: the masked cell drawn on its black canvas, then resized."""
    b = region.bbox
    side = max(round(spec.crop.canvas_px / spec.crop.source_scale), b.w, b.h)
    canvas = np.zeros((side, side, 3), np.uint8)
    oy, ox = (side - b.h) // 2, (side - b.w) // 2
    canvas[oy : oy + b.h, ox : ox + b.w][region.mask] = frame[b.y : b.y + b.h, b.x : b.x + b.w][region.mask]
    return cv2.resize(canvas, (out_px, out_px), interpolation=interpolation_code(spec.interpolation))


def one_pixel_yardstick(frames: list, old, spec, classifier: Classifier) -> dict:
    """|Δp_all| and flips when the old masks are eroded or dilated by one pixel."""
    k = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    base, eroded, dilated = [], [], []
    for f in frames:
        for r in old.find_cells(f, source_scale=spec.crop.source_scale):
            m8 = r.mask.view(np.uint8)
            for out, m in (
                (base, r.mask),
                (eroded, cv2.erode(m8, k).view(bool)),
                (dilated, cv2.dilate(np.pad(m8, 1), k)[1:-1, 1:-1].view(bool)),  # inside the box
            ):
                out.append(
                    old.crop_cell(
                        f,
                        replace(r, mask=m),
                        crop=spec.crop,
                        out_px=spec.input_height,
                        interpolation=spec.interpolation,
                    )
                )
    thr = classifier.manifest.decision.threshold
    p0 = classifier.p_all(base)
    result = {"cells": len(base)}
    for name, crops in (("erode_1px", eroded), ("dilate_1px", dilated)):
        p = classifier.p_all(crops)
        result[name] = {
            "dp_all_max": round(float(np.abs(p - p0).max()), 5),
            "dp_all_mean": round(float(np.abs(p - p0).mean()), 5),
            "label_flips": int(((p0 >= thr) != (p >= thr)).sum()),
        }
    return result


def truth_accuracy(n_frames: int, old, spec, classifier: Classifier) -> dict:
    """The reference model's accuracy on drawn synthetic cells, with each detector's crops
    (a drawn cell counts as found when a detected box has IoU >= 0.5 with it)."""
    thr = classifier.manifest.decision.threshold
    out = {"frames": n_frames}
    found: dict = {"old": ([], []), "new": ([], [])}
    drawn = 0
    for seed in range(100, 100 + n_frames):
        frame, cells = make_smear_frame(seed, width=1920, height=1080, cells=10, touching=2)
        drawn += len(cells)
        for name, mod in (("old", old), ("new", new_segment)):
            seg = mod.segment(frame, spec)
            for c in cells:
                best = max(seg, key=lambda q: q.bbox.iou(c.bbox), default=None)
                if best is not None and best.bbox.iou(c.bbox) >= 0.5:
                    found[name][0].append(best.crop)
                    found[name][1].append(c.label == "all")
    out["drawn_cells"] = drawn
    for name, (crops, truth) in found.items():
        y = np.array(truth, bool)
        pred = classifier.p_all(crops) >= thr
        out[name] = {
            "found": len(crops),
            "accuracy": round(float((pred == y).mean()), 4),
            "sensitivity": round(float(pred[y].mean()), 4),
            "specificity": round(float((~pred[~y]).mean()), 4),
        }
    return out


def best_time(fn, frames, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for f in frames:
            fn(f)
        best = min(best, (time.perf_counter() - t0) / len(frames))
    return best


def compare(name: str, frames: list, old, spec, classifier: Classifier) -> dict:
    out_px = spec.input_height
    pairs, unpaired_old, unpaired_new = [], 0, 0
    for f in frames:
        ro = old.find_cells(f, source_scale=spec.crop.source_scale)
        rn = new_segment.find_cells(f, source_scale=spec.crop.source_scale)
        used = set()
        for a in ro:
            cand = [(a.bbox.iou(b.bbox), j) for j, b in enumerate(rn) if j not in used]
            iou, j = max(cand, default=(0.0, -1))
            if iou < 0.5:
                unpaired_old += 1
                continue
            used.add(j)
            b = rn[j]
            co = old.crop_cell(f, a, crop=spec.crop, out_px=out_px, interpolation=spec.interpolation)
            cn = new_segment.crop_cell(f, b, crop=spec.crop, out_px=out_px, interpolation=spec.interpolation)
            pairs.append((iou, mask_iou(a, b), co, cn, drawn_canvas_crop(f, b, spec, out_px)))
        unpaired_new += len(rn) - len(used)
    co = [p[2] for p in pairs]
    cn = [p[3] for p in pairs]
    diff = np.abs(np.stack(co).astype(np.int16) - np.stack(cn).astype(np.int16)) if pairs else np.zeros(1)
    builder = max((int(np.abs(p[4].astype(np.int16) - p[3].astype(np.int16)).max()) for p in pairs), default=0)
    po, pn = classifier.p_all(co), classifier.p_all(cn)
    thr = classifier.manifest.decision.threshold
    flips = [i for i in range(len(pairs)) if (po[i] >= thr) != (pn[i] >= thr)]
    t_old = best_time(lambda f: old.segment(f, spec), frames)
    t_new = best_time(lambda f: new_segment.segment(f, spec), frames)
    return {
        "set": name,
        "frames": len(frames),
        "pairs": len(pairs),
        "unpaired_old": unpaired_old,
        "unpaired_new": unpaired_new,
        "box_iou_min": round(min((p[0] for p in pairs), default=0.0), 4),
        "box_iou_mean": round(float(np.mean([p[0] for p in pairs])) if pairs else 0.0, 4),
        "mask_iou_min": round(min((p[1] for p in pairs), default=0.0), 4),
        "mask_iou_mean": round(float(np.mean([p[1] for p in pairs])) if pairs else 0.0, 4),
        "crop_absdiff_max": int(diff.max()),
        "crop_absdiff_mean": round(float(diff.mean()), 4),
        "crop_vs_drawn_canvas_absdiff_max": builder,
        "dp_all_max": round(float(np.abs(po - pn).max()) if pairs else 0.0, 5),
        "dp_all_mean": round(float(np.abs(po - pn).mean()) if pairs else 0.0, 5),
        "label_flips": len(flips),
        "flips_p_old_new": [(round(float(po[i]), 4), round(float(pn[i]), 4)) for i in flips],
        "segment_ms_old": round(t_old * 1e3, 2),
        "segment_ms_new": round(t_new * 1e3, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-rev", default=OLD_REV)
    ap.add_argument("--bccd", type=Path, default=DEFAULT_BCCD)
    ap.add_argument("--synthetic", type=int, default=8, help="synthetic 1920×1080 frames of 10 cells")
    ap.add_argument("--truth-frames", type=int, default=40, help="synthetic frames for the accuracy yardstick")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    old = load_old(args.old_rev)
    bundle = Bundle.load("reference")
    spec = bundle.manifest.preprocessing
    classifier = Classifier(open_runtime(bundle, backend="onnxruntime", precision="fp32"))
    results = []
    bccd = [read_image(p) for p in sorted((args.bccd / "JPEGImages").glob("*.jpg"))]
    if bccd:
        results.append(compare("bccd 640x480", bccd, old, spec, classifier))
        results.append(
            {"set": "bccd, old masks moved by one pixel", **one_pixel_yardstick(bccd, old, spec, classifier)}
        )
    synth = [make_smear_frame(seed, width=1920, height=1080, cells=10)[0] for seed in range(args.synthetic)]
    results.append(compare("synthetic 1920x1080, 10 cells", synth, old, spec, classifier))
    if args.truth_frames:
        results.append({"set": "synthetic drawn labels", **truth_accuracy(args.truth_frames, old, spec, classifier)})
    for r in results:
        print(json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
