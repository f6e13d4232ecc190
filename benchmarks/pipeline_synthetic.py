"""Pipeline throughput and latency on synthetic 1080p smears, against the classifier alone.

Usage:
    python benchmarks/pipeline_synthetic.py [--model BUNDLE] [--backend onnxruntime] [--precision auto]
        [--preprocess cpu] [--seconds 30] [--cells 10] [--width 1920 --height 1080] [--workers N]
        [--repeat N] [--segment-nice N] [--classify-workers N] [--threads N] [--tracking] [--json OUT]

Three runs with the same model, backend and preprocessing:

1. classifier only: crops cut from the synthetic frames beforehand, preprocessed
   and classified in batches of ``--batch``, as fast as possible (cells/s);
2. the pipeline, unpaced (``synthetic://?fps=0``: every frame, as fast as it
   goes): frames/s, cells/s, each stage's share of the busy time, and
   cells/s as a fraction of (1) — the goal is >= 80%;
3. the pipeline paced like a camera at 80% of the frame rate (2) reached:
   latency p50/p99 from capture to results, and frames dropped.

``--tracking`` adds, in each repeat, run (2) again with tracking on (``leukedge.tracking``: the
track stage judging motion, focus and exposure, and cell tracks in the results stage), and
reports its frames/s and its ratio to (1) beside those of the run without.  The synthetic
source's pool frames are unrelated to each other, so every frame is a new field to it: the
motion step's dearest case, and no frame is skipped (the work saved by skipping is not
counted here).

``--model`` defaults to the packaged reference bundle; where there is none
yet, a stand-in with the paper's VGG13 shape (five blocks of two 3×3
convolutions, widths 64-128-256-512-512, pooling, three dense layers) and
random weights is built, which costs what the real network costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from leukedge.bundle import REFERENCE_BUNDLE, Bundle, write_bundle
from leukedge.device.pipeline import Pipeline
from leukedge.device.preprocessing import make_preprocessor
from leukedge.device.runtimes import open_runtime, resolve_model
from leukedge.device.sources import make_source
from leukedge.manifest import Manifest
from leukedge.segment import segment
from leukedge.synthetic import make_smear_frame
from leukedge.tracking import SlideTracker


def vgg13_standin(root: Path, seed: int = 0) -> Bundle:
    """The paper's VGG13 layout at 128×128 with random weights (timing only; it classifies nothing)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [helper.make_node("Transpose", ["input"], ["x0"], perm=[0, 3, 1, 2])], []
    x, cin, k = "x0", 3, 0
    for block, width in enumerate((64, 128, 256, 512, 512), start=1):
        for conv in (1, 2):
            name = f"block{block}_conv{conv}"
            w = rng.normal(0, np.sqrt(2.0 / (9 * cin)), (width, cin, 3, 3)).astype(np.float32)
            inits += [
                numpy_helper.from_array(w, name + "_w"),
                numpy_helper.from_array(np.zeros(width, np.float32), name + "_b"),
            ]
            nodes += [
                helper.make_node("Conv", [x, name + "_w", name + "_b"], [name], pads=[1, 1, 1, 1]),
                helper.make_node("Relu", [name], [name + "_relu"]),
            ]
            x, cin = name + "_relu", width
        pool = "MaxPool" if block < 5 else "AveragePool"
        nodes.append(helper.make_node(pool, [x], [f"block{block}_pool"], kernel_shape=[2, 2], strides=[2, 2]))
        x = f"block{block}_pool"
    nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
    x, fin = "flat", 512 * 4 * 4
    for k, width in enumerate((256, 128, 2), start=1):
        w = rng.normal(0, np.sqrt(2.0 / fin), (fin, width)).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"fc{k}_w"),
            numpy_helper.from_array(np.zeros(width, np.float32), f"fc{k}_b"),
        ]
        nodes.append(helper.make_node("Gemm", [x, f"fc{k}_w", f"fc{k}_b"], [f"fc{k}"]))
        x, fin = f"fc{k}", width
        if k < 3:
            nodes.append(helper.make_node("Relu", [x], [x + "_relu"]))
            x = x + "_relu"
    nodes.append(helper.make_node("Softmax", [x], ["predictions"], axis=1))
    graph = helper.make_graph(
        nodes,
        "vgg13_standin",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 128, 128, 3])],
        [helper.make_tensor_value_info("predictions", TensorProto.FLOAT, ["N", 2])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    root.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(root / "model.onnx"))
    manifest = Manifest(name="vgg13-standin-random-weights", provenance={"note": "benchmark stand-in, random weights"})
    return write_bundle(root, manifest, {"onnx_fp32": "model.onnx"})


def classifier_only(model: Any, args: argparse.Namespace, crops: List[np.ndarray]) -> Dict[str, Any]:
    runtime = open_runtime(model, backend=args.backend, precision=args.precision)
    prep = make_preprocessor(args.preprocess, runtime.manifest.preprocessing, max_batch=args.batch).open()
    with runtime:
        batch = [crops[i % len(crops)] for i in range(args.batch)]
        runtime.p_all(prep.prepare(batch))  # warm-up
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < args.seconds / 3:
            runtime.p_all(prep.prepare(batch))
            n += len(batch)
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        described = runtime.describe()
    prep.close()
    return {
        "cells_per_s": round(n / took, 2),
        "cells_per_cpu_s": round(n / cpu, 3),  # per second of this process's CPU time: steadier on a busy machine
        "batch": args.batch,
        "runtime": described,
    }


def pipeline_run(
    model: Any, args: argparse.Namespace, *, fps: float, seconds: float, tracking: bool = False
) -> Dict[str, Any]:
    uri = f"synthetic://?seed=7&width={args.width}&height={args.height}&cells={args.cells}&pool=4&fps={fps}"
    options = {"threads": args.threads} if args.threads else {}  # ONNX Runtime's threads per call
    runtime = open_runtime(model, backend=args.backend, precision=args.precision, **options)
    pipe = Pipeline(
        make_source(uri),
        runtime,
        preprocess=args.preprocess,
        workers=args.workers,
        duration=seconds,
        segment_niceness=args.segment_nice,
        classify_workers=args.classify_workers,
        tracker=SlideTracker(label_for=runtime.manifest.label_for) if tracking else None,
    )
    c0 = time.process_time()
    pipe.start()
    stats = pipe.run()
    cpu = time.process_time() - c0
    return {
        "source": uri,
        "tracking": tracking,
        "workers": pipe.workers,
        "classify_workers": pipe.classify_workers,
        "preprocess": pipe.preprocess_kind,
        "cells_per_cpu_s": round(stats.cells / cpu, 3) if cpu > 0 else None,
        **stats.to_dict(),
    }


def _summary(
    result: Dict[str, Any], clf: Dict[str, Any], unpaced: Dict[str, Any], paced: Dict[str, Any], paced_fps: float
) -> str:
    """The few lines a person reads after the JSON."""
    return (
        f"\nclassifier only: {clf['cells_per_s']:.1f} cells/s ({clf['runtime']}, batch {clf['batch']})\n"
        f"pipeline:        {unpaced['mean_fps']:.2f} frames/s, {unpaced['mean_cells_per_s']:.1f} cells/s "
        f"= {100 * result['pipeline_vs_classifier']:.0f}% of the classifier alone; stage shares "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in unpaced["stage_share"].items())
        + "\nper CPU-second: ratio "
        + ", ".join(f"{x:.2f}" for x in result["cpu_ratio_each_repeat"])  # type: ignore[union-attr]
        + f"\npaced at {paced_fps} fps: latency p50 {paced['latency_p50_ms']} ms, p99 {paced['latency_p99_ms']} ms, "
        f"{paced['dropped']} dropped of {paced['frames'] + paced['dropped']}"
    )


def _tracking_figures(clfs: List[Dict[str, Any]], tracked: List[Dict[str, Any]]) -> Dict[str, Any]:
    mid = sorted(tracked, key=lambda r: r["mean_cells_per_s"])[len(tracked) // 2]
    return {
        "mean_fps": mid["mean_fps"],
        "mean_cells_per_s": mid["mean_cells_per_s"],
        "track_ms_per_frame": mid["stage_ms"].get("track"),
        "ratio_each_repeat": [round(r["mean_cells_per_s"] / c["cells_per_s"], 3) for c, r in zip(clfs, tracked)],
        "fps_each_repeat": [r["mean_fps"] for r in tracked],
        "cpu_ratio_each_repeat": [round(r["cells_per_cpu_s"] / c["cells_per_cpu_s"], 3) for c, r in zip(clfs, tracked)],
    }


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model", default=None, help="bundle folder (default: the reference bundle, else a VGG13 stand-in)"
    )
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--preprocess", default="cpu")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--cells", type=int, default=10)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=1, help="alternate classifier-only and pipeline runs N times")
    ap.add_argument("--segment-nice", type=int, default=0, help="niceness added to segmentation threads")
    ap.add_argument("--classify-workers", type=int, default=1, help="threads that call the runtime in the pipeline")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime threads per call, in the pipeline")
    ap.add_argument("--tracking", action="store_true", help="also run the pipeline with tracking on")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    if args.model:
        model = resolve_model(args.model)
    elif (REFERENCE_BUNDLE / "manifest.json").exists():
        model = resolve_model(None)
    else:
        model = resolve_model(vgg13_standin(Path(tempfile.mkdtemp(prefix="vgg13-standin-"))))
    frames = [make_smear_frame(7 + i, width=args.width, height=args.height, cells=args.cells)[0] for i in range(4)]
    crops = [c.crop for f in frames for c in segment(f, model.manifest.preprocessing)]

    # Alternate the two runs ``--repeat`` times and keep the medians: on a shared machine the
    # load changes from minute to minute, and the ratio is what matters.
    clfs, runs, tracked = [], [], []
    for _ in range(args.repeat):
        clfs.append(classifier_only(model, args, crops))
        runs.append(pipeline_run(model, args, fps=0.0, seconds=args.seconds))
        if args.tracking:
            tracked.append(pipeline_run(model, args, fps=0.0, seconds=args.seconds, tracking=True))
    clf = sorted(clfs, key=lambda r: r["cells_per_s"])[len(clfs) // 2]
    unpaced = sorted(runs, key=lambda r: r["mean_cells_per_s"])[len(runs) // 2]
    ratios = [r["mean_cells_per_s"] / c["cells_per_s"] for c, r in zip(clfs, runs)]
    paced_fps = round(0.8 * unpaced["mean_fps"], 2)
    paced = pipeline_run(model, args, fps=paced_fps, seconds=args.seconds)
    result = {
        "model": f"{model.manifest.name} ({model.identity})",
        "classifier_only": clf,
        "pipeline_unpaced": unpaced,
        "pipeline_paced": paced,
        "pipeline_vs_classifier": round(unpaced["mean_cells_per_s"] / clf["cells_per_s"], 3),
        "ratio_each_repeat": [round(r, 3) for r in ratios],
        "cpu_ratio_each_repeat": [round(r["cells_per_cpu_s"] / c["cells_per_cpu_s"], 3) for c, r in zip(clfs, runs)],
        "classifier_each_repeat": [c["cells_per_s"] for c in clfs],
        "pipeline_each_repeat": [r["mean_cells_per_s"] for r in runs],
        "segment_nice": args.segment_nice,
        "tracking_on": _tracking_figures(clfs, tracked) if tracked else None,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, python {platform.python_version()}",
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    print(_summary(result, clf, unpaced, paced, paced_fps))
    if tracked:
        t = result["tracking_on"]
        print(
            f"with tracking:   {t['mean_fps']:.2f} frames/s, {t['mean_cells_per_s']:.1f} cells/s; ratio to the "  # type: ignore[index]
            f"classifier alone per repeat {t['ratio_each_repeat']}; tracking {t['track_ms_per_frame']} ms/frame"  # type: ignore[index]
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
