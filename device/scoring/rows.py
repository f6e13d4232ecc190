"""The score results schema: one row per cell, the same columns in every file format.

A row is a plain dict.  ``n_cells`` (the number of cells found in the row's
image) lets a reader tell a complete image from one cut short by a crash: an
image is complete when its rows number ``n_cells`` (one row with ``cell``
null when no cell was found).  ``bbox`` is ``[x, y, w, h]`` in image pixels;
CSV spells it as four columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from leukedge.cnmc import parse_cnmc_name

COLUMNS = (
    "source",  # absolute path of the image
    "cell",  # index of the cell in the image (null: no cell found)
    "n_cells",  # cells found in the image
    "bbox",  # [x, y, w, h] in image pixels
    "area",  # cell area in pixels (its mask)
    "p_all",  # probability of ALL
    "label",  # "all" or "hem" by the manifest's decision threshold
    "mode",  # "cells" (the image is one cell) or "smear" (segmented); auto records its decision here
    "subject",  # C-NMC subject parsed from the file name, else null
    "true_label",  # C-NMC label parsed from the file name, else null
    "model",  # short hash of the model
    "precision",  # fp32, fp16 or int8
    "backend",  # onnxruntime, tensorrt or keras
)
# The columns that say which model run wrote a file; resuming with others is refused.
RUN_COLUMNS = ("model", "precision", "backend")
CSV_BBOX = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")
CSV_COLUMNS = tuple(c for col in COLUMNS for c in (CSV_BBOX if col == "bbox" else (col,)))


def image_rows(
    source: str,
    mode: str,
    cells: List[Dict[str, Any]],
    p_all: Iterable[float],
    labels: Iterable[str],
    run: Dict[str, str],
    *,
    name: Optional[str] = None,
) -> List[Dict[str, Any]]:
    """The rows of one scored image; ``cells`` hold ``cell``, ``bbox`` and ``area``.

    ``name`` is the path as listed (default ``source``): a C-NMC label is read
    from it, so a link named like a C-NMC file keeps its label.
    """
    cnmc = parse_cnmc_name(Path(name or source).name)
    base = {
        "source": source,
        "n_cells": len(cells),
        "mode": mode,
        "subject": cnmc.subject if cnmc else None,
        "true_label": cnmc.label if cnmc else None,
    }
    if not cells:
        return [_ordered({**base, "cell": None, "bbox": None, "area": None, "p_all": None, "label": None, **run})]
    return [
        _ordered({**base, **c, "p_all": round(float(p), 6), "label": lab, **run})
        for c, p, lab in zip(cells, p_all, labels)
    ]


def _ordered(row: Dict[str, Any]) -> Dict[str, Any]:
    return {k: row[k] for k in COLUMNS}


def to_csv(row: Dict[str, Any]) -> List[str]:
    """A row as CSV fields (null → empty)."""
    out: List[str] = []
    for col in COLUMNS:
        v = row[col]
        if col == "bbox":
            out.extend([""] * 4 if v is None else [str(int(x)) for x in v])
        else:
            out.append("" if v is None else str(v))
    return out


_INTS = ("cell", "n_cells", "area")


def from_csv(fields: List[str]) -> Dict[str, Any]:
    """Parse CSV fields written by :func:`to_csv`; raises ValueError when they are not such a row."""
    if len(fields) != len(CSV_COLUMNS):
        raise ValueError(f"expected {len(CSV_COLUMNS)} fields, got {len(fields)}")
    raw = dict(zip(CSV_COLUMNS, fields))
    row: Dict[str, Any] = {}
    for col in COLUMNS:
        if col == "bbox":
            parts = [raw[c] for c in CSV_BBOX]
            row[col] = None if parts == [""] * 4 else [int(x) for x in parts]
            continue
        v: Optional[str] = raw[col] if raw[col] != "" else None
        if v is not None and col in _INTS:
            row[col] = int(v)
        elif v is not None and col == "p_all":
            row[col] = float(v)
        else:
            row[col] = v
    return row


def check_row(row: Dict[str, Any]) -> None:
    """Raise ValueError unless ``row`` has the score columns with plausible types."""
    missing = [c for c in COLUMNS if c not in row]
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    if not isinstance(row["source"], str) or not isinstance(row["n_cells"], int) or row["n_cells"] < 0:
        raise ValueError("source must be text and n_cells a count")


def is_complete(group: List[Dict[str, Any]]) -> bool:
    """True when ``group`` (the consecutive rows of one image) holds all of the image's cells."""
    n = group[0]["n_cells"]
    if any(r["n_cells"] != n or r["source"] != group[0]["source"] for r in group):
        return False
    if n == 0:
        return len(group) == 1 and group[0]["cell"] is None
    return [r["cell"] for r in group] == list(range(n))


def run_of(row: Dict[str, Any]) -> Dict[str, Any]:
    return {k: row[k] for k in RUN_COLUMNS}


def describe_run(run: Dict[str, Any]) -> str:
    return f"model {run['model']} ({run['precision']}, {run['backend']})"
