"""New vs old segmentation: same cells, same crops, same classifier outputs, and the speed of each.

Usage:
    python benchmarks/segment_faithful.py [--old-rev REV] [--bccd DIR] [--synthetic N] [--json OUT.json]

The old ``leukedge.segment`` is loaded from git (``git show REV:sdk/segment.py``;
default: the last commit before the low-resolution detector).  Both segment
every BCCD frame (640×480) and N synthetic 1920×1080 frames of 10 cells with the
reference bundle's preprocessing; cells are paired by box IoU.  Reported:
unpaired cells, box IoU and mask IoU of pairs, absolute pixel difference of the
model crops, and, with the reference bundle on ONNX Runtime FP32, |Δp_all| and
label flips.  Timing: ``segment()`` per frame, one OpenCV thread, best of 3.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from leukedge import segment as new_segment
from leukedge.bundle import Bundle
from leukedge.device.classifier import Classifier
from leukedge.device.runtimes import open_runtime
from leukedge.images import read_image
from leukedge.synthetic import make_smear_frame

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BCCD = REPO.parent / "shared" / "data" / "smear_frames"
OLD_REV = "325fc88"


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
            # the old crop path on the new region isolates the crop builder's own error
            cr = old.crop_cell(f, b, crop=spec.crop, out_px=out_px, interpolation=spec.interpolation)
            pairs.append((iou, mask_iou(a, b), co, cn, cr))
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
        "crop_builder_absdiff_max": builder,
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
    synth = [make_smear_frame(seed, width=1920, height=1080, cells=10)[0] for seed in range(args.synthetic)]
    results.append(compare("synthetic 1920x1080, 10 cells", synth, old, spec, classifier))
    for r in results:
        print(json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
