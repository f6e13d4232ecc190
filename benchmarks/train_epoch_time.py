"""Training time per 1,000 images at each VGG13 width, on this machine.

Runs the real training step (the tf.data pipeline reading 450×450 PNG cells
from disk, augmentation, LoG preprocessing, forward + backward + Adam) on
synthetic C-NMC-style cells, and the input pipeline alone, so one can see
whether a width is compute- or input-bound.

    nice -n 10 python benchmarks/train_epoch_time.py --widths 0.0625,0.125,0.25,0.5,1.0

Prints a Markdown table; ``--json`` writes the numbers too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def measure(model, ds, batches: int) -> float:
    """Seconds per image for ``batches`` training batches after two warm-up batches."""
    it = iter(ds)
    for _ in range(2):
        x, y = next(it)
        model.train_on_batch(x, y)
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        x, y = next(it)
        model.train_on_batch(x, y)
        n += int(x.shape[0])
    return (time.perf_counter() - t0) / n


def input_only(ds, batches: int) -> float:
    it = iter(ds)
    next(it)
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        x, _ = next(it)
        n += int(x.shape[0])
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", default="0.0625,0.125,0.25,0.5,1.0")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--images", type=int, default=96, help="distinct synthetic cells on disk")
    ap.add_argument("--seconds", type=float, default=20.0, help="rough time budget per width")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import numpy as np
    import tensorflow as tf

    from leukedge.synthetic import write_cell_dataset
    from leukedge.trainer.model import ModelConfig, build_vgg13, describe, make_preprocessing
    from leukedge.trainer.pipeline import epoch_plan, make_dataset

    spec = make_preprocessing()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = write_cell_dataset(tmp, per_class=args.images // 2, subjects_per_class=4, seed=0, size=450)
        paths = sorted(str(p) for p in Path(root).glob("*/*.png"))
        labels = np.array(["_all." in p for p in paths], np.int64)
        order = np.concatenate([epoch_plan(labels, epoch=e, seed=0)[0] for e in range(40)])
        seeds = np.arange(len(order), dtype=np.int64)

        def dataset():
            return make_dataset([paths[i] for i in order], labels[order], spec, batch_size=args.batch_size,
                                augment_seeds=seeds).repeat()  # fmt: skip

        s_input = input_only(dataset(), 10)
        for w in (float(x) for x in args.widths.split(",")):
            tf.keras.backend.clear_session()
            model = build_vgg13(ModelConfig(width=w))
            model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
            probe = measure(model, dataset(), 1)
            batches = max(2, min(30, int(args.seconds / (probe * args.batch_size))))
            s = measure(model, dataset(), batches)
            info = describe(model)
            rows.append({"width": w, **info, "s_per_1000": round(1000 * s, 1), "batches": batches})
            print(json.dumps(rows[-1]), flush=True)
    print()
    print(f"Machine: {platform.machine()} {os.cpu_count()} CPUs, TensorFlow {tf.__version__}, batch {args.batch_size}")
    print(f"Input pipeline alone (read PNG, augment, LoG): {1000 * s_input:.1f} s per 1,000 images")
    print()
    print("| width | params | MACs/image | training s per 1,000 images |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['width']} | {r['params']:,} | {r['macs'] / 1e6:.0f} M | {r['s_per_1000']} |")
    if args.json:
        args.json.write_text(json.dumps({"input_s_per_1000": 1000 * s_input, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
