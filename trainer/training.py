"""``train``: data folder in, ``model.h5`` (with its manifest) and a split file out.

Steps: scan the folder, remove near-duplicate cells, split by subject, then
train epoch by epoch with class-balanced augmentation, validating after each
epoch on the validation subjects.  The best epoch (lowest class-balanced
validation loss) is kept; training stops after ``patience`` epochs without
improvement.  A checkpoint after every epoch lets an interrupted run resume
where it stopped, and the same seed on the CPU gives the same weights (TF op
determinism; every random choice derives from the seed and the epoch).

With more than one GPU visible the model is built and trained under
``tf.distribute.MirroredStrategy`` (batch size is then the global batch).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from leukedge.errors import InvalidInputError
from leukedge.manifest import Decision, Manifest, Preprocessing
from leukedge.trainer import metrics
from leukedge.trainer.checkpoint import Checkpoints, TrainState, checkpoint_dir
from leukedge.trainer.dataset import Cell, DataArg
from leukedge.trainer.fit import (
    Schedule,
    bn_batches,
    compile_model,
    load_crops,
    predict_crops,
    recalibrate_batch_norm,
    run_epoch,
)
from leukedge.trainer.model import CLASSES, ModelConfig, build_vgg13, describe, make_preprocessing
from leukedge.trainer.prepare import Prepared, SplitOptions, data_warnings, prepare
from leukedge.trainer.provenance import build_manifest, jsonable, split_path_for, write_split_file

Progress = Callable[[str], None]
BALANCE_CHOICES = ("subject", "class", "none")
BALANCE_TEXT = {
    "subject": "each epoch draws half its cells from each class; within a class, subjects weighted by √cells",
    "class": "each epoch draws the smaller class again (augmented) up to the larger class's count",
    "none": "each training cell once per epoch",
}


@dataclass(frozen=True)
class TrainOptions:
    """The recipe.  ``patience`` 0 trains exactly ``epochs`` (no early stopping: the recipe of
    ``leukedge cv``, where no validation subjects choose the epoch).  ``balance``: "subject" draws
    ``samples_per_epoch`` cells per epoch, half per class, subjects weighted by √cells; "class"
    repeats the smaller class up to the larger; "none" takes every cell once."""

    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 15
    seed: int = 0
    balance: str = "class"
    workers: int | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    samples_per_epoch: int | None = None
    schedule: Schedule = field(default_factory=Schedule)
    label_smoothing: float = 0.0
    stain: float = 0.0
    tta: bool = False
    decision: Decision | None = None  # the manifest's rule; None: 0.5 with a (0.4, 0.6) band


@dataclass
class TrainResult:
    model_path: Path
    split_path: Path
    manifest: Manifest
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    resumed_at: int
    validation: dict[str, Any]
    warnings: list[str]


def _strategy() -> Any:
    import tensorflow as tf

    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def validation_figures(y: np.ndarray, p: np.ndarray, subjects: np.ndarray) -> dict[str, Any]:
    point = metrics.point_metrics(y, p, threshold=0.5)
    return {
        **{k: float(v) for k, v in point.items()},
        "loss_balanced": metrics.log_loss_balanced(y, p),
        "cells": len(y),
        "subjects": len(set(subjects.tolist())),
        "youden_threshold": metrics.youden_threshold(y, p) if len(set(y.tolist())) == 2 else None,
        "called_all": float(np.mean(p >= 0.5)) if len(p) else None,
    }


def _fingerprint(p: Prepared, opts: TrainOptions, spec: Preprocessing) -> dict[str, Any]:
    o = asdict(opts)
    o.pop("epochs")
    o.pop("patience")
    o.pop("workers")
    o.pop("tta")
    o.pop("decision")
    o["model"] = opts.model.to_dict()
    fp = {
        "files_sha256": p.data.files_sha256(),
        "split": p.split.to_dict()["subjects"],
        "options": o,
        "preprocessing": Manifest(preprocessing=spec).to_dict()["preprocessing"],
    }
    return json.loads(json.dumps(fp))  # as it reads back from state.json (tuples become lists)


@dataclass
class _Run:
    """What the epoch loop works on: the model, its checkpoint and the cells in memory."""

    model: Any
    ckpt: Checkpoints
    state: TrainState
    resumed_at: int
    strategy: Any
    train_crops: np.ndarray
    train_y: np.ndarray
    train_subjects: np.ndarray
    val_crops: np.ndarray
    val_y: np.ndarray
    val_subjects: np.ndarray


def train(
    data_dir: DataArg,
    out: str | Path,
    *,
    options: TrainOptions | None = None,
    split: SplitOptions | None = None,
    preprocessing: Preprocessing | None = None,
    resume: bool = True,
    progress: Progress | None = None,
    cv_summary: dict[str, Any] | None = None,
) -> TrainResult:
    """Train the VGG13 on ``data_dir`` (one folder, several, or a list file) and save ``out``.

    ``cv_summary`` (from ``cv.cv_summary``) is stored as the manifest's ``metrics.cv``: the
    cross-validation that chose the recipe and ``options.decision``'s threshold.
    """
    opts = options or TrainOptions()
    spec = preprocessing or make_preprocessing()
    say = progress or (lambda _m: None)
    out_path = _check_train_args(out, opts, spec)
    prep = prepare(data_dir, split or SplitOptions(), seed=opts.seed, progress=say)
    warnings = data_warnings(prep)
    for w in warnings:
        say(f"note: {w}")
    run = _start_run(prep, opts, spec, out_path, resume=resume, say=say)
    _epoch_loop(run, opts, spec, say)
    validation = _final_validation(run, opts, spec, warnings, say)
    manifest = _save(run, prep, opts, spec, out_path, validation, warnings, cv_summary)
    return TrainResult(
        out_path,
        split_path_for(out_path),
        manifest,
        run.state.best_epoch,
        run.state.epoch,
        _stopped_early(run.state, opts),
        run.resumed_at,
        validation,
        warnings,
    )


def _check_train_args(out: str | Path, opts: TrainOptions, spec: Preprocessing) -> Path:
    out_path = Path(out)
    if out_path.suffix.lower() not in (".h5", ".keras"):
        raise InvalidInputError(f"--out is {out_path}, expected a .h5 file", hint="e.g. --out model.h5")
    if spec.layout != "NHWC" or spec.channel_order != "RGB":
        raise InvalidInputError("training builds NHWC RGB models; the preprocessing asks for another layout")
    if opts.epochs < 1 or opts.batch_size < 1:
        raise InvalidInputError(f"--epochs and --batch-size must be ≥ 1, got {opts.epochs} and {opts.batch_size}")
    if opts.balance not in BALANCE_CHOICES:
        raise InvalidInputError(f"--balance is {opts.balance!r}, expected one of {', '.join(BALANCE_CHOICES)}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    return out_path


def _stopped_early(state: TrainState, opts: TrainOptions) -> bool:
    return opts.patience > 0 and state.wait >= opts.patience


def _start_run(
    prep: Prepared, opts: TrainOptions, spec: Preprocessing, out_path: Path, *, resume: bool, say: Progress
) -> _Run:
    """Read the crops, then build the model or load it from the checkpoint."""
    train_cells, val_cells = prep.split.cells(prep.data.cells, "train"), prep.split.cells(prep.data.cells, "val")
    say(
        f"split ({prep.split.method}): train {len(prep.split.train)} subjects / {len(train_cells)} cells, "
        f"val {len(prep.split.val)} / {len(val_cells)}, test {len(prep.split.test)} subjects held out"
    )
    say(f"making {len(train_cells) + len(val_cells)} crops ({spec.crop.mode} mode)")
    train_crops, val_crops = load_crops(train_cells, spec, workers=opts.workers), load_crops(val_cells, spec)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(opts.seed)
    tf.config.experimental.enable_op_determinism()
    ckpt = Checkpoints(checkpoint_dir(out_path))
    if not resume:
        ckpt.clear()
    fingerprint = _fingerprint(prep, opts, spec)
    state = ckpt.load_state(fingerprint)
    strategy = _strategy()
    with strategy.scope():
        if state is not None:
            model = keras.saving.load_model(ckpt.model_path(state), compile=True, safe_mode=True)
            say(f"resuming after epoch {state.epoch} from {ckpt.dir}")
        else:
            state = TrainState(fingerprint=fingerprint)
            model = build_vgg13(opts.model, input_shape=(spec.input_height, spec.input_width, 3))
            compile_model(model, opts)
    return _Run(
        model, ckpt, state, state.epoch, strategy,
        train_crops, _labels(train_cells), _subjects(train_cells),
        val_crops, _labels(val_cells), _subjects(val_cells),
    )  # fmt: skip


def _labels(cells: list[Cell]) -> np.ndarray:
    return np.array([c.file.label == "all" for c in cells], np.int64)


def _subjects(cells: list[Cell]) -> np.ndarray:
    return np.array([c.file.subject for c in cells], dtype=object)


def _epoch_loop(run: _Run, opts: TrainOptions, spec: Preprocessing, say: Progress) -> None:
    """Epochs until ``opts.epochs`` or early stopping; a checkpoint after each."""
    state = run.state
    try:
        while state.epoch < opts.epochs and not _stopped_early(state, opts):
            entry = run_epoch(
                run.model, run.train_crops, run.train_y, run.train_subjects, spec, epoch=state.epoch, options=opts
            )
            recalibrate_batch_norm(run.model, bn_batches(run.train_crops, run.train_y, spec, opts))
            if len(run.val_y):
                val = validation_figures(run.val_y, predict_crops(run.model, run.val_crops, spec), run.val_subjects)
                entry.update(
                    val_loss=val["loss_balanced"],
                    val_accuracy=val["accuracy"],
                    val_balanced_accuracy=val["balanced_accuracy"],
                    val_auc=val["roc_auc"],
                )
            state.epoch += 1
            for k, v in entry.items():
                state.history.setdefault(k, []).append(v)
            # Without early stopping the last epoch is the model; with it, the lowest validation loss.
            monitor = entry.get("val_loss", 0.0) if opts.patience > 0 else -float(state.epoch)
            best = monitor < state.best_monitor
            if best:
                state.best_monitor, state.best_epoch, state.wait = monitor, state.epoch, 0
            else:
                state.wait += 1
            state.seconds += entry["seconds"]
            run.ckpt.save(run.model, state, best=best)
            say(_epoch_line(state.epoch, opts.epochs, entry, best))
    except KeyboardInterrupt:
        say(f"interrupted; the checkpoint in {run.ckpt.dir} holds epoch {state.epoch}: run the same command to resume")
        raise


def _final_validation(
    run: _Run, opts: TrainOptions, spec: Preprocessing, warnings: list[str], say: Progress
) -> dict[str, Any]:
    if run.ckpt.best_path.is_file():
        run.model.load_weights(run.ckpt.best_path)
    if not len(run.val_y):
        return {"cells": 0, "subjects": 0, "epoch": run.state.best_epoch, "note": "no validation subjects"}
    p_val = predict_crops(run.model, run.val_crops, spec, tta=opts.tta)
    validation = validation_figures(run.val_y, p_val, run.val_subjects)
    validation["epoch"] = run.state.best_epoch
    if validation["called_all"] in (0.0, 1.0):
        warnings.append(
            f"in inference mode the model calls every validation cell {'ALL' if validation['called_all'] else 'normal'}"
            " (collapsed); do not use it"
        )
        say(f"WARNING: {warnings[-1]}")
    return validation


def _save(
    run: _Run,
    prep: Prepared,
    opts: TrainOptions,
    spec: Preprocessing,
    out_path: Path,
    validation: dict[str, Any],
    warnings: list[str],
    cv_summary: dict[str, Any] | None,
) -> Manifest:
    state = run.state
    info = {**opts.model.to_dict(), **describe(run.model)}
    training = {
        **{k: v for k, v in asdict(opts).items() if k not in ("model", "decision")},
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "stopped_early": _stopped_early(state, opts),
        "seconds": round(state.seconds, 1),
        "monitor": "class-balanced validation cross-entropy" if opts.patience > 0 else "none (fixed epochs)",
        "augmentation": "dihedral (90° rotations, flips), per-channel gain ±4%, brightness ±8%"
        + (f", stain jitter {opts.stain} (hue, saturation, gamma)" if opts.stain else "")
        + "; training only",
        "balance": BALANCE_TEXT[opts.balance],
        "strategy": type(run.strategy).__name__,
        "deterministic": True,
        "warnings": warnings,
    }
    split_path = split_path_for(out_path)
    manifest = build_manifest(
        spec=spec,
        data=prep.data,
        removed=prep.removed,
        split=prep.split,
        training=training,
        model_info=info,
        validation=jsonable(validation),
        history=jsonable(state.history),
        split_file=split_path.name,
        decision=opts.decision,
        classes=CLASSES,
        cv=cv_summary,
    )
    from leukedge.trainer.modelio import save_model

    write_split_file(split_path, data=prep.data, removed=prep.removed, split=prep.split)
    save_model(run.model, out_path, manifest)
    return manifest


def _epoch_line(epoch: int, epochs: int, e: dict[str, float], best: bool) -> str:
    line = f"epoch {epoch:3d}/{epochs}  loss {e['loss']:.4f}  acc {e['accuracy']:.3f}  lr {e['lr']:.2g}"
    if "val_loss" in e:
        line += (
            f"  |  val loss {e['val_loss']:.4f}  acc {e['val_accuracy']:.3f}  "
            f"bal-acc {e['val_balanced_accuracy']:.3f}  auc {e['val_auc']:.3f}"
        )
    return line + f"  ({e['seconds']:.1f} s){'  *best' if best else ''}"
