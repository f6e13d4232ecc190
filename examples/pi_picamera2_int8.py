"""Real-time screening on a Raspberry Pi: picamera2 camera, ONNX Runtime with the INT8 model.

What it shows
    The configuration for a Raspberry Pi 4/5 with a camera module: frames
    from ``picamera2://0`` (libcamera; the channel order is fixed at the
    source and each frame's meta says so), cells classified by the bundle's
    INT8 (Q/DQ) ONNX model on ONNX Runtime's CPU provider, the LoG on the CPU
    (the reference implementation).  It refuses an INT8 model that failed
    its acceptance gate (``--allow-ungated`` overrides).  It is the
    ``Screener`` inside ``leukedge.device.session.run_session``, as
    ``leukedge screen`` runs it.

What it needs
    Raspberry Pi OS (64-bit) with picamera2 (``sudo apt install
    python3-picamera2``; make the venv with ``--system-site-packages``), ONNX
    Runtime (``pip install onnxruntime``) and a camera module.  ``--dry-run``
    needs no camera: it checks the arguments, verifies the bundle and its
    INT8 gate, lists what is missing, and screens ``--check-frames``
    synthetic frames through exactly the same runtime and preprocessing.

How to run (from the repository root)
    python examples/pi_picamera2_int8.py --dry-run --check-frames 3          # anywhere; exit 0
    python examples/pi_picamera2_int8.py --duration 60 --out cells.jsonl     # on the Pi
    python examples/pi_picamera2_int8.py --source 'picamera2://0?width=1280&height=960&fps=15'

The same run on the command line:
    leukedge screen picamera2://0 --backend onnxruntime --precision int8 --preprocess cpu --out cells.jsonl
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional, Tuple

from leukedge import run_main

SOURCE = "picamera2://0?width=1280&height=960"
SETTINGS: Dict[str, Any] = {"backend": "onnxruntime", "precision": "int8", "preprocess": "cpu", "workers": 2}


def check_int8_gate(ref: Any, allow_ungated: bool) -> str:
    """The INT8 model's acceptance-gate verdict from the manifest; an error if it failed (unless allowed)."""
    from leukedge.errors import BundleError
    from leukedge.verdict import verdict_of

    if ref.bundle is None or not ref.bundle.has("onnx_int8"):
        raise BundleError(
            f"{ref.bundle.root if ref.bundle else ref.keras_path}: the bundle has no INT8 model",
            hint="make one with: leukedge convert model.h5 --calib-data CELLS --validate HELD_OUT_CELLS",
        )
    gate = verdict_of(ref.manifest.parity, "int8")
    if gate.passed is True:
        m = gate.figures.get("metrics", {})
        return f"passed on {m.get('cells', '?')} cells ({m.get('flips', '?')} label flips)"
    why = "; ".join(gate.reasons) or "no gate result in the manifest"
    if not allow_ungated:
        raise BundleError(
            f"the bundle's INT8 model did not pass its acceptance gate: {why}",
            hint="re-run leukedge convert with --validate, or pass --allow-ungated to use it anyway",
        )
    return f"NOT passed ({why}); used because of --allow-ungated"


def missing_pieces() -> List[Tuple[str, str, str]]:
    from leukedge.doctor import OK, check_onnxruntime, check_picamera2

    return [(c.name, c.detail, c.fix) for c in (check_picamera2(), check_onnxruntime()) if c.status != OK]


def screen(ref: Any, source: str, **kw: Any) -> Any:
    """Run the Pi configuration on ``source`` until it ends, ``duration`` or Ctrl-C; returns the session summary."""
    from leukedge.device.screener import Screener
    from leukedge.device.session import run_session

    screener = Screener(ref, source, **SETTINGS, **kw)
    screener.open()  # loads the model, opens the camera: errors surface here, before the status line
    print(f"   running: {screener.describe()['runtime']}, preprocess {screener.describe()['preprocess']}")
    return run_session(screener)


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default=SOURCE, help=f"camera URI (default {SOURCE})")
    ap.add_argument("--model", default="reference", help="bundle folder, or 'reference' (the packaged model)")
    ap.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    ap.add_argument("--out", help="per-cell results file (.jsonl)")
    ap.add_argument("--allow-ungated", action="store_true", help="use an INT8 model that failed its gate")
    ap.add_argument("--dry-run", action="store_true", help="check everything that needs no camera, then exit")
    ap.add_argument("--check-frames", type=int, default=3, help="dry run: synthetic frames to screen (0: none)")
    args = ap.parse_args(argv)

    from leukedge.device.runtimes import open_runtime, resolve_model
    from leukedge.device.sources import make_source

    ref = resolve_model(None if args.model == "reference" else args.model)  # loads the bundle, checks SHA-256s
    gate = check_int8_gate(ref, args.allow_ungated)
    source = make_source(args.source)  # parses the URI; opens nothing
    runtime = open_runtime(ref, backend=SETTINGS["backend"], precision=SETTINGS["precision"])  # unopened
    print(f"     model: {ref.manifest.name} ({ref.identity}); INT8 gate {gate}")
    print(f"    source: {source.uri}")
    print(
        f"   backend: {runtime.name} {runtime.precision}, preprocess {SETTINGS['preprocess']}, {SETTINGS['workers']} segment threads"
    )
    if not args.dry_run:
        s = screen(ref, args.source, duration=args.duration, out=args.out).stats
        print(
            f"screened {s.frames} frame(s), {s.cells} cell(s), {s.n_all} ALL; {s.mean_fps:.1f} frames/s, "
            f"latency p50 {s.latency_p50_ms} ms, {s.dropped} stale frame(s) dropped"
        )
        return 0

    missing = missing_pieces()
    for what, why, fix in missing:
        print(f"missing: {what}: {why}" + (f"\n         fix: {fix}" if fix else ""))
    if args.check_frames > 0:
        synthetic = (
            f"synthetic://?frames={args.check_frames}&width=1280&height=960&cells=8&pool={min(4, args.check_frames)}"
        )
        s = screen(ref, synthetic, out=args.out).stats
        print(f"checked: {s.frames} synthetic frame(s) through this configuration: {s.cells} cell(s), {s.n_all} ALL")
    print(
        "dry run: configuration valid; "
        + (
            f"{len(missing)} thing(s) missing on this machine (above)"
            if missing
            else "this machine has everything it needs"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))  # errors as the CLI prints them: Error/Hint, exit code
