"""Tiny leukedge models, trained for real in seconds on synthetic cells, for the converter tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from leukedge.converters.labelled import list_cells, read_cells
from leukedge.manifest import Manifest, Preprocessing
from leukedge.preprocess import preprocess

SIZE = 32  # model input side: small enough to train and convert in seconds


def tiny_manifest(size: int = SIZE) -> Manifest:
    return Manifest(
        name="tiny-test", architecture="tiny-cnn", preprocessing=Preprocessing(input_height=size, input_width=size)
    )


def build(manifest: Manifest, *, seed: int = 0):  # type: ignore[no-untyped-def]
    import keras

    keras.utils.set_random_seed(seed)
    p = manifest.preprocessing
    inp = keras.Input((p.input_height, p.input_width, 3), name="input")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="block1_conv1")(inp)
    x = keras.layers.MaxPooling2D(name="block1_pool")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="block2_conv1")(x)
    x = keras.layers.MaxPooling2D(name="block2_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(16, activation="relu", name="fc1")(x)
    out = keras.layers.Dense(2, activation="softmax", name="predictions")(x)
    return keras.Model(inp, out, name="tiny")


def train_tiny(data: Path, out: Path, *, epochs: int = 25, seed: int = 0) -> Path:
    """Train the tiny CNN on a C-NMC-style folder and save it with modelio (manifest inside)."""
    import keras

    from leukedge.trainer.modelio import save_model

    manifest = tiny_manifest()
    cells = read_cells(list_cells(data, what="data"), data)
    x = preprocess(cells.crops, manifest.preprocessing)
    y = keras.utils.to_categorical(cells.y(), 2)
    model = build(manifest, seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, shuffle=True)
    acc = float(np.mean(np.argmax(model(x, training=False), axis=1) == cells.y()))
    assert acc >= 0.9, f"the tiny model did not learn the synthetic classes (train accuracy {acc:.2f})"
    return save_model(model, out, manifest)


_MEMO: dict = {}


def synthetic_sets(root: Path) -> tuple:
    """(train, validation) folders of synthetic C-NMC-named cells; disjoint seeds."""
    from leukedge.synthetic import write_cell_dataset

    if "sets" not in _MEMO:
        train = write_cell_dataset(root / "syn_train", per_class=40, subjects_per_class=5, seed=7, size=160)
        val = write_cell_dataset(root / "syn_val", per_class=100, subjects_per_class=5, seed=11, size=160)
        _MEMO["sets"] = (train, val)
    return _MEMO["sets"]


def trained_tiny(root: Path) -> Path:
    """The tiny model trained on ``synthetic_sets``; trained once per test session."""
    if "model" not in _MEMO:
        train, _ = synthetic_sets(root)
        _MEMO["model"] = train_tiny(train, root / "tiny.h5")
    return _MEMO["model"]


def converted_tiny_bundle(root: Path):  # type: ignore[no-untyped-def]
    """The tiny model converted with calibration and the gate (one conversion per session)."""
    if "bundle" not in _MEMO:
        from leukedge.converters.convert import ConvertOptions, convert_model

        train, val = synthetic_sets(root)
        options = ConvertOptions(out=root / "tiny-bundle", calib_data=train, validate=val)
        _MEMO["bundle"] = convert_model(trained_tiny(root), options, echo=lambda _m: None)
    return _MEMO["bundle"].bundle
