"""CSV results files: the per-cell schema as columns, written like JSON Lines (whole rows, flushed per frame).

The reader also takes the CSV that ``leukedge score`` writes (:data:`SCORE_COLUMNS`),
so every results file either command writes can be reported.

Columns follow :data:`leukedge.results.CELL_FIELDS` with ``bbox`` spread over
``x, y, w, h``; an optional ``crop`` column is added when crops are saved.
Empty cells mean null.  A crash leaves at most one partial last row, which
:func:`iter_csv` skips and reports like :func:`leukedge.jsonl.iter_jsonl`.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from leukedge.jsonl import JsonlProblems

CSV_COLUMNS = (
    "frame",
    "t_capture",
    "t_result",
    "source",
    "cell",
    "x",
    "y",
    "w",
    "h",
    "area",
    "p_all",
    "label",
    "model",
    "cell_id",
    "skip",
)
CROP_COLUMN = "crop"
# 'leukedge score' writes one row per cell too, with its own columns (leukedge.device.scoring.rows):
# no frame or times, the box as bbox_x..bbox_h, and n_cells.  The reader takes both.
SCORE_COLUMNS = ("source", "cell", "n_cells", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "area", "p_all", "label", "model")
_SCORE_BOX = {"bbox_x": "x", "bbox_y": "y", "bbox_w": "w", "bbox_h": "h"}
_INTS = ("frame", "cell", "n_cells", "x", "y", "w", "h", "area", "cell_id")
TRACKING_COLUMNS = ("cell_id", "skip")  # absent from files written before tracking; still read
_FLOATS = ("t_capture", "t_result", "p_all")


def record_to_row(record: Dict[str, Any], columns: Sequence[str]) -> List[Any]:
    """One per-cell record (``bbox`` as a list) → CSV cells in ``columns`` order; None → ''."""
    bbox = record.get("bbox") or (None, None, None, None)
    flat = dict(record, x=bbox[0], y=bbox[1], w=bbox[2], h=bbox[3])
    return ["" if flat.get(c) is None else flat[c] for c in columns]


def row_to_record(row: Dict[str, str]) -> Dict[str, Any]:
    """A CSV row (strings) → a per-cell record with typed values and ``bbox`` rebuilt; ValueError if a value is bad."""
    out: Dict[str, Any] = {}
    for key, text in row.items():
        if text == "":
            out[key] = None
        elif key in _INTS:
            try:
                out[key] = int(text)
            except ValueError:
                raise ValueError(f"column {key!r} is {text!r}, expected an integer") from None
        elif key in _FLOATS:
            try:
                out[key] = float(text)
            except ValueError:
                raise ValueError(f"column {key!r} is {text!r}, expected a number") from None
        else:
            out[key] = text
    box = [out.pop(k, None) for k in ("x", "y", "w", "h")]
    out["bbox"] = None if all(v is None for v in box) else box
    return out


class CsvWriter:
    """Appends rows; writes the header when the file is new or empty.

    Each flush writes whole rows (built in memory first), so an interrupted
    process leaves at most the last row cut short.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str], *, append: bool = False) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not append or not self.path.exists() or self.path.stat().st_size == 0
        if append and not fresh:
            _check_header(self.path, self.columns)
        self._fh: IO[str] = open(self.path, "a" if append else "w", encoding="utf-8", newline="")
        self._buf = io.StringIO()
        self._csv = csv.writer(self._buf, lineterminator="\n")
        if fresh:
            self._csv.writerow(self.columns)
        self.rows = 0

    def write_many(self, records: Iterable[Dict[str, Any]]) -> None:
        for r in records:
            self._csv.writerow(record_to_row(r, self.columns))
            self.rows += 1

    def flush(self) -> None:
        text = self._buf.getvalue()
        if text:
            self._fh.write(text)
            self._buf.seek(0)
            self._buf.truncate()
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()


def _check_header(path: Path, columns: Sequence[str]) -> None:
    from leukedge.errors import InvalidInputError

    with open(path, encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh), [])
    if tuple(header) != tuple(columns):
        raise InvalidInputError(
            f"{path}: cannot append, its columns are {','.join(header)!r}, expected {','.join(columns)!r}",
            hint="write to a new file, or append only to a file written with the same options (--save-crops)",
        )


def iter_csv(path: str | os.PathLike[str], problems: Optional[JsonlProblems] = None) -> Iterator[Dict[str, Any]]:
    """Yield each row as a per-cell record; bad rows (and a cut-off last row) go to ``problems`` with line numbers."""
    for _n, rec in iter_csv_numbered(path, problems):
        yield rec


def iter_csv_numbered(
    path: str | os.PathLike[str], problems: Optional[JsonlProblems] = None
) -> Iterator[Tuple[int, Dict[str, Any]]]:
    """Like :func:`iter_csv`, with each record's line number (the row's last line, for quoted newlines)."""
    p = Path(path)
    cut_off = _ends_without_newline(p)
    with open(p, encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return
        if all(c in header for c in SCORE_COLUMNS) and "frame" not in header:
            header = [_SCORE_BOX.get(c, c) for c in header]  # a 'leukedge score' file
        missing = [
            c for c in CSV_COLUMNS if c not in header and c not in ("frame", "t_capture", "t_result", *TRACKING_COLUMNS)
        ]
        if "frame" not in header and "n_cells" not in header:
            missing.insert(0, "frame")
        if missing:
            if problems is not None:
                problems.bad_lines.append(
                    (1, f"header lacks column(s) {', '.join(missing)} of a 'leukedge screen' or 'leukedge score' file")
                )
            return
        pending: Optional[tuple] = None  # hold one row back: the last one may be cut off
        for values in reader:
            if pending is not None:
                yield from _typed(pending, header, problems)
            pending = (reader.line_num, values)
        if pending is not None:
            if cut_off:
                if problems is not None:
                    problems.bad_lines.append((pending[0], "cut off (no newline at end of file)"))
            else:
                yield from _typed(pending, header, problems)


def _typed(item: tuple, header: List[str], problems: Optional[JsonlProblems]) -> Iterator[Tuple[int, Dict[str, Any]]]:
    line, values = item
    if not values or values == [""]:
        return
    if len(values) != len(header):
        if problems is not None:
            problems.bad_lines.append((line, f"{len(values)} values, expected {len(header)}"))
        return
    try:
        yield line, row_to_record(dict(zip(header, values)))
    except ValueError as exc:
        if problems is not None:
            problems.bad_lines.append((line, str(exc)))


def _ends_without_newline(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return False
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1) not in (b"\n", b"\r")
