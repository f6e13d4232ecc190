"""The tf.data input pipeline: file paths in, preprocessed batches out, streaming from disk.

Each element is read with ``leukedge.images.read_image`` (through
``dataset.load_cell``), augmented on the uint8 crop when training, and turned
into the model input by ``leukedge.preprocess.preprocess`` with the manifest's
``Preprocessing``: the one preprocessing definition, so training and serving
cannot drift apart.  Only a few batches are in memory at once.

Which files an epoch sees, in what order and with which augmentation, is
decided up front by ``epoch_plan`` from (seed, epoch) alone, so a run that is
interrupted and resumed sees exactly what an uninterrupted run sees.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from leukedge.manifest import Preprocessing
from leukedge.preprocess import preprocess
from leukedge.trainer.dataset import load_cell

COLOUR_JITTER = 0.04  # per-channel gain in [1 − j, 1 + j]
BRIGHTNESS_JITTER = 0.08  # overall gain in [1 − j, 1 + j]


def augment_cell(
    image: np.ndarray,
    *,
    seed: int,
    colour: float = COLOUR_JITTER,
    brightness: float = BRIGHTNESS_JITTER,
    stain: float = 0.0,
) -> np.ndarray:
    """A random dihedral transform (90° rotations, flips), colour and brightness gains, stain jitter.

    ``image`` is H×W×3 uint8 RGB; returns the same shape and dtype.  Gains are
    multiplicative so the black C-NMC background stays black.  ``stain`` > 0
    also shifts hue by up to ±``stain``·30°, scales saturation by 1 ± ``stain``
    and applies a gamma in [1 − stain/2, 1 + stain/2]: donors and labs stain differently.
    """
    rng = np.random.default_rng(seed)
    out = np.rot90(image, k=int(rng.integers(4)))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    gain = (1.0 + rng.uniform(-colour, colour, 3)) * (1.0 + rng.uniform(-brightness, brightness))
    if stain > 0:
        out = stain_jitter(np.ascontiguousarray(out), rng, strength=stain)
    if np.all(gain == 1.0):
        return np.ascontiguousarray(out)
    return np.clip(out.astype(np.float32) * gain.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)


def stain_jitter(image: np.ndarray, rng: np.random.Generator, *, strength: float) -> np.ndarray:
    """Hue shift, saturation gain and gamma of an H×W×3 uint8 RGB image; black stays black."""
    import cv2

    hsv = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)  # H in degrees, S and V in 0..1
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-30.0, 30.0) * strength) % 360.0
    hsv[..., 1] = np.clip(hsv[..., 1] * (1.0 + rng.uniform(-strength, strength)), 0.0, 1.0)
    hsv[..., 2] = hsv[..., 2] ** np.float32(1.0 + rng.uniform(-strength, strength) / 2)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def cell_input(path: str, spec: Preprocessing, *, augment_seed: int | None = None) -> np.ndarray:
    """One model input (H×W×3 float32) from an image file; augmented when ``augment_seed`` is given."""
    crop = load_cell(path)
    if augment_seed is not None:
        crop = augment_cell(crop, seed=augment_seed)
    return preprocess([crop], spec)[0]


def epoch_plan(labels: np.ndarray, *, epoch: int, seed: int, balance: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(indices into the training cells, augmentation seeds) for one epoch.

    With ``balance`` every class appears as often as the largest one: the
    smaller class is drawn again (each copy with its own augmentation) rather
    than the larger one cut, as the paper balances by augmentation.
    """
    rng = np.random.default_rng([seed, epoch])
    labels = np.asarray(labels)
    groups = [np.nonzero(labels == c)[0] for c in np.unique(labels)]
    target = max(len(g) for g in groups) if balance else 0
    parts = []
    for g in groups:
        if not balance or len(g) == target:
            parts.append(g)
            continue
        reps = -(-target // len(g))
        parts.append(np.concatenate([rng.permutation(g) for _ in range(reps)])[:target])
    order = rng.permutation(np.concatenate(parts))
    return order, rng.integers(0, 2**31 - 1, size=len(order), dtype=np.int64)


def subject_balanced_plan(
    labels: np.ndarray, subjects: np.ndarray, *, epoch: int, seed: int, size: int, power: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, augmentation seeds) of ``size`` draws: half each class, subjects weighted by n^power.

    Within a class a subject with n cells is drawn with weight n^``power`` (0.5:
    a donor with 100× the cells is drawn 10× as often, not 100×), then one of
    its cells uniformly, so one large donor does not become "the normal class".
    """
    rng = np.random.default_rng([seed, epoch, 7])
    labels, subjects = np.asarray(labels), np.asarray(subjects)
    classes = np.unique(labels)
    parts = []
    for k, c in enumerate(classes):
        idx = np.nonzero(labels == c)[0]
        _names, inverse, counts = np.unique(subjects[idx], return_inverse=True, return_counts=True)
        weight = (counts.astype(np.float64) ** power / counts)[inverse]
        want = size // len(classes) + (1 if k < size % len(classes) else 0)
        parts.append(rng.choice(idx, size=want, replace=True, p=weight / weight.sum()))
    order = rng.permutation(np.concatenate(parts))
    return order, rng.integers(0, 2**31 - 1, size=len(order), dtype=np.int64)


def make_dataset(
    paths: list[str],
    labels: np.ndarray,
    spec: Preprocessing,
    *,
    batch_size: int,
    augment_seeds: np.ndarray | None = None,
    workers: int | None = None,
) -> Any:
    """A batched, prefetching ``tf.data.Dataset`` of (inputs, labels); deterministic order."""
    import tensorflow as tf

    shape = (spec.input_height, spec.input_width, 3)
    augment = augment_seeds is not None
    seeds = np.asarray(augment_seeds if augment else np.zeros(len(paths)), dtype=np.int64)

    def load(path: bytes, seed: np.int64) -> np.ndarray:
        return cell_input(path.decode("utf-8"), spec, augment_seed=int(seed) if augment else None)

    def to_input(path: Any, seed: Any, label: Any) -> tuple[Any, Any]:
        x = tf.numpy_function(load, [path, seed], tf.float32, stateful=False)
        return tf.ensure_shape(x, shape), label

    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant([str(p) for p in paths], dtype=tf.string), seeds, np.asarray(labels, dtype=np.int64))
    )
    ds = ds.map(to_input, num_parallel_calls=workers or tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(2)
