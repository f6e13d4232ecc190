"""Where the tracking thresholds come from: focus, exposure and phase-correlation response
measured on real smear frames (BCCD, ../shared/data/smear_frames) and spoiled copies of them.

Usage:
    python benchmarks/focus_thresholds.py [--frames ../shared/data/smear_frames/JPEGImages] [--json OUT]

For each frame (640×480 JPEG):

* focus: the score (variance of the Laplacian of the working grey image) of the frame and of
  Gaussian-blurred copies (sigma 1, 2, 3 px), with and without added sensor noise (sd 3), as
  a ratio to the sharp frame's score: the defocus rule compares a frame with its field;
* exposure: the share of clipped highlights and the mean level at gains 1.0, 1.3 and 1.6;
* motion: the phase-correlation response between two windows of the same frame shifted by
  up to 120 px (related), and between the same window of two different frames (unrelated),
  at the working width and at the field-thumbnail width.

It prints the ranges and the margins the defaults in ``leukedge.tracking`` leave.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Dict, List

import cv2
import numpy as np

from leukedge.tracking.motion import THUMB_WIDTH, MotionSettings, shift_between
from leukedge.tracking.quality import QualitySettings, exposure_of, focus_score, working_grey

SIGMAS = (1.0, 2.0, 3.0)
GAINS = (1.0, 1.3, 1.6)
SHIFTS = ((0, 0), (8, 3), (40, -20), (-90, 60), (120, 0))


def _spoil(rgb: np.ndarray, sigma: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    f = rgb.astype(np.float32)
    if sigma:
        f = cv2.GaussianBlur(f, (0, 0), sigma)
    if noise:
        f += rng.normal(0, noise, f.shape).astype(np.float32)
    return np.clip(f, 0, 255).astype(np.uint8)


def _range(values: List[float]) -> Dict[str, float]:
    a = np.asarray(values, dtype=np.float64)
    return {"min": round(float(a.min()), 4), "median": round(float(np.median(a)), 4), "max": round(float(a.max()), 4)}


def focus_figures(frames: List[np.ndarray], rng: np.random.Generator) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for noise in (0.0, 3.0):
        sharp = [focus_score(working_grey(_spoil(f, 0, noise, rng))[0]) for f in frames]
        out[f"noise{noise:g}_sharp_score"] = _range(sharp)
        for sigma in SIGMAS:
            ratios = [focus_score(working_grey(_spoil(f, sigma, noise, rng))[0]) / s for f, s in zip(frames, sharp)]
            out[f"noise{noise:g}_sigma{sigma:g}_ratio"] = _range(ratios)
    return out


def exposure_figures(frames: List[np.ndarray]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for gain in GAINS:
        exps = [
            exposure_of(working_grey(np.clip(f.astype(np.float32) * gain, 0, 255).astype(np.uint8))[0]) for f in frames
        ]
        out[f"gain{gain:g}"] = {
            "clipped_high": _range([e.clipped_high for e in exps]),
            "mean": _range([e.mean for e in exps]),
        }
    return out


def response_figures(frames: List[np.ndarray]) -> Dict[str, Any]:
    related: Dict[str, List[float]] = {"work": [], "thumb": []}
    unrelated: Dict[str, List[float]] = {"work": [], "thumb": []}
    for i, f in enumerate(frames):
        other = frames[(i + 1) % len(frames)]
        h, w = f.shape[:2]
        win_w, win_h = w - 240, h - 180
        base = f[90 : 90 + win_h, 120 : 120 + win_w]
        for dx, dy in SHIFTS[1:]:
            moved = f[90 + dy : 90 + dy + win_h, 120 + dx : 120 + dx + win_w]
            for kind, width in (("work", 480), ("thumb", THUMB_WIDTH)):
                related[kind].append(_response(base, moved, width))
        for kind, width in (("work", 480), ("thumb", THUMB_WIDTH)):
            unrelated[kind].append(_response(base, other[90 : 90 + win_h, 120 : 120 + win_w], width))
    return {
        f"{k}_{kind}": _range(v) for k, d in (("related", related), ("unrelated", unrelated)) for kind, v in d.items()
    }


def _response(a: np.ndarray, b: np.ndarray, width: int) -> float:
    ga = working_grey(a, width=width)[0].astype(np.float32)
    gb = working_grey(b, width=width)[0].astype(np.float32)
    window = cv2.createHanningWindow(ga.shape[::-1], cv2.CV_32F)
    return shift_between(ga, gb, window)[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", default="../shared/data/smear_frames/JPEGImages")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    paths = sorted(Path(a.frames).glob("*.jpg"))
    if not paths:
        sys.exit(f"no .jpg frames in {a.frames}")
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    rng = np.random.default_rng(0)
    q, m = QualitySettings(), MotionSettings()
    out = {
        "frames": len(frames),
        "focus": focus_figures(frames, rng),
        "exposure": exposure_figures(frames),
        "response": response_figures(frames),
        "defaults": {
            "focus_ratio": q.focus_ratio,
            "min_focus": q.min_focus,
            "max_clipped_high": q.max_clipped_high,
            "min_response": m.min_response,
            "min_recognise": m.min_recognise,
        },
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
    }
    text = json.dumps(out, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
