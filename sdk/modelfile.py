"""Keras model files: ``model.h5`` with its manifest inside, loaded as untrusted input.

Training writes the manifest (preprocessing, classes, decision, provenance)
as the HDF5 attribute ``leukedge_manifest``, so ``leukedge convert model.h5``
needs nothing repeated on its command line.

Loading never runs code from the file: the architecture JSON is read first
and every layer class is checked against a list of plain Keras layers, so a
``Lambda`` or unknown custom layer is refused with a clear error before Keras
sees the file; Keras itself then loads in safe mode.

It is in the core because the device (Keras runtime, ``--model model.h5``),
the converters and the trainer all read model files; h5py and Keras are
imported inside the functions that need them.  Saving (which only training
does) stays in :mod:`leukedge.trainer.modelio`.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

from leukedge.errors import BundleError
from leukedge.manifest import Manifest

MANIFEST_ATTR = "leukedge_manifest"
MODEL_SUFFIXES = (".h5", ".keras")

# Layer classes a leukedge model may contain.  Everything else is refused.
ALLOWED_LAYERS = frozenset(
    {
        "InputLayer",
        "Conv2D",
        "MaxPooling2D",
        "AveragePooling2D",
        "GlobalAveragePooling2D",
        "Flatten",
        "Dense",
        "Dropout",
        "BatchNormalization",
        "Activation",
        "ReLU",
        "Softmax",
        "Rescaling",
        "Functional",
        "Sequential",
        "Model",
    }
)


def _open_h5(path: Path):  # type: ignore[no-untyped-def]
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise BundleError(
            f"{path}: not a readable HDF5 model file ({exc}); it may be truncated or corrupt",
            hint="re-copy the file, or re-train with 'leukedge train'",
        ) from exc


def _check_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        raise BundleError(f"{p}: no such model file")
    if p.suffix.lower() not in MODEL_SUFFIXES:
        raise BundleError(f"{p}: expected a Keras model file (.h5 or .keras), got '{p.suffix}'")
    if p.stat().st_size == 0:
        raise BundleError(f"{p}: model file is empty (0 bytes)")
    return p


def model_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The architecture JSON stored in a .h5 or .keras file, read without TensorFlow."""
    p = _check_path(path)
    try:
        if p.suffix.lower() == ".keras":
            with zipfile.ZipFile(p) as z:
                return json.loads(z.read("config.json"))
        with _open_h5(p) as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise BundleError(
                    f"{p}: HDF5 file holds no Keras model (no 'model_config'); weights-only files are not models"
                )
            return json.loads(raw if isinstance(raw, str) else raw.decode("utf-8"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{p}: not a readable Keras model file ({exc})", hint="re-save it with Keras") from exc


def layer_classes(config: dict[str, Any]) -> list[str]:
    """The ``class_name`` of every layer in a Keras model config, nested models included."""
    found = [str(config.get("class_name"))]
    for layer in config.get("config", {}).get("layers", []) or []:
        if isinstance(layer, dict):
            found.extend(layer_classes(layer))
    return found


def check_layers(path: str | os.PathLike[str]) -> None:
    """Refuse a model holding a layer outside ALLOWED_LAYERS (a Lambda, a custom layer)."""
    bad = sorted({c for c in layer_classes(model_config(path)) if c not in ALLOWED_LAYERS})
    if bad:
        raise BundleError(
            f"{path}: the model contains layer type(s) {', '.join(bad)}, which leukedge refuses to load "
            "(such layers can run arbitrary code, or are not part of a leukedge model)",
            hint="rebuild the model from plain layers with 'leukedge train'",
        )


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The manifest that training stored in the model file, validated."""
    p = _check_path(path)
    raw: Any = None
    if p.suffix.lower() == ".keras":
        try:
            with zipfile.ZipFile(p) as z:
                raw = (
                    z.read("leukedge_manifest.json").decode("utf-8")
                    if "leukedge_manifest.json" in z.namelist()
                    else None
                )
        except zipfile.BadZipFile as exc:
            raise BundleError(f"{p}: not a readable .keras file ({exc})") from exc
    else:
        with _open_h5(p) as f:
            raw = f.attrs.get(MANIFEST_ATTR)
    if raw is None:
        raise BundleError(
            f"{p}: not a leukedge model (it carries no '{MANIFEST_ATTR}' with its preprocessing and classes)",
            hint="train it with 'leukedge train', which records how its inputs were preprocessed",
        )
    text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{p}: its '{MANIFEST_ATTR}' is not valid JSON ({exc})") from exc
    return Manifest.from_dict(data, where=f"{p} ({MANIFEST_ATTR})")


def write_manifest(path: str | os.PathLike[str], manifest: Manifest) -> None:
    """Store ``manifest`` inside an existing .h5 (attribute) or .keras (zip member) file."""
    p = Path(path)
    if p.suffix.lower() == ".keras":
        with zipfile.ZipFile(p, "a") as z:
            z.writestr("leukedge_manifest.json", manifest.to_json())
        return
    import h5py

    with h5py.File(p, "a") as f:
        f.attrs[MANIFEST_ATTR] = manifest.to_json()


def load_model(path: str | os.PathLike[str]) -> tuple[Any, Manifest]:
    """Load a leukedge Keras model safely; returns (keras model, manifest)."""
    p = _check_path(path)
    manifest = read_manifest(p)
    check_layers(p)
    from leukedge.extras import require_tensorflow

    require_tensorflow()
    import keras

    try:
        model = keras.saving.load_model(p, compile=False, safe_mode=True)
    except (ValueError, TypeError, OSError, KeyError) as exc:
        raise BundleError(f"{p}: Keras could not load the model ({exc})", hint="re-train or re-save the model") from exc
    return model, manifest
