"""White-cell detection on BCCD smear frames: recall and precision at IoU >= 0.5.

Usage:
    python benchmarks/segment_bccd.py [DATA_DIR] [--json OUT.json] [--show-misses]

DATA_DIR holds JPEGImages/*.jpg and Annotations/*.xml (Pascal VOC, class
``WBC``); default ../shared/data/smear_frames.  Each predicted box is matched
greedily (highest IoU first) to at most one ground-truth WBC box.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from leukedge.images import read_image
from leukedge.segment import SegmentParams, find_cells
from leukedge.types import BBox

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "smear_frames"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def load_boxes(xml_path: Path, name: str = "WBC") -> list[BBox]:
    boxes = []
    for obj in ET.parse(xml_path).getroot().iter("object"):
        if obj.findtext("name") != name:
            continue
        bb = obj.find("bndbox")
        assert bb is not None
        x0, y0, x1, y1 = (int(float(bb.findtext(k) or 0)) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append(BBox(x0, y0, x1 - x0, y1 - y0))
    return boxes


def match(pred: list[BBox], truth: list[BBox], iou_min: float = 0.5) -> int:
    pairs = sorted(((p.iou(t), i, j) for i, p in enumerate(pred) for j, t in enumerate(truth)), reverse=True)
    used_p: set[int] = set()
    used_t: set[int] = set()
    for iou, i, j in pairs:
        if iou < iou_min:
            break
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_p)


def evaluate(data: Path, show_misses: bool = False, params: SegmentParams | None = None) -> dict:
    frames = sorted((data / "JPEGImages").glob("*.jpg"))
    if not frames:
        raise SystemExit(f"no frames under {data}/JPEGImages")
    tp = n_pred = n_true = 0
    seconds = 0.0
    for f in frames:
        truth = load_boxes(data / "Annotations" / (f.stem + ".xml"))
        img = read_image(f)
        t0 = time.perf_counter()
        pred = [r.bbox for r in find_cells(img, params=params)]
        seconds += time.perf_counter() - t0
        hit = match(pred, truth)
        tp += hit
        n_pred += len(pred)
        n_true += len(truth)
        if show_misses and (hit < len(truth) or hit < len(pred)):
            best = [max((p.iou(t) for p in pred), default=0.0) for t in truth]
            print(f"{f.name}: truth {len(truth)} pred {len(pred)} matched {hit} best IoU {[round(b, 2) for b in best]}")
    return {
        "frames": len(frames),
        "wbc_boxes": n_true,
        "predicted": n_pred,
        "matched_iou_0.5": tp,
        "recall": round(tp / n_true, 4) if n_true else None,
        "precision": round(tp / n_pred, 4) if n_pred else None,
        "ms_per_frame": round(1000 * seconds / len(frames), 1),
        "machine": f"{_cpu_name()}, {os.cpu_count()} cores, python {platform.python_version()}",
    }


# Each detector parameter moved down and up from its default, to show the figures do not hinge on one value.
SENSITIVITY = {
    "nucleus_blueness": (30, 50),
    "cytoplasm_blueness": (2, 8),
    "cytoplasm_darkness": (8, 16),
    "merge_px": (9, 21),
    "min_cell_area": (3000, 6000),
    "max_cell_radius_factor": (1.6, 2.2),
}


def sensitivity(data: Path) -> list[dict]:
    rows = []
    for field, values in SENSITIVITY.items():
        for v in values:
            r = evaluate(data, params=dataclasses.replace(SegmentParams(), **{field: v}))
            rows.append({"parameter": field, "value": v, "recall": r["recall"], "precision": r["precision"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--show-misses", action="store_true")
    ap.add_argument("--sensitivity", action="store_true", help="also move each parameter down and up")
    args = ap.parse_args(argv)
    result = evaluate(args.data, args.show_misses)
    if args.sensitivity:
        result["sensitivity"] = sensitivity(args.data)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
