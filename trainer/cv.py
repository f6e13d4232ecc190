"""``leukedge cv``: a training recipe judged by K-fold cross-validation grouped by subject.

Steps: scan the folders, remove near-duplicate cells, deal subjects into K
folds (``folds.subject_folds``), make every cell's crop once, then for each
fold train the recipe on the other folds for a fixed number of epochs and
predict the held-out subjects (out-of-fold, OOF).  The baselines (area-only
logistic regression, SVM and KNN on hand-crafted features) are fitted on the
same training folds and scored on the same cells.  Each fold's predictions are
saved as they finish (``fold<k>.npz``), so an interrupted run resumes by fold.

The decision threshold comes from the pooled OOF predictions by the rule in
``THRESHOLD_POLICY``; ``cv.json`` records it, and how far each fold's own
best threshold lies from it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from leukedge.manifest import Preprocessing
from leukedge.trainer import metrics
from leukedge.trainer.dataset import DataArg, scan
from leukedge.trainer.dedup import deduplicate
from leukedge.trainer.fit import (
    bn_batches,
    compile_model,
    load_crops,
    predict_crops,
    recalibrate_batch_norm,
    run_epoch,
)
from leukedge.trainer.folds import subject_folds

Progress = Callable[[str], None]
THRESHOLD_POLICY = "maximise balanced accuracy on the pooled out-of-fold predictions of subject-grouped CV"


def cross_validate(
    data: DataArg,
    out_dir: str | Path,
    *,
    k: int,
    options: Any,
    spec: Preprocessing,
    baselines: bool = True,
    n_boot: int = 1000,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the CV (see the module docstring); writes ``cv.json`` and ``cv.md`` in ``out_dir``."""
    from leukedge.trainer.cv_report import summarize_cv, write_cv

    say = progress or (lambda _m: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = scan(data, progress=lambda i, n: say(f"reading cells: {i}/{n}"))
    kept, removed = deduplicate(dataset)
    cells = kept.cells
    folds = subject_folds(cells, k)
    y = np.array([c.file.label == "all" for c in cells], np.int64)
    subj = np.array([c.file.subject for c in cells], dtype=object)
    fold_of = np.array([next(f for f, members in enumerate(folds) if s in members) for s in subj])
    say(f"{len(cells)} cells ({len(removed)} near-duplicates removed), {len(set(subj))} subjects, {k} folds")
    for f, members in enumerate(folds):
        say(f"  fold {f}: {', '.join(members)} ({int(np.sum(fold_of == f))} cells)")
    say(f"making {len(cells)} crops ({spec.crop.mode} mode, {spec.input_height} px)")
    crops = load_crops(cells, spec, workers=options.workers)
    key = _recipe_key(options, spec, [c.file.rel for c in cells], folds)
    scores: dict[str, np.ndarray] = {"cnn": np.full(len(cells), np.nan), "cnn_tta": np.full(len(cells), np.nan)}
    seconds = []
    for f in range(k):
        held = fold_of == f
        p, p_tta, secs = _fold_predictions(out / f"fold{f}.npz", key, crops, y, subj, held, spec, options, say, f)
        scores["cnn"][held], scores["cnn_tta"][held] = p, p_tta
        seconds.append(secs)
    if baselines:
        scores.update(_baseline_scores(cells, y, fold_of, k, seed=options.seed))
    area = np.array([c.area for c in cells], np.float64)
    doc = summarize_cv(y, subj, area, fold_of, scores, n_boot=n_boot, seed=options.seed)
    doc["folds"] = [{"fold": f, "subjects": list(m), "train_seconds": seconds[f]} for f, m in enumerate(folds)]
    doc["recipe"] = {"options": _jsonable(asdict(options)), "preprocessing": _jsonable(asdict(spec)), "key": key}
    doc["data"] = {
        "folders": [str(r) for r in (kept.roots or (kept.root,))],
        "cells": len(cells),
        "duplicates_removed": len(removed),
        "skipped": len(dataset.skipped),
    }
    doc["threshold_policy"] = THRESHOLD_POLICY
    write_cv(out, doc, {"y": y, "subject": subj, "area": area, "fold": fold_of, "scores": scores})
    return doc


def decision_from_cv(doc: dict[str, Any]) -> Any:
    """The manifest's Decision a CV chose for its CNN: its threshold, the policy, a ±0.1 indeterminate band."""
    from leukedge.manifest import Decision

    t = float(doc["models"]["cnn"]["threshold"])
    band = (max(0.0, t - 0.1), min(1.0, t + 0.1))
    return Decision(threshold=round(t, 4), policy=str(doc["threshold_policy"]), indeterminate=band)


def cv_summary(doc: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    """What a model's manifest keeps of the CV that chose its recipe and threshold (``metrics.cv``)."""
    cnn = doc["models"]["cnn"]
    pooled = cnn["pooled"]

    def value(block: dict[str, Any]) -> dict[str, Any]:
        return {"value": block["value"], "ci95": block["ci95"]}

    return {
        "file": path,
        "folds": [f["subjects"] for f in doc["folds"]],
        "threshold": cnn["threshold"],
        "threshold_policy": doc["threshold_policy"],
        "threshold_across_folds": cnn["threshold_across_folds"],
        "pooled": {
            "roc_auc": value(pooled["ranking"]["roc_auc"]),
            "auc_within_area_deciles": value(pooled["ranking"]["auc_within_area_deciles"]),
            "sensitivity": value(pooled["metrics"]["sensitivity"]),
            "specificity": value(pooled["metrics"]["specificity"]),
        },
        "recipe_key": doc["recipe"]["key"],
    }


def _fold_predictions(
    path: Path,
    key: str,
    crops: np.ndarray,
    y: np.ndarray,
    subj: np.ndarray,
    held: np.ndarray,
    spec: Preprocessing,
    options: Any,
    say: Progress,
    fold: int,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The held-out cells' ALL probabilities (plain and 8-view TTA), from the file if this recipe made it."""
    if path.is_file():
        saved = np.load(path, allow_pickle=False)
        if str(saved["key"]) == key and len(saved["p"]) == int(held.sum()):
            say(f"fold {fold}: predictions from {path}")
            return saved["p"], saved["p_tta"], float(saved["seconds"])
    t0 = time.perf_counter()
    model = train_fold_model(crops[~held], y[~held], subj[~held], spec, options, lambda m: say(f"fold {fold}: {m}"))
    p = predict_crops(model, crops[held], spec)
    p_tta = predict_crops(model, crops[held], spec, tta=True)
    secs = time.perf_counter() - t0
    auc = metrics.roc_auc(y[held], p) if len(set(y[held].tolist())) == 2 else float("nan")
    say(f"fold {fold}: done in {secs:.0f} s, held-out AUC {auc:.3f}")
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, key=key, p=p, p_tta=p_tta, seconds=secs)
    tmp.replace(path)
    return p, p_tta, secs


def train_fold_model(
    crops: np.ndarray, y: np.ndarray, subj: np.ndarray, spec: Preprocessing, options: Any, say: Progress
) -> Any:
    """A fresh model trained on these cells for exactly ``options.epochs`` epochs (no validation)."""
    import keras

    from leukedge.trainer.model import build_vgg13

    keras.utils.set_random_seed(options.seed)
    model = build_vgg13(options.model, input_shape=(spec.input_height, spec.input_width, 3))
    compile_model(model, options)
    for epoch in range(options.epochs):
        e = run_epoch(model, crops, y, subj, spec, epoch=epoch, options=options)
        say(f"epoch {epoch + 1}/{options.epochs} loss {e['loss']:.4f} acc {e['accuracy']:.3f} ({e['seconds']:.0f} s)")
    recalibrate_batch_norm(model, bn_batches(crops, y, spec, options))
    return model


def _baseline_scores(cells: list, y: np.ndarray, fold_of: np.ndarray, k: int, *, seed: int) -> dict[str, np.ndarray]:
    from leukedge.trainer.baselines import BASELINES, fit_baselines, predict_baselines

    features = np.stack([c.features for c in cells])
    out = {name: np.full(len(cells), np.nan) for name in BASELINES}
    for f in range(k):
        held = fold_of == f
        fitted = fit_baselines(features[~held], y[~held], seed=seed)
        for name, p in predict_baselines(fitted, features[held]).items():
            out[name][held] = p
    return out


def _recipe_key(options: Any, spec: Preprocessing, files: list[str], folds: list[tuple[str, ...]]) -> str:
    """A hash of everything a fold's predictions depend on, so a changed recipe is never reused."""
    o = _jsonable(asdict(options))
    o.pop("workers", None)
    blob = json.dumps([o, _jsonable(asdict(spec)), sorted(files), folds], sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
