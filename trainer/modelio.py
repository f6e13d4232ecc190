"""Saving Keras models with their manifest inside; reading them is :mod:`leukedge.modelfile` (re-exported here).

The safe loader lives in the core so that the device and the converters read
model files without importing the trainer (no package cycle).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from leukedge.manifest import Manifest
from leukedge.modelfile import (
    ALLOWED_LAYERS,
    MANIFEST_ATTR,
    MODEL_SUFFIXES,
    check_layers,
    layer_classes,
    load_model,
    model_config,
    read_manifest,
    write_manifest,
)

__all__ = [
    "ALLOWED_LAYERS",
    "MANIFEST_ATTR",
    "MODEL_SUFFIXES",
    "check_layers",
    "layer_classes",
    "load_model",
    "model_config",
    "read_manifest",
    "save_model",
    "write_manifest",
]


def save_model(model: Any, path: str | os.PathLike[str], manifest: Manifest) -> Path:
    """Save a Keras model without optimizer state, with its manifest inside; atomic."""
    p = Path(path)
    tmp = p.with_name(p.stem + ".tmp" + p.suffix)
    if p.suffix.lower() == ".keras":
        model.save(tmp)
    else:
        # Keras logs a "legacy format" warning for every .h5; the format is chosen on purpose
        # (it is what the converters and older runtimes read).
        absl_log = logging.getLogger("absl")
        level = absl_log.level
        absl_log.setLevel(logging.ERROR)
        try:
            model.save(tmp, include_optimizer=False)
        finally:
            absl_log.setLevel(level)
    write_manifest(tmp, manifest)
    os.replace(tmp, p)
    return p
