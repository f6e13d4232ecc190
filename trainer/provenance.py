"""What a trained model records about itself: its manifest and its split file.

The manifest (stored inside ``model.h5``) carries the preprocessing, classes
and decision rule that ``convert`` and every runtime need, plus provenance
(data folder, file count, SHA-256 of the file list, subjects per split, seed,
versions) and validation metrics with the training history.

The split file (``<model stem>.split.json`` beside the model) lists which
subjects and files were used for training, validation and test, with each
file's perceptual hash, so that evaluation and calibration can stay off the
training subjects and catch copies of training cells filed elsewhere.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from pathlib import Path
from typing import Any

from leukedge._version import __version__
from leukedge.manifest import TRAINED_CLASSES, Decision, Manifest, Preprocessing
from leukedge.trainer.dataset import Cell, Dataset
from leukedge.trainer.dedup import Removed
from leukedge.trainer.split import ROLES, Split

DECISION_POLICY = (
    "fixed 0.5: the model is trained class-balanced, so 0.5 is its neutral point; "
    "not tuned on validation (a few normal donors are too few to tune a threshold on)"
)
DECISION = Decision(threshold=0.5, policy=DECISION_POLICY, indeterminate=(0.4, 0.6))


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN/inf floats as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def split_path_for(model_path: Path) -> Path:
    return model_path.with_name(model_path.stem + ".split.json")


def role_counts(split: Split, cells: list[Cell]) -> dict[str, dict[str, int]]:
    out = {}
    for role in ROLES:
        members = split.cells(cells, role)
        out[role] = {
            "subjects": len(getattr(split, role)),
            "all": sum(c.file.label == "all" for c in members),
            "hem": sum(c.file.label == "hem" for c in members),
        }
    return out


def versions() -> dict[str, str]:
    out = {"leukedge": __version__, "python": platform.python_version()}
    try:
        import keras
        import tensorflow as tf

        out["tensorflow"], out["keras"] = tf.__version__, keras.__version__
    except ImportError:
        pass
    return out


def data_record(data: Dataset, removed: list[Removed]) -> dict[str, Any]:
    return {
        "folder": str(data.root.resolve()),
        "folders": [str(r.resolve()) for r in (data.roots or (data.root,))],
        "files": len(data.cells),
        "files_sha256": data.files_sha256(),
        "files_sha256_of": "sorted '<relative path>\\t<bytes>' lines of the files used",
        "counts": data.counts(),
        "sizes": data.sizes(),
        "skipped": len(data.skipped),
        "duplicates_removed": len(removed),
        "ignored": data.ignored,
        "without_cnmc_name": data.unnamed,
    }


def build_manifest(
    *,
    spec: Preprocessing,
    data: Dataset,
    removed: list[Removed],
    split: Split,
    training: dict[str, Any],
    model_info: dict[str, Any],
    validation: dict[str, Any],
    history: dict[str, list[float]],
    split_file: str,
    decision: Decision | None = None,
    classes: tuple[str, ...] | None = None,
    cv: dict[str, Any] | None = None,
) -> Manifest:
    provenance = {
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "data": data_record(data, removed),
        "split": {**split.to_dict(), "counts": role_counts(split, data.cells), "file": split_file},
        "seed": training.get("seed"),
        # The softmax order the labels were encoded in (a cell is 1 when ALL): the manifest's
        # 'classes' must match it, so a swapped list is refused instead of inverting every label.
        "training": {**training, "classes": list(TRAINED_CLASSES)},
        "model": model_info,
        "versions": versions(),
    }
    metrics = {"validation": validation, "history": history, **({"cv": cv} if cv else {})}
    return Manifest(
        preprocessing=spec,
        decision=decision or DECISION,
        classes=classes or Manifest.classes,
        provenance=provenance,
        metrics=metrics,
    )


def write_split_file(path: Path, *, data: Dataset, removed: list[Removed], split: Split) -> Path:
    """The split file (see the module docstring); written atomically."""
    files = {
        role: [
            {"file": c.file.rel, "subject": c.file.subject, "label": c.file.label, "phash": c.phash.tobytes().hex()}
            for c in split.cells(data.cells, role)
        ]
        for role in ROLES
    }
    doc = {
        "schema": "leukedge.split/1",
        "data": str(data.root.resolve()),
        "folders": [str(r.resolve()) for r in (data.roots or (data.root,))],
        **split.to_dict(),
        "counts": role_counts(split, data.cells),
        "files": files,
        "duplicates_removed": [r.to_dict() for r in removed],
        "skipped": [{"file": f, "reason": why} for f, why in data.skipped],
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_split_file(path: Path) -> dict[str, Any] | None:
    """The split file's content, or None if absent or unreadable."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == "leukedge.split/1" else None
