"""Reading a results file (JSON Lines or CSV) for the report, checking each record against the schema.

Malformed lines (not JSON, wrong columns, a value of the wrong kind, a cut-off
last line) are skipped and listed with their line numbers; every other line
still counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from leukedge.bundle import sha256_file
from leukedge.errors import InvalidInputError
from leukedge.jsonl import JsonlProblems, iter_jsonl_numbered
from leukedge.sinks.csvfile import iter_csv_numbered


def iter_parquet_numbered(path: Path, problems: JsonlProblems) -> Iterator[Tuple[int, Dict[str, Any]]]:
    """Rows of a Parquet results file (``leukedge score --out x.parquet``) as records; "line" = row number."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        from leukedge.errors import MissingDependencyError

        raise MissingDependencyError(
            f"{path}: reading Parquet needs pyarrow, which is not installed", hint="pip install pyarrow"
        ) from exc
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several kinds for a damaged file
        raise InvalidInputError(f"{path}: not a readable Parquet file ({exc})") from exc
    for n, row in enumerate(rows, start=1):
        if "bbox" not in row and all(k in row for k in ("x", "y", "w", "h")):
            box = [row.pop(k) for k in ("x", "y", "w", "h")]
            row["bbox"] = None if all(v is None for v in box) else box
        yield n, row


READERS = {".jsonl": iter_jsonl_numbered, ".csv": iter_csv_numbered, ".parquet": iter_parquet_numbered}


@dataclass
class ResultsFile:
    path: Path
    sha256: str
    records: List[Dict[str, Any]] = field(default_factory=list)
    problems: JsonlProblems = field(default_factory=JsonlProblems)
    duplicates: int = 0  # records of an image (field) already read earlier in the file, left out


class _Repeats:
    """Finds a field (source, frame) that comes back after others: the same image written twice.

    A writer puts one field's records together, so a field seen again after
    another one is a second copy (two runs appended to one file); the first
    copy counts, every record of the later one is left out, whole.
    """

    def __init__(self) -> None:
        self.current: Optional[Tuple[str, int]] = None
        self.finished: Dict[Tuple[str, int], int] = {}
        self.repeating = False
        self.cells: set = set()

    def seen_before(self, rec: Dict[str, Any], line: int) -> bool:
        key = (rec["source"], rec["frame"])
        if key != self.current:
            if self.current is not None:
                self.finished.setdefault(self.current, line)
            self.current, self.cells = key, set()
            self.repeating = key in self.finished
        if self.repeating or rec["cell"] in self.cells:
            return True
        self.cells.add(rec["cell"])
        return False


def read_results(path: str | Path) -> ResultsFile:
    """All valid records of ``path`` (``.jsonl``, ``.csv``, ``.parquet``) plus the problems met; raises if none is valid."""
    p = Path(path)
    reader = READERS.get(p.suffix.lower())
    if reader is None:
        raise InvalidInputError(
            f"{p}: unknown results format {p.suffix!r}, expected one of {', '.join(READERS)}",
            hint="pass the .jsonl, .csv or .parquet file written by 'leukedge screen --out' or 'leukedge score --out'",
        )
    if not p.is_file():
        raise InvalidInputError(f"{p}: no such results file", hint="check the path given to --out when screening")
    out = ResultsFile(p, sha256_file(p))
    repeats = _Repeats()
    for line, rec in reader(p, out.problems):
        if "frame" not in rec and "n_cells" in rec:
            rec["frame"] = 0  # a 'leukedge score' row: each image is one field, its frame 0
        why = check_record(rec)
        if why:
            out.problems.bad_lines.append((line, why))
        elif rec.get("record") != "final" and repeats.seen_before(rec, line):  # finals: see report.unique
            out.duplicates += 1
        else:
            out.records.append(rec)
    out.problems.bad_lines.sort()
    if not out.records:
        detail = f"; {out.problems.describe(p)}" if out.problems else ""
        raise InvalidInputError(
            f"{p}: holds no valid result record{detail}",
            hint="is this a results file written by leukedge (one record per cell)?",
        )
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def check_record(r: Dict[str, Any]) -> Optional[str]:
    """Why ``r`` is not a valid per-cell record (or final record of a tracked cell), or None."""
    if r.get("record") == "final":
        return check_final(r)
    for key in ("frame", "source", "cell"):
        if key not in r:
            return f"field {key!r} is missing"
    if not _is_int(r["frame"]) or r["frame"] < 0:
        return f"field 'frame' is {r['frame']!r}, expected an integer >= 0"
    if not isinstance(r["source"], str):
        return f"field 'source' is {r['source']!r}, expected a string"
    for key in ("t_capture", "t_result"):
        if r.get(key) is not None and not _is_num(r[key]):
            return f"field {key!r} is {r[key]!r}, expected a number"
    if r.get("model") is not None and not isinstance(r["model"], str):
        return f"field 'model' is {r['model']!r}, expected a string"
    if r.get("cell_id") is not None and (not _is_int(r["cell_id"]) or r["cell_id"] < 0):
        return f"field 'cell_id' is {r['cell_id']!r}, expected an integer >= 0 or null"
    if r.get("skip") is not None and not isinstance(r["skip"], str):
        return f"field 'skip' is {r['skip']!r}, expected a reason or null"
    if r["cell"] is None:
        return None  # a frame without cells
    if not _is_int(r["cell"]) or r["cell"] < 0:
        return f"field 'cell' is {r['cell']!r}, expected an integer >= 0 or null"
    bbox = r.get("bbox")
    if bbox is not None and (not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_int(v) for v in bbox)):
        return f"field 'bbox' is {bbox!r}, expected [x, y, w, h] in whole pixels"
    p = r.get("p_all")
    if p is not None and (not _is_num(p) or not 0.0 <= p <= 1.0):
        return f"field 'p_all' is {p!r}, expected a number in [0, 1] or null"
    label = r.get("label")
    if label is not None and not isinstance(label, str):
        return f"field 'label' is {label!r}, expected a string or null"
    if (label is None) != (p is None):
        return "fields 'label' and 'p_all' must both be set or both be null"
    crop = r.get("crop")
    if crop is not None and not isinstance(crop, str):
        return f"field 'crop' is {crop!r}, expected a path or null"
    return None


def check_final(r: Dict[str, Any]) -> Optional[str]:
    """Why ``r`` is not a valid final record (``"record": "final"``), or None."""
    for key in ("frame", "source", "cell_id", "p_all", "label"):
        if key not in r:
            return f"final record: field {key!r} is missing"
    if not _is_int(r["cell_id"]) or r["cell_id"] < 0:
        return f"final record: field 'cell_id' is {r['cell_id']!r}, expected an integer >= 0"
    if not _is_int(r["frame"]) or not isinstance(r["source"], str):
        return "final record: 'frame' must be an integer and 'source' a string"
    p = r["p_all"]
    if not _is_num(p) or not 0.0 <= p <= 1.0 or not isinstance(r["label"], str):
        return f"final record: p_all {p!r} / label {r['label']!r}, expected a number in [0, 1] and a string"
    return None


def fields_of(records: List[Dict[str, Any]]) -> Iterator[Tuple[Tuple[str, int], List[Dict[str, Any]]]]:
    """Records grouped by microscope field (source, frame), in first-seen order."""
    groups: Dict[Tuple[str, int], List[Dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["source"], r["frame"]), []).append(r)
    return iter(groups.items())
