"""Reproduce the reference model: subject-grouped CV of the recipe, then the final model on the whole pool.

    nice -n 10 python benchmarks/train_reference.py ../shared/data/cnmc_sample ../shared/data/cnmc_extra \\
        --out artifacts/reference

Writes OUT/cv/ (``leukedge cv``'s cv.json, cv.md, oof.csv and plots: the CNN and the
baselines on the same K folds) and OUT/model.h5, trained on every subject with the same
recipe; its manifest's threshold is the one the CV chose (``leukedge.trainer.cv.THRESHOLD_POLICY``).
``--bundle DIR`` then converts it (FP32 + INT8 ONNX): calibration on the cells of
``CALIB_SUBJECTS`` and the INT8 gate on every other subject, so the two sets share no subject
(the folders are links made under OUT/convert/, nothing is copied).
``--recipe canvas`` runs the earlier recipe (the whole 450 px canvas resized, class balance,
no stain jitter) on the same folds, for comparison; ``--cv-only`` stops after the CV.
Training and CV resume when run again.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# Calibration subjects: one large donor and the large patients of one CV fold; the gate gets the rest.
CALIB_SUBJECTS = ("H22", "2", "23", "30")
# The recipe the CV chose (docs/accuracy.md, "What was tried").
EPOCHS, SCHEDULE, WARMUP, STAIN = 60, "cosine", 2, 0.0


def link_by_subject(data: list[Path], out: Path, calib: tuple[str, ...]) -> tuple[Path, Path]:
    """OUT/convert/{calib,gate}/{all,hem}/ of symbolic links, split by subject."""
    from leukedge.trainer.dataset import find_cell_files

    roots = {"calib": out / "convert" / "calib", "gate": out / "convert" / "gate"}
    for folder in data:
        for f in find_cell_files(folder)[0]:
            role = "calib" if f.subject in calib else "gate"
            dest = roots[role] / f.label / f.path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if not dest.exists():
                dest.symlink_to(f.path.resolve())
    return roots["calib"], roots["gate"]


def convert(model: Path, bundle: Path, data: list[Path], out: Path) -> None:
    from leukedge.converters.convert import ConvertOptions, convert_model

    calib, gate = link_by_subject(data, out, CALIB_SUBJECTS)
    convert_model(model, ConvertOptions(out=bundle, calib_data=calib, validate=gate, calib_size=500))


def recipe(args: argparse.Namespace):
    """(TrainOptions, Preprocessing) of ``--recipe`` with the command line's epochs, schedule and jitter."""
    from leukedge.trainer.fit import Schedule
    from leukedge.trainer.model import ModelConfig, make_preprocessing
    from leukedge.trainer.training import TrainOptions

    model = ModelConfig(width=0.25, dense=(256, 256), dropout=0.5, batch_norm=True)
    schedule = Schedule(args.schedule, warmup_epochs=args.warmup)
    if args.recipe == "canvas":  # the crop before the CV: whole canvas resized (size visible), class balance
        opts = TrainOptions(
            epochs=args.epochs, patience=0, balance="class", model=model, schedule=schedule, stain=args.stain
        )
        return opts, make_preprocessing(crop_mode="canvas")
    opts = TrainOptions(
        epochs=args.epochs,
        patience=0,
        balance="subject",
        samples_per_epoch=args.samples,
        model=model,
        schedule=schedule,
        stain=args.stain,
    )
    return opts, make_preprocessing(crop_mode="cell_box", crop_margin=0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, default=Path("artifacts/reference"))
    ap.add_argument("--recipe", choices=("cell_box", "canvas"), default="cell_box")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--samples", type=int, default=1024, help="cells drawn per epoch (subject balance)")
    ap.add_argument("--schedule", choices=("constant", "cosine"), default=SCHEDULE)
    ap.add_argument("--warmup", type=int, default=WARMUP, help="epochs of linear learning-rate warm-up")
    ap.add_argument("--stain", type=float, default=STAIN, help="stain jitter strength (0: off)")
    ap.add_argument("--cv-only", action="store_true")
    ap.add_argument("--bundle", type=Path, help="convert the final model into this bundle folder")
    args = ap.parse_args()

    from dataclasses import replace

    from leukedge.trainer.cv import cross_validate, cv_summary, decision_from_cv
    from leukedge.trainer.training import SplitOptions, train

    opts, spec = recipe(args)
    doc = cross_validate(args.data, args.out / "cv", k=args.folds, options=opts, spec=spec, progress=print)
    print((args.out / "cv" / "cv.md").read_text())
    if args.cv_only:
        return
    t = doc["models"]["cnn"]["threshold"]
    opts = replace(opts, decision=decision_from_cv(doc))
    result = train(
        args.data,
        args.out / "model.h5",
        options=opts,
        split=SplitOptions(val_fraction=0.0, test_fraction=0.0),
        preprocessing=spec,
        progress=print,
        cv_summary=cv_summary(doc, "cv/cv.json"),
    )
    summary = {"model": str(result.model_path), "threshold": t, "cv": str(args.out / "cv" / "cv.json")}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    if args.bundle:
        convert(result.model_path, args.bundle, args.data, args.out)


if __name__ == "__main__":
    main()
