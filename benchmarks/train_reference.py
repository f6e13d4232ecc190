"""Train the reference model on cnmc_sample and evaluate it, as docs/accuracy.md reports.

    nice -n 10 python benchmarks/train_reference.py ../shared/data/cnmc_sample --out artifacts/reference

Writes OUT/model.h5 (+ model.split.json), OUT/test/ and OUT/val/ reports (CNN and
baselines on the same subjects) and OUT/summary.json.

The split is fixed here, chosen before any training from the sample's make-up
(SOURCES.md), not from results:

* normal donor H22 holds 262 of the 278 normal cells left after de-duplication,
  so it must train: without it there would be 16 normal cells to learn from;
* the other normal donors have 2 cells each (H6's two cells are copies of H2's
  and are removed), the small ALL subjects 2–3 each; dealt in ID order
  val, test, train, val, test, train, … so each role gets some of each class
  and of folds 0 and 2 (all small subjects come from those folds, the large
  ones from fold 1);
* ALL subjects 23 and 2 (92 and 82 cells) train; 16 (53 cells) is held out
  for test, so the test set holds one new patient at scale.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VAL = ("1", "5", "18", "25", "H1", "H5", "H12")
TEST = ("16", "3", "11", "21", "H2", "H7", "H15")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, default=Path("artifacts/reference"))
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--dense", type=int, default=256)
    ap.add_argument("--batch-norm", action="store_true")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--patience", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from leukedge.trainer.evaluation import evaluate
    from leukedge.trainer.model import ModelConfig
    from leukedge.trainer.training import SplitOptions, TrainOptions, train

    args.out.mkdir(parents=True, exist_ok=True)
    model = args.out / "model.h5"
    result = train(
        args.data,
        model,
        options=TrainOptions(
            epochs=args.epochs,
            patience=args.patience,
            seed=args.seed,
            model=ModelConfig(width=args.width, dense=(args.dense, args.dense), batch_norm=args.batch_norm),
        ),
        split=SplitOptions(val_subjects=VAL, test_subjects=TEST),
        progress=print,
    )
    summary = {"model": str(model), "split": str(result.split_path), "size_mb": model.stat().st_size / 1e6}
    for role in ("val", "test"):
        doc = evaluate(model, args.data, report_dir=args.out / role, baselines=True, subjects=role)
        summary[role] = {
            name: {k: v["value"] for k, v in m["metrics"].items()}
            | {"within_bin_auc": m["area"]["within_bin_auc"]["auc"], "ece": m["calibration"]["ece"]}
            for name, m in {"cnn": doc["cnn"], **doc["baselines"]}.items()
        }
        print(role, json.dumps(summary[role], indent=1))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
