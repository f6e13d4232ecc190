"""Training on cells held in memory: each crop read once, augmented and preprocessed per epoch.

``train`` and ``cv`` share these steps.  A cell's crop is made once by the
scoring path's own function (``dataset.load_cell`` → ``segment.cell_image_crop``)
at the model input size and kept as uint8 (49 KB a cell at 128 px), so an
epoch costs the model's work, not file decoding.  The LoG and scaling run per
epoch on the augmented crops through ``leukedge.preprocess.preprocess``, the
one preprocessing definition.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from leukedge.manifest import Preprocessing
from leukedge.preprocess import preprocess
from leukedge.trainer.dataset import Cell, load_cell
from leukedge.trainer.pipeline import augment_cell, epoch_plan, subject_balanced_plan

Progress = Callable[[str], None]
BN_CALIBRATION_EPOCH = 2**20  # the plan index of the fixed, balanced order BatchNorm statistics are measured in


@dataclass(frozen=True)
class Schedule:
    """How the learning rate moves: linear warm-up, then constant or cosine decay to ``floor``·lr."""

    kind: str = "constant"  # "constant" or "cosine"
    warmup_epochs: int = 0
    floor: float = 0.02

    def rate(self, base: float, epoch: int, epochs: int) -> float:
        """The learning rate of 0-based ``epoch`` out of ``epochs``."""
        if epoch < self.warmup_epochs:
            return base * (epoch + 1) / (self.warmup_epochs + 1)
        if self.kind != "cosine":
            return base
        span = max(1, epochs - self.warmup_epochs)
        t = min(1.0, (epoch - self.warmup_epochs) / span)
        return base * (self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * t)))


def load_crops(cells: list[Cell], spec: Preprocessing, *, workers: int | None = None) -> np.ndarray:
    """N×H×W×3 uint8 crops of ``cells`` at the model input size, as ``score`` would make them."""
    n_workers = workers or min(4, os.cpu_count() or 1)
    h, w = spec.input_height, spec.input_width

    def one(cell: Cell) -> np.ndarray:
        crop = load_cell(cell.file.path, spec)
        if crop.shape[:2] != (h, w):  # "canvas" crops are the padded image; size them once here
            from leukedge.preprocess import resize_crop

            crop = resize_crop(crop, spec)
        return crop

    if not cells:
        return np.zeros((0, h, w, 3), np.uint8)
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        return np.stack(list(pool.map(one, cells)))


def training_inputs(
    crops: np.ndarray, order: np.ndarray, seeds: np.ndarray, spec: Preprocessing, *, stain: float
) -> np.ndarray:
    """The model inputs of one epoch: each drawn crop augmented with its own seed, then preprocessed."""
    augmented = [augment_cell(crops[i], seed=int(s), stain=stain) for i, s in zip(order, seeds)]
    return preprocess(augmented, spec)


def epoch_draw(
    labels: np.ndarray, subjects: np.ndarray, *, epoch: int, seed: int, balance: str, size: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Which cells an epoch sees: ``balance`` "subject" (per class, then per subject), "class" or "none"."""
    if balance == "subject":
        return subject_balanced_plan(labels, subjects, epoch=epoch, seed=seed, size=size or len(labels))
    return epoch_plan(labels, epoch=epoch, seed=seed, balance=balance == "class")


def dihedral(x: np.ndarray, k: int) -> np.ndarray:
    """The k-th (0–7) of the 8 rotations and flips of an N×H×W×C batch."""
    out = np.rot90(x, k=k % 4, axes=(1, 2))
    return out[:, :, ::-1] if k >= 4 else out


def predict_crops(
    model: Any, crops: np.ndarray, spec: Preprocessing, *, tta: bool = False, batch_size: int = 64
) -> np.ndarray:
    """ALL probabilities (class order ("hem", "all")) of uint8 crops in inference mode.

    With ``tta`` the mean over the 8 rotations and flips of each input (the LoG with a
    symmetric border commutes with them, so the preprocessed input is transformed).
    """
    if len(crops) == 0:
        return np.zeros(0, np.float32)
    out = []
    for start in range(0, len(crops), 256):
        x = preprocess(list(crops[start : start + 256]), spec)
        views = [dihedral(x, k) for k in range(8)] if tta else [x]
        p = [np.asarray(model.predict(np.ascontiguousarray(v), batch_size=batch_size, verbose=0))[:, 1] for v in views]
        out.append(np.mean(p, axis=0))
    return np.concatenate(out).astype(np.float32)


def one_hot(y: np.ndarray, classes: int = 2) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[np.asarray(y, np.int64)]


def run_epoch(
    model: Any,
    crops: np.ndarray,
    labels: np.ndarray,
    subjects: np.ndarray,
    spec: Preprocessing,
    *,
    epoch: int,
    options: Any,
) -> dict[str, float]:
    """One epoch of ``model.fit`` on freshly augmented inputs; returns loss, accuracy, lr, seconds."""
    t0 = time.perf_counter()
    rate = options.schedule.rate(options.learning_rate, epoch, options.epochs)
    model.optimizer.learning_rate.assign(rate)
    order, seeds = epoch_draw(
        labels, subjects, epoch=epoch, seed=options.seed, balance=options.balance, size=options.samples_per_epoch
    )
    x = training_inputs(crops, order, seeds, spec, stain=options.stain)
    fit = model.fit(x, one_hot(labels[order]), batch_size=options.batch_size, epochs=1, shuffle=False, verbose=0)
    return {
        "loss": float(fit.history["loss"][-1]),
        "accuracy": float(fit.history["accuracy"][-1]),
        "lr": float(rate),
        "seconds": time.perf_counter() - t0,
    }


def compile_model(model: Any, options: Any) -> None:
    """Adam on categorical cross-entropy (with ``options.label_smoothing``), on one-hot labels."""
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=options.learning_rate),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing),
        metrics=["accuracy"],
    )


def recalibrate_batch_norm(model: Any, batches: Any) -> bool:
    """Set every BatchNorm layer's moving statistics to the average over ``batches`` (input arrays).

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
        for k, x in enumerate(batches):
            for layer in layers:
                layer.momentum = k / (k + 1.0)
            model(x, training=True)
    finally:
        for layer, m in zip(layers, saved):
            layer.momentum = m
    return True


def bn_batches(crops: np.ndarray, labels: np.ndarray, spec: Preprocessing, opts: Any, n: int = 16) -> Any:
    """Un-augmented training inputs in a fixed, class-balanced order, for BatchNorm statistics."""
    order = epoch_plan(labels, epoch=BN_CALIBRATION_EPOCH, seed=opts.seed, balance=True)[0]
    for k in range(min(n, -(-len(order) // opts.batch_size))):
        yield preprocess(list(crops[order[k * opts.batch_size : (k + 1) * opts.batch_size]]), spec)
