"""How long ``leukedge convert`` takes, phase by phase, for a model (the full-width VGG13 by default).

    python benchmarks/convert_time.py --model model.h5 --calib-data CALIB --validate VAL
    python benchmarks/convert_time.py --vgg13-width 1.0 --calib-data CALIB --validate VAL

``--vgg13-width`` builds the paper's shape (10 convolutions in 5 blocks of
64-128-256-512-512 filters × width, average pooling, two dense layers,
softmax) with random weights, for timing only: export and calibration cost
the same whatever the weights, but a random model's INT8 gate is meaningless
(and, failing, it adds the per-layer search, reported as its own phase).
Prints the phases and writes them as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path


def vgg13_stand_in(path: Path, width: float, dense: int) -> Path:
    import keras

    from leukedge.manifest import Manifest
    from leukedge.trainer.modelio import save_model

    keras.utils.set_random_seed(0)
    inp = keras.Input((128, 128, 3), name="input")
    x = inp
    for block, filters in enumerate((64, 128, 256, 512, 512), start=1):
        for conv in (1, 2):
            x = keras.layers.Conv2D(
                max(8, int(filters * width)), 3, padding="same", activation="relu", name=f"block{block}_conv{conv}"
            )(x)
        pool = keras.layers.MaxPooling2D if block < 5 else keras.layers.AveragePooling2D
        x = pool(2, name=f"block{block}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(dense, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(dense, activation="relu", name="fc2")(x)
    out = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    model = keras.Model(inp, out, name="vgg13")
    return save_model(model, path, Manifest(name=f"vgg13-w{width:g}-random", provenance={"weights": "random (timing)"}))


def main(argv: list) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, help="a trained .h5/.keras")
    src.add_argument("--vgg13-width", type=float, help="build the paper's VGG13 at this width, random weights")
    ap.add_argument("--dense", type=int, default=256, help="dense layer size for --vgg13-width")
    ap.add_argument("--calib-data", type=Path, required=True)
    ap.add_argument("--validate", type=Path)
    ap.add_argument("--calib-size", type=int, default=500)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    from leukedge.converters.convert import ConvertOptions, convert_model
    from leukedge.device.bench import machine_info
    from leukedge.errors import GateFailedError

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or vgg13_stand_in(Path(tmp) / "vgg13.h5", args.vgg13_width, args.dense)
        options = ConvertOptions(
            out=Path(tmp) / "bundle", calib_data=args.calib_data, validate=args.validate, calib_size=args.calib_size
        )
        machine = machine_info()
        try:
            result = convert_model(model, options, echo=lambda m: print(m, file=sys.stderr))
            seconds, verdict = result.seconds, "passed"
        except GateFailedError as exc:
            from leukedge.bundle import Bundle

            seconds = Bundle.load(options.out).manifest.provenance["conversion"]["seconds"]
            verdict = f"failed ({exc.message})"
        sizes = {p.name: p.stat().st_size for p in Path(options.out).iterdir() if p.is_file()}
    import os

    machine["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"model: {args.model or f'VGG13 width {args.vgg13_width:g}, random weights'}; gate {verdict}")
    for phase, s in seconds.items():
        print(f"  {phase:20s} {s:8.1f} s")
    print("  files: " + ", ".join(f"{n} {b / 2**20:.1f} MB" for n, b in sorted(sizes.items())))
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores, load {machine['load_average_before']} → "
        f"{machine['load_average_after']}"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"seconds": seconds, "files": sizes, "gate": verdict, "machine": machine}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
