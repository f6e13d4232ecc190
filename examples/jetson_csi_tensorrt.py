"""Real-time screening on a Jetson: CSI camera, TensorRT engine, LoG preprocessing in CUDA.

What it shows
    The on-device configuration for NVIDIA Jetson (JetPack 5/6): frames from a
    CSI camera (``csi://0``: GStreamer ``nvarguscamerasrc``), cells classified
    by a TensorRT engine that is built from the bundle's ONNX on first use and
    cached (a minute or more the first time; instant afterwards), and the LoG
    preprocessing run by the CUDA kernel (``--preprocess cuda``).  It is the
    ``Screener`` with ``backend="tensorrt", preprocess="cuda"`` inside
    ``leukedge.device.session.run_session`` (Ctrl-C/SIGTERM finish the frames
    in flight and flush the results), like ``leukedge screen``.

What it needs
    A Jetson with JetPack (TensorRT's Python bindings, CUDA, nvcc), pycuda
    (``pip install 'leukedge[jetson]'``), the OpenCV that JetPack ships (built
    with GStreamer; the PyPI wheels are not) and a CSI camera.  ``--dry-run``
    needs none of these: it checks the arguments, loads and verifies the
    bundle, builds the configuration it would run and lists what is missing.

How to run (from the repository root)
    python examples/jetson_csi_tensorrt.py --dry-run                       # anywhere; exit 0
    python examples/jetson_csi_tensorrt.py --duration 60 --out cells.jsonl # on the Jetson
    python examples/jetson_csi_tensorrt.py --source 'csi://0?width=1280&height=720&fps=60' --precision int8

The same run on the command line:
    leukedge screen csi://0 --backend tensorrt --preprocess cuda --out cells.jsonl
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional, Tuple

from leukedge import run_main

SOURCE = "csi://0?width=1920&height=1080&fps=30"


def configuration(args: argparse.Namespace) -> Dict[str, Any]:
    """What would run, resolved and checked without touching a camera or a GPU."""
    from leukedge.device.runtimes import choose_precision, open_runtime, resolve_model
    from leukedge.device.sources import make_source
    from leukedge.device.trt_engine import onnx_for

    ref = resolve_model(None if args.model == "reference" else args.model)  # loads the bundle, checks SHA-256s
    source = make_source(args.source)  # parses the URI; opens nothing
    precision = choose_precision(ref, "tensorrt", args.precision)
    # the runtime the Screener will make, built the same way (unopened: no TensorRT, no GPU touched yet)
    runtime = open_runtime(ref, backend="tensorrt", precision=precision, max_batch=args.max_batch)
    assert ref.bundle is not None  # resolve_model gives a bundle for a folder or "reference"
    return {
        "model": f"{ref.manifest.name} ({ref.identity}) at {ref.bundle.root}",
        "source": source.uri + (f"  [GStreamer: {source.pipeline()}]" if hasattr(source, "pipeline") else ""),
        "backend": f"{runtime.describe()}, engine built from {onnx_for(ref.bundle, precision).name} on first use, "
        "then cached (the bundle's engines/ folder, or ~/.cache/leukedge/engines for the packaged model)",
        "preprocess": f"cuda (LoG {ref.manifest.preprocessing.log.gaussian_ksize}x{ref.manifest.preprocessing.log.gaussian_ksize}, "
        f"applied at {ref.manifest.preprocessing.log.apply_at} resolution)",
        "max_batch": str(args.max_batch),
        "ref": ref,
        "precision": precision,
    }


def missing_pieces(ref: Any) -> List[Tuple[str, str, str]]:
    """(what, why not, fix) for each thing this machine lacks to run the configuration."""
    from leukedge.device.preprocessing import choose_preprocess
    from leukedge.doctor import OK, check_cuda, check_opencv, check_tensorrt
    from leukedge.errors import HardwareUnavailableError

    found = []
    for check in (check_tensorrt(), check_cuda()):
        if check.status != OK:
            found.append((check.name, check.detail, check.fix))
    cv = check_opencv()
    if "GStreamer: YES" not in cv.detail:
        found.append(("GStreamer in OpenCV", cv.detail, cv.fix))
    try:
        choose_preprocess("cuda", ref.manifest.preprocessing)
    except HardwareUnavailableError as exc:
        found.append(("CUDA preprocessing", exc.message, exc.hint or ""))
    return found


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default=SOURCE, help=f"camera URI (default {SOURCE})")
    ap.add_argument("--model", default="reference", help="bundle folder, or 'reference' (the packaged model)")
    ap.add_argument(
        "--precision",
        choices=("auto", "fp16", "int8", "fp32"),
        default="auto",
        help="auto: INT8 if the bundle's INT8 model passed its acceptance gate, else FP16",
    )
    ap.add_argument("--max-batch", type=int, default=32, help="largest batch of cells per inference")
    ap.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    ap.add_argument("--out", help="per-cell results file (.jsonl)")
    ap.add_argument("--dry-run", action="store_true", help="check everything that needs no hardware, then exit")
    args = ap.parse_args(argv)

    config = configuration(args)
    for key in ("model", "source", "backend", "preprocess", "max_batch"):
        print(f"{key:>10}: {config[key]}")
    if args.dry_run:
        missing = missing_pieces(config["ref"])
        for what, why, fix in missing:
            print(f"missing: {what}: {why}" + (f"\n         fix: {fix}" if fix else ""))
        print(
            "dry run: configuration valid; "
            + (
                f"{len(missing)} thing(s) missing on this machine (above)"
                if missing
                else "this machine has everything it needs"
            )
        )
        return 0

    from leukedge.device.screener import Screener
    from leukedge.device.session import run_session
    from leukedge.device.status import StatusPrinter

    screener = Screener(
        config["ref"],
        args.source,
        backend="tensorrt",
        precision=config["precision"],
        preprocess="cuda",
        max_batch=args.max_batch,
        runtime_options={"max_batch": args.max_batch},
        duration=args.duration,
        out=args.out,
    )
    screener.open()  # builds (first time) or loads the engine, opens the camera: errors surface here
    print(f"   running: {screener.describe()['runtime']}; Ctrl-C stops", file=sys.stderr)
    printer = StatusPrinter()
    summary = run_session(screener, on_status=printer)
    printer.finish(summary.stats)
    s = summary.stats
    print(
        f"screened {s.frames} frame(s), {s.cells} cell(s), {s.n_all} ALL; {s.mean_fps:.1f} frames/s, "
        f"latency p50 {s.latency_p50_ms} ms, {s.dropped} stale frame(s) dropped"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))  # errors as the CLI prints them: Error/Hint, exit code
