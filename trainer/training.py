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
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from leukedge.errors import InvalidInputError
from leukedge.manifest import Manifest, Preprocessing
from leukedge.trainer import metrics
from leukedge.trainer.checkpoint import Checkpoints, TrainState, checkpoint_dir
from leukedge.trainer.dataset import Cell, Dataset, scan
from leukedge.trainer.dedup import Removed, deduplicate
from leukedge.trainer.model import ModelConfig, build_vgg13, describe, make_preprocessing
from leukedge.trainer.pipeline import epoch_plan, make_dataset
from leukedge.trainer.provenance import build_manifest, jsonable, split_path_for, write_split_file
from leukedge.trainer.split import Split, check_no_leakage, split_subjects

Progress = Callable[[str], None]
BN_CALIBRATION_EPOCH = 2**20  # the plan index of the fixed, balanced order BatchNorm statistics are measured in


@dataclass(frozen=True)
class TrainOptions:
    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 15
    seed: int = 0
    balance: bool = True
    workers: int | None = None
    model: ModelConfig = field(default_factory=ModelConfig)


@dataclass(frozen=True)
class SplitOptions:
    val_subjects: tuple[str, ...] = ()
    test_subjects: tuple[str, ...] = ()
    val_fold: str | None = None
    test_fold: str | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2


@dataclass
class Prepared:
    data: Dataset
    removed: list[Removed]
    split: Split


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


def prepare(data_dir: str | Path, split: SplitOptions, *, seed: int, progress: Progress | None = None) -> Prepared:
    """Scan, deduplicate and split a data folder; checks the split for leakage."""
    say = progress or (lambda _m: None)
    data = scan(data_dir, progress=lambda k, n: say(f"reading cells: {k}/{n}"))
    kept, removed = deduplicate(data)
    s = split_subjects(
        kept.cells,
        val_subjects=list(split.val_subjects),
        test_subjects=list(split.test_subjects),
        val_fold=split.val_fold,
        test_fold=split.test_fold,
        val_fraction=split.val_fraction,
        test_fraction=split.test_fraction,
        seed=seed,
    )
    check_no_leakage(s, kept.cells)
    return Prepared(kept, removed, s)


def data_warnings(p: Prepared) -> list[str]:
    out = []
    if p.data.skipped:
        out.append(f"{len(p.data.skipped)} file(s) skipped (unreadable or mislabelled); listed in the split file")
    if p.removed:
        crossing = sum(r.reason == "duplicate across subjects" for r in p.removed)
        out.append(f"{len(p.removed)} near-duplicate cell(s) removed ({crossing} filed under another subject)")
    if len(p.data.sizes()) > 1:
        out.append(
            "images come in several sizes ("
            + ", ".join(f"{k}: {v}" for k, v in sorted(p.data.sizes().items()))
            + "); each is padded to a square and resized, so a cell's apparent size depends on its file's size"
        )
    if p.data.unnamed:
        out.append(
            f"{p.data.unnamed} file(s) lack C-NMC names (UID_<subject>_…); each counts as its own subject, "
            "so their patients may be split across training and validation"
        )
    return out


def _paths_labels(cells: list[Cell]) -> tuple[list[str], np.ndarray]:
    return [str(c.file.path) for c in cells], np.array([c.file.label == "all" for c in cells], np.int64)


def _strategy() -> Any:
    import tensorflow as tf

    if len(tf.config.list_physical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _compile(model: Any, lr: float) -> None:
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )


def predict_p_all(model: Any, ds: Any) -> np.ndarray:
    """ALL probabilities of a dataset in inference mode (class order ("hem", "all"))."""
    if ds.cardinality() == 0:
        return np.zeros(0, np.float32)
    return np.asarray(model.predict(ds, verbose=0))[:, 1]


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


def recalibrate_batch_norm(model: Any, ds: Any, *, batches: int = 16) -> bool:
    """Set every BatchNorm layer's moving statistics to the average over ``batches`` batches.

    Moving averages lag the weights: after few epochs they describe an older
    network, and a model can then call every cell one class at inference.  A
    pass in training mode with momentum k/(k+1) at batch k gives the plain
    mean of the batch statistics under the final weights.  Returns False (and
    does nothing) for a model without BatchNorm.
    """
    import keras

    layers = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers:
        return False
    saved = [layer.momentum for layer in layers]
    try:
        for k, (x, _) in enumerate(ds.take(batches)):
            for layer in layers:
                layer.momentum = k / (k + 1.0)
            model(x, training=True)
    finally:
        for layer, m in zip(layers, saved):
            layer.momentum = m
    return True


def _fingerprint(p: Prepared, opts: TrainOptions, spec: Preprocessing) -> dict[str, Any]:
    o = asdict(opts)
    o.pop("epochs")
    o.pop("patience")
    o.pop("workers")
    o["model"] = opts.model.to_dict()
    fp = {
        "files_sha256": p.data.files_sha256(),
        "split": p.split.to_dict()["subjects"],
        "options": o,
        "preprocessing": Manifest(preprocessing=spec).to_dict()["preprocessing"],
    }
    return json.loads(json.dumps(fp))  # as it reads back from state.json (tuples become lists)


def train(
    data_dir: str | Path,
    out: str | Path,
    *,
    options: TrainOptions | None = None,
    split: SplitOptions | None = None,
    preprocessing: Preprocessing | None = None,
    resume: bool = True,
    progress: Progress | None = None,
) -> TrainResult:
    """Train the VGG13 on ``data_dir`` and save ``out`` (see the module docstring)."""
    opts = options or TrainOptions()
    spec = preprocessing or make_preprocessing()
    say = progress or (lambda _m: None)
    out_path = Path(out)
    if out_path.suffix.lower() not in (".h5", ".keras"):
        raise InvalidInputError(f"--out is {out_path}, expected a .h5 file", hint="e.g. --out model.h5")
    if spec.layout != "NHWC" or spec.channel_order != "RGB":
        raise InvalidInputError("training builds NHWC RGB models; the preprocessing asks for another layout")
    if opts.epochs < 1 or opts.batch_size < 1:
        raise InvalidInputError(f"--epochs and --batch-size must be ≥ 1, got {opts.epochs} and {opts.batch_size}")
    out_path.parent.mkdir(parents=True, exist_ok=True)

    prep = prepare(data_dir, split or SplitOptions(), seed=opts.seed, progress=say)
    warnings = data_warnings(prep)
    for w in warnings:
        say(f"note: {w}")
    train_cells, val_cells = prep.split.cells(prep.data.cells, "train"), prep.split.cells(prep.data.cells, "val")
    say(
        f"split ({prep.split.method}): train {len(prep.split.train)} subjects / {len(train_cells)} cells, "
        f"val {len(prep.split.val)} / {len(val_cells)}, test {len(prep.split.test)} subjects held out"
    )

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
            _compile(model, opts.learning_rate)
    resumed_at = state.epoch

    train_paths, train_y = _paths_labels(train_cells)
    val_paths, val_y = _paths_labels(val_cells)
    val_subj = np.array([c.file.subject for c in val_cells], dtype=object)
    val_ds = make_dataset(val_paths, val_y, spec, batch_size=opts.batch_size, workers=opts.workers)
    # Training cells without augmentation, in a fixed order: BatchNorm statistics are measured on them.
    calib = epoch_plan(train_y, epoch=BN_CALIBRATION_EPOCH, seed=opts.seed, balance=True)[0]
    train_eval_ds = make_dataset(
        [train_paths[i] for i in calib], train_y[calib], spec, batch_size=opts.batch_size, workers=opts.workers
    )
    try:
        while state.epoch < opts.epochs and state.wait < opts.patience:
            t0 = time.perf_counter()
            order, seeds = epoch_plan(train_y, epoch=state.epoch, seed=opts.seed, balance=opts.balance)
            ds = make_dataset(
                [train_paths[i] for i in order],
                train_y[order],
                spec,
                batch_size=opts.batch_size,
                augment_seeds=seeds,
                workers=opts.workers,
            )
            fit = model.fit(ds, epochs=1, verbose=0, shuffle=False)
            recalibrate_batch_norm(model, train_eval_ds)
            p_val = predict_p_all(model, val_ds)
            val = validation_figures(val_y, p_val, val_subj)
            state.epoch += 1
            entry = {
                "loss": float(fit.history["loss"][-1]),
                "accuracy": float(fit.history["accuracy"][-1]),
                "val_loss": val["loss_balanced"],
                "val_accuracy": val["accuracy"],
                "val_balanced_accuracy": val["balanced_accuracy"],
                "val_auc": val["roc_auc"],
                "seconds": time.perf_counter() - t0,
            }
            for k, v in entry.items():
                state.history.setdefault(k, []).append(v)
            best = val["loss_balanced"] < state.best_monitor
            if best:
                state.best_monitor, state.best_epoch, state.wait = val["loss_balanced"], state.epoch, 0
            else:
                state.wait += 1
            state.seconds += entry["seconds"]
            ckpt.save(model, state, best=best)
            say(_epoch_line(state.epoch, opts.epochs, entry, best))
    except KeyboardInterrupt:
        say(f"interrupted; the checkpoint in {ckpt.dir} holds epoch {state.epoch}: run the same command to resume")
        raise

    if ckpt.best_path.is_file():
        model.load_weights(ckpt.best_path)
    p_val = predict_p_all(model, val_ds)
    validation = validation_figures(val_y, p_val, val_subj)
    validation["epoch"] = state.best_epoch
    if len(p_val) and (validation["called_all"] in (0.0, 1.0)):
        warnings.append(
            f"in inference mode the model calls every validation cell {'ALL' if validation['called_all'] else 'normal'}"
            " (collapsed); do not use it"
        )
        say(f"WARNING: {warnings[-1]}")
    split_path = split_path_for(out_path)
    info = {**opts.model.to_dict(), **describe(model)}
    training = {
        **{k: v for k, v in asdict(opts).items() if k != "model"},
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch,
        "stopped_early": state.wait >= opts.patience,
        "seconds": round(state.seconds, 1),
        "monitor": "class-balanced validation cross-entropy",
        "augmentation": "dihedral (90° rotations, flips), per-channel gain ±4%, brightness ±8%; training only",
        "balance": "each epoch draws the smaller class again (augmented) up to the larger class's count",
        "strategy": type(strategy).__name__,
        "deterministic": True,
        "warnings": warnings,
    }
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
    )
    from leukedge.trainer.modelio import save_model

    write_split_file(split_path, data=prep.data, removed=prep.removed, split=prep.split)
    save_model(model, out_path, manifest)
    return TrainResult(
        out_path,
        split_path,
        manifest,
        state.best_epoch,
        state.epoch,
        state.wait >= opts.patience,
        resumed_at,
        validation,
        warnings,
    )


def _epoch_line(epoch: int, epochs: int, e: dict[str, float], best: bool) -> str:
    return (
        f"epoch {epoch:3d}/{epochs}  loss {e['loss']:.4f}  acc {e['accuracy']:.3f}  |  "
        f"val loss {e['val_loss']:.4f}  acc {e['val_accuracy']:.3f}  bal-acc {e['val_balanced_accuracy']:.3f}  "
        f"auc {e['val_auc']:.3f}  ({e['seconds']:.1f} s){'  *best' if best else ''}"
    )
