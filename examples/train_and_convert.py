"""Train the VGG13 on a C-NMC folder, then convert it to a model bundle through the INT8 acceptance gate.

What it shows
    The host-side path, through the library (``leukedge train`` and
    ``leukedge convert`` are the same calls): ``leukedge.trainer.training.train``
    splits the cells by subject (never by image), trains and saves
    ``model.h5`` with its manifest; the subjects it held out for testing
    become the gate's validation set; ``leukedge.converters.convert.convert_model``
    exports FP32 ONNX, calibrates INT8 on cells of the subjects it trained and validated on, and
    runs the acceptance gate on the held-out subjects.  The gate table is
    printed; the exit status is 7 when the gate fails (the bundle is still
    written, with the failure recorded in its manifest), as ``leukedge convert``.

What it needs
    ``pip install 'leukedge[train,convert]'`` (TensorFlow, tf2onnx, onnx, ONNX
    Runtime).  Data: a C-NMC folder (``all/`` and ``hem/``, or
    ``training_data/fold_k/...``, files named ``UID_<subject>_<image>_<cell>_<all|hem>``),
    e.g. ``../shared/data/cnmc_sample``; or ``--synthetic N`` to draw N
    synthetic cells per class.  A real training (default sizes) takes hours
    on a CPU; the tiny settings below take well under a minute and make a
    model that has learned little, so its gate may fail: that is the gate working.

How to run (from the repository root)
    python examples/train_and_convert.py --synthetic 32 --out-dir /tmp/tc --epochs 2 --width 0.0625 --dense 16 --size 64
    python examples/train_and_convert.py ../shared/data/cnmc_sample --out-dir /tmp/tc-real --epochs 3 --width 0.0625 --size 64
    python examples/train_and_convert.py C-NMC/training_data --out-dir runs/vgg13 --epochs 60 --width 0.25
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Iterable, Optional

from leukedge import GateFailedError, run_main


def link_subjects(data: Path, subjects: Iterable[str], dest: Path) -> int:
    """Link (or copy) the cells of ``subjects`` into ``dest/{all,hem}``; returns how many."""
    from leukedge.cnmc import parse_cnmc_name
    from leukedge.images import iter_image_files

    wanted, n = set(subjects), 0
    for path in iter_image_files([data]):
        name = parse_cnmc_name(path.name)
        if name is None or name.subject not in wanted:
            continue
        target = dest / name.label / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.symlink(path.resolve(), target)
        except OSError:  # no symlinks here (some file systems): copy
            shutil.copyfile(path, target)
        n += 1
    return n


def main(argv: Optional[list] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="?", help="C-NMC folder of labelled cells")
    ap.add_argument("--synthetic", type=int, metavar="N", help="no DATA: draw N synthetic cells per class")
    ap.add_argument("--out-dir", required=True, help="model.h5, bundle/ and the gate's cell folders go here")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--width", type=float, default=0.25, help="VGG13 channel multiplier (1.0 = 64…512)")
    ap.add_argument("--dense", type=int, default=256, help="units of each dense layer")
    ap.add_argument("--size", type=int, default=128, help="model input side in pixels")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if bool(args.data) == bool(args.synthetic):
        ap.error("give a DATA folder or --synthetic N (one of them)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    from leukedge.bundle import Bundle
    from leukedge.converters.convert import ConvertOptions, convert_model
    from leukedge.converters.gate import gate_table
    from leukedge.trainer.model import ModelConfig, make_preprocessing
    from leukedge.trainer.training import SplitOptions, TrainOptions, train

    if args.synthetic:
        from leukedge.synthetic import write_cell_dataset

        data = write_cell_dataset(
            out / "data", per_class=args.synthetic, subjects_per_class=6, seed=args.seed, size=160
        )
    else:
        data = Path(args.data)

    # 1. train: subject-level split (validation and test subjects drawn per class), best epoch kept
    options = TrainOptions(
        epochs=args.epochs,
        batch_size=16,
        seed=args.seed,
        model=ModelConfig(width=args.width, dense=(args.dense, args.dense), dropout=0.0),
    )
    result = train(
        data,
        out / "model.h5",
        options=options,
        split=SplitOptions(val_fraction=0.34, test_fraction=0.34),
        preprocessing=make_preprocessing(size=args.size),
        resume=False,
        progress=print,
    )
    v = result.validation
    print(
        f"trained {result.model_path}: best epoch {result.best_epoch}/{result.epochs_run}; validation "
        f"({v['cells']} cells, {v['subjects']} subjects) accuracy {v['accuracy']:.3f}, AUC {v['roc_auc']:.3f}"
    )

    # 2. the gate validates on subjects the model never saw; calibration, the training and validation subjects
    subjects = result.manifest.provenance["split"]["subjects"]
    held_out, calib = out / "gate_cells", out / "calib_cells"
    for folder in (held_out, calib):
        shutil.rmtree(folder, ignore_errors=True)
    n_test = link_subjects(data, subjects["test"], held_out)
    n_calib = link_subjects(data, [*subjects["train"], *subjects["val"]], calib)
    print(f"gate: {n_test} cells of held-out subjects {', '.join(subjects['test'])}; calibration: {n_calib} cells")

    # 3. convert: FP32 ONNX + INT8 Q/DQ + acceptance gate -> bundle (written even when the gate fails)
    bundle_dir = out / "bundle"
    shutil.rmtree(bundle_dir, ignore_errors=True)
    convert = ConvertOptions(out=bundle_dir, calib_data=calib, calib_size=min(500, n_calib), validate=held_out)
    try:
        converted = convert_model(result.model_path, convert, echo=print)
    except GateFailedError as exc:
        print(gate_table(Bundle.load(bundle_dir, verify=False).manifest.parity))
        print(exc.user_message(), file=sys.stderr)
        return exc.exit_code
    print(gate_table(converted.bundle.manifest.parity))
    print(f"bundle: {converted.bundle.root} ({', '.join(sorted(converted.bundle.manifest.files))})")
    print(f"next: leukedge screen synthetic:// --model {converted.bundle.root} --max-frames 20")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))  # errors as the CLI prints them: Error/Hint, exit code
