"""From a results file to the figures of a slide report (no HTML here; see ``html.py``)."""

from __future__ import annotations

import base64
import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from leukedge._version import __version__
from leukedge.bundle import REFERENCE_BUNDLE, Bundle
from leukedge.manifest import POSITIVE_CLASS, Decision
from leukedge.report.reader import ResultsFile, fields_of, read_results
from leukedge.report.unique import OLD_FILE_NOTE, is_tracked, unique_cells
from leukedge.tally import DEFAULT_MIN_CELLS, CellTally, in_band

HIST_BINS = 20
MAX_CROP_BYTES = 1 << 20
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
IMAGE_MAGIC = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff"}


@dataclass
class FieldRow:
    source: str
    frame: int
    cells: int = 0
    all: int = 0
    indeterminate: int = 0
    unclassified: int = 0


@dataclass
class Flagged:
    source: str
    frame: int
    cell: int
    p_all: float
    label: str
    indeterminate: bool
    image: Optional[str] = None  # data: URI of the saved crop


@dataclass
class SlideReport:
    results: ResultsFile
    summary: Dict[str, Any]
    band: Tuple[float, float]
    threshold: Optional[float]
    fields: List[FieldRow]
    histogram: List[Tuple[int, int]]  # per bin: (ALL-labelled, other)
    flagged_total: int
    flagged: List[Flagged]
    crops_saved: int
    crops_missing: int
    models: Dict[str, int]
    duplicates: int
    bundle: Optional[Bundle]
    notes: List[str] = field(default_factory=list)
    generated: str = ""
    version: str = __version__


def build_report(
    path: str | Path,
    *,
    min_cells: int = DEFAULT_MIN_CELLS,
    model: Optional[str | Path] = None,
    gallery: int = 60,
) -> SlideReport:
    """Read ``path`` and compute everything the report shows.

    The gallery shows up to ``gallery`` indeterminate cells and up to
    ``gallery`` other ALL-labelled cells, highest p_all first.

    ``model`` is the bundle the results came from (its manifest gives the
    indeterminate band and goes into the audit trail); without it the
    packaged reference bundle is used when its hash matches the results.
    """
    res = read_results(path)
    models: Dict[str, int] = {}
    for r in res.records:
        key = r.get("model") or "(none)"
        models[key] = models.get(key, 0) + 1
    notes: List[str] = []
    bundle = _find_bundle(model, models, notes)
    decision = bundle.manifest.decision if bundle else Decision()
    band = decision.indeterminate
    if bundle is None:
        notes.append(f"no model bundle given: the indeterminate band is the default [{band[0]}, {band[1]})")

    tally = CellTally(band)
    hist = [[0, 0] for _ in range(HIST_BINS)]
    flagged: List[Tuple[Dict[str, Any], bool]] = []
    duplicates = res.duplicates  # left out by the reader: each image counts once
    tracked = is_tracked(res.records)
    rows = _frame_rows(res.records, tally, band, hist, flagged, count_cells=not tracked)
    extra: Dict[str, Any] = {"counting": "cells per frame"}
    if tracked:
        extra = _count_unique(res.records, tally, band, hist, flagged, notes)
    elif any(r.get("frame", 0) > 0 for r in res.records):  # several frames of one source
        notes.append(OLD_FILE_NOTE)
    if duplicates:
        notes.append(
            f"{duplicates} record(s) repeat an image or frame read earlier in the file (two runs wrote it?); "
            "each image is counted once"
        )
    if len(models) > 1:
        notes.append(f"the results come from {len(models)} different models: {', '.join(sorted(models))}")

    flagged.sort(key=lambda rf: -rf[0]["p_all"])
    # the indeterminate cells are the ones a reviewer must see: they get their own quota
    shown, saved, missing = _gallery(res.path, [rf for rf in flagged if rf[1]], gallery)
    shown2, saved2, missing2 = _gallery(res.path, [rf for rf in flagged if not rf[1]], gallery)
    shown, saved, missing = shown + shown2, saved + saved2, missing + missing2
    return SlideReport(
        results=res,
        summary={**tally.summary(min_cells=min_cells), **extra},
        band=band,
        threshold=decision.threshold if bundle else None,
        fields=rows,
        histogram=[(a, b) for a, b in hist],
        flagged_total=len(flagged),
        flagged=shown,
        crops_saved=saved,
        crops_missing=missing,
        models=models,
        duplicates=duplicates,
        bundle=bundle,
        notes=notes,
        generated=_dt.datetime.now().astimezone().isoformat(timespec="seconds"),
    )


def _frame_rows(
    records: List[Dict[str, Any]],
    tally: CellTally,
    band: Tuple[float, float],
    hist: List[List[int]],
    flagged: List[Tuple[Dict[str, Any], bool]],
    *,
    count_cells: bool,
) -> List[FieldRow]:
    """Per-frame rows (and, for a file without tracking, the cell counts)."""
    rows: List[FieldRow] = []
    for (source, frame), recs in fields_of([r for r in records if r.get("record") != "final"]):
        row = FieldRow(source, frame)
        cells = [r for r in recs if r["cell"] is not None]
        tally.add_frame(len(cells))
        for r in cells:
            p = r.get("p_all")
            if p is None:
                row.unclassified += 1
            else:
                row.cells += 1
                row.all += r.get("label") == POSITIVE_CLASS
                row.indeterminate += in_band(p, band)
            if count_cells:
                _count_cell(r, tally, band, hist, flagged)
        rows.append(row)
    return rows


def _count_cell(
    r: Dict[str, Any],
    tally: CellTally,
    band: Tuple[float, float],
    hist: List[List[int]],
    flagged: List[Tuple[Dict[str, Any], bool]],
) -> None:
    p, label = r.get("p_all"), r.get("label")
    tally.add_cell(label, p)
    if p is None:
        return
    positive = label == POSITIVE_CLASS
    hist[min(HIST_BINS - 1, int(p * HIST_BINS))][0 if positive else 1] += 1
    ind = in_band(p, band)
    if positive or ind:
        flagged.append((r, ind))


def _count_unique(
    records: List[Dict[str, Any]],
    tally: CellTally,
    band: Tuple[float, float],
    hist: List[List[int]],
    flagged: List[Tuple[Dict[str, Any], bool]],
    notes: List[str],
) -> Dict[str, Any]:
    """Count each cell_id once; a flagged cell's crop is the one a per-frame look of it saved."""
    uc = unique_cells(records)
    crops = {r["cell_id"]: r for r in records if r.get("crop") and r.get("cell_id") is not None}
    for r in uc.cells:
        look = crops.get(r["cell_id"])
        shown = r if look is None else dict(r, crop=look["crop"], cell=look["cell"], frame=look["frame"])
        _count_cell(dict(shown, cell=shown.get("cell", r["cell_id"])), tally, band, hist, flagged)
    if uc.from_looks:
        notes.append(
            f"{uc.from_looks} cell(s) have no final record (was the run cut short?): their last look is counted"
        )
    return uc.stats()


def _find_bundle(model: Optional[str | Path], models: Dict[str, int], notes: List[str]) -> Optional[Bundle]:
    if model is not None:
        bundle = Bundle.load(model)
        if bundle.short_hash not in models:
            notes.append(
                f"the bundle given ({bundle.short_hash}) is not the model named in the results "
                f"({', '.join(sorted(models))}); its band and manifest may not apply"
            )
        return bundle
    if (REFERENCE_BUNDLE / "manifest.json").is_file():
        try:
            ref = Bundle.load(REFERENCE_BUNDLE, verify=False)
        except Exception:  # a broken packaged bundle must not stop a report
            return None
        if ref.short_hash in models:
            notes.append("model bundle: the packaged reference model, matched by its hash")
            return ref
    return None


def _gallery(
    results_path: Path, flagged: List[Tuple[Dict[str, Any], bool]], limit: int
) -> Tuple[List[Flagged], int, int]:
    """The first ``limit`` flagged cells with their crops inlined; counts of crops named and not readable."""
    base = results_path.parent.resolve()
    named = [rf for rf in flagged if rf[0].get("crop")]
    missing = 0
    shown: List[Flagged] = []
    for r, ind in named:
        if len(shown) < limit:
            image = _crop_uri(base, r["crop"])
            if image is None:
                missing += 1
            else:
                shown.append(Flagged(r["source"], r["frame"], r["cell"], r["p_all"], r["label"], ind, image))
        elif _crop_path(base, r["crop"]) is None:
            missing += 1
    return shown, len(named), missing


def _crop_path(base: Path, rel: str) -> Optional[Path]:
    """The crop file, only if it is an image file inside the results folder (a results file is data, not a key)."""
    p = (base / rel).resolve()
    if base not in p.parents or p.suffix.lower() not in IMAGE_TYPES or not p.is_file():
        return None
    return p if p.stat().st_size <= MAX_CROP_BYTES else None


def _crop_uri(base: Path, rel: str) -> Optional[str]:
    p = _crop_path(base, rel)
    if p is None:
        return None
    data = p.read_bytes()
    if not data.startswith(IMAGE_MAGIC[IMAGE_TYPES[p.suffix.lower()]]):
        return None
    return f"data:{IMAGE_TYPES[p.suffix.lower()]};base64," + base64.b64encode(data).decode()
