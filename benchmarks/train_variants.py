"""Compare VGG13 variants (width, dense sizes, BatchNorm) on one data folder and one split.

For each variant: parameters, MACs, validation figures at the best epoch,
epochs run, training seconds, model file size and CPU inference cells/s
(Keras, batch 32, preprocessed inputs; the figure evaluation and the Keras
runtime see).  Only validation subjects are used to compare: the test
subjects named here are held out and never looked at.

    nice -n 10 python benchmarks/train_variants.py ../shared/data/cnmc_sample \\
        --out artifacts/variants --val-subjects 1,5,18,25,H1,H5,H12 \\
        --test-subjects 16,3,11,21,H2,H7,H15 --variant 0.0625 --variant 0.125 --variant 0.25 --variant 0.5

A variant is ``WIDTH[:DENSE[:bn]]``, e.g. ``0.25``, ``0.25:128``, ``0.25:256:bn``.
Results go to OUT/variants.json (appended per variant, so a long run can be
resumed with the same command) and OUT/variants.md.  Cells/s measured while
other variants train are not comparable; ``--remeasure`` measures every saved
variant again, back to back, and rewrites the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_variant(text: str):
    from leukedge.trainer.model import ModelConfig

    parts = text.split(":")
    width = float(parts[0])
    dense = int(parts[1]) if len(parts) > 1 and parts[1] else 256
    bn = len(parts) > 2 and parts[2] == "bn"
    return ModelConfig(width=width, dense=(dense, dense), batch_norm=bn)


def cells_per_second(model_path: Path, *, batch: int = 32, seconds: float = 5.0) -> float:
    import numpy as np

    from leukedge.device.runtimes import open_runtime

    with open_runtime(model_path, backend="keras", precision="fp32") as rt:
        x = np.random.default_rng(0).uniform(0, 1, (batch, *rt.input_shape)).astype(np.float32)
        rt.predict(x)  # warm-up
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            rt.predict(x)
            n += batch
        return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--variant", action="append")
    ap.add_argument("--val-subjects", default="")
    ap.add_argument("--test-subjects", default="")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--patience", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, action="append")
    ap.add_argument("--remeasure", action="store_true", help="only re-measure cells/s of the saved variants")
    args = ap.parse_args()
    if args.remeasure:
        remeasure(args.out)
        return

    from leukedge.trainer.training import SplitOptions, TrainOptions, train

    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "variants.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else []
    done = {(r["variant"], r["seed"]) for r in results}
    split = SplitOptions(
        val_subjects=tuple(s for s in args.val_subjects.split(",") if s),
        test_subjects=tuple(s for s in args.test_subjects.split(",") if s),
    )
    for seed in args.seed or [0]:
        for text in args.variant:
            if (text, seed) in done:
                continue
            cfg = parse_variant(text)
            out = args.out / f"vgg13-{text.replace(':', '-')}-s{seed}.h5"
            opts = TrainOptions(
                epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=args.lr,
                patience=args.patience,
                seed=seed,
                model=cfg,
            )
            t0 = time.perf_counter()
            r = train(args.data, out, options=opts, split=split, progress=lambda m, t=text: print(f"[{t}] {m}"))
            info = r.manifest.provenance["model"]
            hist = r.manifest.metrics["history"]
            row = {
                "variant": text,
                "seed": seed,
                "width": cfg.width,
                "dense": cfg.dense[0],
                "batch_norm": cfg.batch_norm,
                "params": info["params"],
                "macs": info["macs"],
                "file_mb": round(out.stat().st_size / 1e6, 2),
                "best_epoch": r.best_epoch,
                "epochs_run": r.epochs_run,
                "train_s": round(time.perf_counter() - t0, 1),
                "epoch_s": round(sum(hist["seconds"]) / len(hist["seconds"]), 1),
                "val": r.validation,
                "cells_per_s": round(cells_per_second(out), 1),
                "warnings": r.warnings,
            }
            results.append(row)
            results_path.write_text(json.dumps(results, indent=1))
            print(json.dumps({k: v for k, v in row.items() if k != "warnings"}))
    write_table(results, args.out / "variants.md")


def remeasure(out: Path) -> None:
    results_path = out / "variants.json"
    results = json.loads(results_path.read_text())
    for r in results:
        path = out / f"vgg13-{r['variant'].replace(':', '-')}-s{r['seed']}.h5"
        r["cells_per_s"] = round(cells_per_second(path), 1)
        print(r["variant"], r["seed"], r["cells_per_s"], flush=True)
    results_path.write_text(json.dumps(results, indent=1))
    write_table(results, out / "variants.md")


def write_table(results: list[dict], path: Path) -> None:
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "",
        "| variant | seed | params | MACs | file MB | best epoch | val loss | val acc | val bal-acc "
        "| val sens | val spec | val AUC | epoch s | CPU cells/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        v = r["val"]
        lines.append(
            f"| {r['variant']} | {r['seed']} | {r['params']:,} | {r['macs'] / 1e6:.0f} M | {r['file_mb']} "
            f"| {r['best_epoch']}/{r['epochs_run']} | {v['loss_balanced']:.3f} | {v['accuracy']:.3f} "
            f"| {v['balanced_accuracy']:.3f} | {v['sensitivity']:.3f} | {v['specificity']:.3f} "
            f"| {v['roc_auc']:.3f} | {r['epoch_s']} | {r['cells_per_s']} |"
        )
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
