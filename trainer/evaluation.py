"""``evaluate``: a model and a labelled folder in, figures by subject (JSON, HTML) out.

Only subjects the model never saw count: by default every subject the
model's manifest lists for training or validation is left out, and with the
split file beside the model, so are possible copies of its training cells.
Predictions go through ``predict_files`` (the scoring engine of ``leukedge score``), so a bundle
evaluates exactly as a ``.h5`` does.  ``baselines`` refits the Table I models
on the model's own training subjects and scores them on the same cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from leukedge.errors import InvalidInputError
from leukedge.trainer import metrics
from leukedge.trainer.dataset import Cell, DataArg, Dataset, scan
from leukedge.trainer.dedup import deduplicate, duplicates_of
from leukedge.trainer.predict import predict_files
from leukedge.trainer.provenance import jsonable, read_split_file, split_path_for
from leukedge.trainer.split import subject_key

Progress = Callable[[str], None]


def _seen_subjects(manifest: Any) -> tuple[set[str], set[str]]:
    subjects = (manifest.provenance or {}).get("split", {}).get("subjects", {})
    return set(subjects.get("train", [])), set(subjects.get("val", []))


def _training_folders(manifest: Any) -> list[Path]:
    """The data folders the model was trained on, as its manifest records them."""
    data = (manifest.provenance or {}).get("data", {})
    folders = data.get("folders") or ([data["folder"]] if data.get("folder") else [])
    return [Path(f) for f in folders]


def _same_folders(a: list[Path], data: Dataset) -> bool:
    try:
        return bool(a) and {p.resolve() for p in a} == {p.resolve() for p in (data.roots or (data.root,))}
    except OSError:
        return False


SUBJECT_CHOICES = ("unseen", "test", "val", "all")


def select_cells(
    data: Dataset, manifest: Any, model_path: Path | None, *, subjects: str = "unseen"
) -> tuple[list[Cell], dict[str, Any]]:
    """The cells to evaluate, and an account of what was left out and why.

    ``subjects``: "unseen" (default) leaves out the model's training and
    validation subjects; "test" / "val" keep only the subjects the model's
    split gave that role; "all" keeps everything (diagnostics only: figures
    on training subjects are optimistic).
    """
    if subjects not in SUBJECT_CHOICES:
        raise InvalidInputError(f"--subjects is {subjects!r}, expected one of {', '.join(SUBJECT_CHOICES)}")
    train, val = _seen_subjects(manifest)
    split = (manifest.provenance or {}).get("split", {}).get("subjects", {})
    note: dict[str, Any] = {"subjects": subjects, "left_out_subjects": [], "possible_copies_of_training": []}
    if subjects == "all":
        return data.cells, note
    present = {c.file.subject for c in data.cells}
    if subjects in ("test", "val"):
        keep = set(split.get(subjects, []))
        if not keep:
            raise InvalidInputError(
                f"--subjects {subjects}: the model's manifest names no {subjects} subjects",
                hint="use --subjects unseen, or train with --test-subjects / --val-subjects",
            )
    else:
        keep = present - train - val
    cells = [c for c in data.cells if c.file.subject in keep]
    note["left_out_subjects"] = sorted(present - keep, key=subject_key)
    split_doc = read_split_file(split_path_for(model_path)) if model_path is not None else None
    if split_doc and subjects != "val" and not _same_folders(_training_folders(manifest), data):
        ref = [
            np.frombuffer(bytes.fromhex(f["phash"]), np.uint8)
            for role in ("train", "val")
            for f in split_doc.get("files", {}).get(role, [])
        ]
        hits = set(duplicates_of(cells, np.stack(ref))) if ref else set()
        note["possible_copies_of_training"] = [cells[i].file.rel for i in sorted(hits)]
        cells = [c for k, c in enumerate(cells) if k not in hits]
    if not cells:
        if subjects == "unseen":
            raise InvalidInputError(
                f"{data.root}: every subject here was used to train or validate this model "
                f"({', '.join(note['left_out_subjects'][:12])}); figures on them would be optimistic",
                hint="evaluate on other subjects, or pass --subjects all to evaluate anyway",
            )
        raise InvalidInputError(
            f"{data.root}: none of the model's {subjects} subjects ({', '.join(sorted(keep)[:12])}) is here",
            hint="point DATA at the folder the model was trained on, or use --subjects unseen",
        )
    return cells, note


def _baseline_block(
    manifest: Any, data: Dataset, cells: list[Cell], y: np.ndarray, subj: np.ndarray, area: np.ndarray, **kw: Any
) -> dict[str, Any]:
    from leukedge.trainer.baselines import BASELINES, fit_baselines, predict_baselines

    train_subjects, _ = _seen_subjects(manifest)
    folders = _training_folders(manifest)
    if not train_subjects or not folders:
        raise InvalidInputError(
            "--baselines: the model's manifest records no training subjects or data folder",
            hint="baselines are refitted on the model's training subjects; train the model with 'leukedge train'",
        )
    missing = [f for f in folders if not f.is_dir()]
    if _same_folders(folders, data):
        source = data
    elif not missing:
        source, _ = deduplicate(scan(folders))
    else:
        raise InvalidInputError(
            f"--baselines: the training data folder recorded in the model ({missing[0]}) is not here",
            hint="run evaluate where that folder exists, or leave out --baselines",
        )
    fit_cells = [c for c in source.cells if c.file.subject in train_subjects]
    fitted = fit_baselines(
        np.stack([c.features for c in fit_cells]),
        np.array([c.file.label == "all" for c in fit_cells], np.int64),
        seed=kw["seed"],
    )
    probs = predict_baselines(fitted, np.stack([c.features for c in cells]))
    out = {}
    for name, p in probs.items():
        out[name] = {
            "description": BASELINES[name],
            "fitted_on": {"subjects": sorted(train_subjects), "cells": len(fit_cells)},
            **metrics.summarize(y, p, subj, area, threshold=0.5, n_boot=kw["n_boot"], seed=kw["seed"]),
            "p_all": p,
        }
    return out


def evaluate(
    model: str | Path,
    data: DataArg,
    *,
    report_dir: str | Path | None = None,
    baselines: bool = False,
    backend: str = "auto",
    precision: str = "auto",
    batch_size: int = 32,
    subjects: str = "unseen",
    n_boot: int = 1000,
    seed: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Evaluate ``model`` on the labelled cells under ``data``; returns the report as a dict."""
    from leukedge.device.runtimes import resolve_model

    say = progress or (lambda _m: None)
    ref = resolve_model(model)  # a clear BundleError for a file that is not a leukedge model
    manifest = ref.manifest
    dataset = scan(data, require_both=False, progress=lambda k, n: say(f"reading cells: {k}/{n}"))
    kept, removed = deduplicate(dataset)
    cells, selection = select_cells(kept, manifest, ref.keras_path, subjects=subjects)
    say(f"evaluating {len(cells)} cell(s) of {len({c.file.subject for c in cells})} subject(s)")
    preds = predict_files(
        [c.file.path for c in cells], ref, backend=backend, precision=precision, batch_size=batch_size
    )
    ok = ~np.isnan(preds.p_all)
    cells = [c for c, good in zip(cells, ok) if good]
    p = preds.p_all[ok]
    y = np.array([c.file.label == "all" for c in cells], np.int64)
    subj = np.array([c.file.subject for c in cells], dtype=object)
    area = np.array([c.area for c in cells], np.float64)
    dec = manifest.decision
    cnn = metrics.summarize(y, p, subj, area, threshold=dec.threshold, n_boot=n_boot, seed=seed)
    lo, hi = dec.indeterminate
    cnn["indeterminate"] = {"band": [lo, hi], "cells": int(np.sum((p >= lo) & (p < hi)))}
    cnn["p_all"] = p
    doc: dict[str, Any] = {
        "schema": "leukedge.evaluation/1",
        "model": {
            "path": str(model),
            "id": preds.model_id,
            "runtime": preds.runtime,
            "decision": {"threshold": dec.threshold, "policy": dec.policy, "indeterminate": [lo, hi]},
            "trained_on": (manifest.provenance or {}).get("split", {}).get("subjects", {}),
            "cv": (manifest.metrics or {}).get("cv"),
        },
        "data": {
            "folder": str(dataset.root.resolve()),
            "folders": [str(r.resolve()) for r in (dataset.roots or (dataset.root,))],
            "found": len(dataset.cells) + len(dataset.skipped),
            "evaluated": len(cells),
            "sizes": dataset.sizes(),
            "skipped": [{"file": f, "reason": r} for f, r in dataset.skipped]
            + [{"file": f, "reason": r} for f, r in preds.failed],
            "duplicates_removed": [r.to_dict() for r in removed],
            **selection,
        },
        "cnn": cnn,
        "history": (manifest.metrics or {}).get("history", {}),
        "validation": (manifest.metrics or {}).get("validation", {}),
        "notes": _notes(cnn, y, selection),
    }
    if baselines:
        say("fitting baselines on the model's training subjects")
        doc["baselines"] = _baseline_block(manifest, kept, cells, y, subj, area, n_boot=n_boot, seed=seed)
    arrays = {"y": y, "subject": subj, "area": area, "files": [c.file.rel for c in cells]}
    if report_dir is not None:
        from leukedge.trainer.report import write_report

        doc["report"] = {k: str(v) for k, v in write_report(Path(report_dir), doc, arrays).items()}
    return jsonable(_strip_arrays(doc))


def _strip_arrays(doc: dict[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    out["cnn"] = {k: v for k, v in doc["cnn"].items() if k != "p_all"}
    if "baselines" in doc:
        out["baselines"] = {n: {k: v for k, v in b.items() if k != "p_all"} for n, b in doc["baselines"].items()}
    return out


def _notes(cnn: dict[str, Any], y: np.ndarray, selection: dict[str, Any]) -> list[str]:
    notes = []
    if len(set(y.tolist())) < 2:
        notes.append("only one class present: specificity or sensitivity, F1 and AUC are undefined (null)")
    for cls in ("all", "hem"):
        n = len(cnn[f"subjects_{cls}"])
        if 0 < n < 5:
            notes.append(f"only {n} '{cls}' subject(s): the intervals are wide and rest on very few people")
    if selection["left_out_subjects"]:
        why = {
            "unseen": "used in training or validation",
            "test": "not test subjects of this model",
            "val": "not validation subjects of this model",
        }.get(selection["subjects"], "")
        notes.append(f"left out ({why}): " + ", ".join(selection["left_out_subjects"]))
    wb = cnn.get("area", {}).get("within_bin_auc", {})
    if wb.get("auc") is not None and not np.isnan(wb["auc"]):
        notes.append(
            f"AUC within bins of equal cell area is {wb['auc']:.3f} over {wb['pairs']} same-bin (ALL, normal) pairs "
            f"(plain AUC {cnn['metrics']['roc_auc']['value']:.3f}); near 0.5 means the model ranks cells mostly by size"
        )
    return notes
