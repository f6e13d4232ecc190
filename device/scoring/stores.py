"""Results files that survive a crash: JSON Lines and CSV, appended and flushed batch by batch.

Rows are only ever appended, one whole batch of images per write, so a
process killed at any moment leaves a file whose damage is at its end: a cut
last line, or the last image with fewer rows than its ``n_cells``.  Resuming
scans the file, keeps every complete image, cuts the file back to the end of
the last one, and appends from there; the images it cut are scored again.
Damage anywhere but the end means someone else edited the file, and resuming
is refused rather than guessing.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

from leukedge.device.scoring.rows import (
    CSV_COLUMNS,
    RUN_COLUMNS,
    check_row,
    describe_run,
    from_csv,
    is_complete,
    run_of,
    to_csv,
)
from leukedge.errors import InvalidInputError

Row = Dict[str, Any]


def refuse_other_run(path: Path, found: Row, run: Dict[str, str]) -> InvalidInputError:
    return InvalidInputError(
        f"{path}: this results file was written by {describe_run(found)}, but this run uses "
        f"{describe_run(run)}; refusing to mix two models' scores in one file",
        hint="write to another --out, resume with the model (and --precision/--backend) that wrote it, "
        "or pass --overwrite to replace the file",
    )


@dataclass
class Recovered:
    """What a results file already holds."""

    sources: Set[str] = field(default_factory=set)  # images with all their rows
    rows: int = 0
    dropped_rows: int = 0  # rows of an image cut short by a crash, removed to be scored again
    run: Optional[Row] = None  # model, precision, backend of the rows


class LineStore:
    """An append-only file of one record per row; subclasses say how a row is spelled."""

    suffix = ""
    header: Optional[bytes] = None  # a first line that is not a row (CSV)

    def __init__(self, path: Path, run: Dict[str, str]) -> None:
        self.path = Path(path)
        self.run = dict(run)
        self._fh: Optional[IO[bytes]] = None
        self._buffer: List[bytes] = []
        self.recovered = Recovered()

    # --- spelling --------------------------------------------------------------------
    def encode(self, row: Row) -> bytes:
        raise NotImplementedError

    def decode(self, record: bytes) -> Row:
        """Parse one record; raise ValueError when it is not a score row."""
        raise NotImplementedError

    def records(self, fh: IO[bytes]) -> Iterator[Tuple[bytes, bool]]:
        """The file's records after the header, each with whether it is whole (only the last may be cut)."""
        for line in fh:
            yield line, line.endswith(b"\n")

    def could_start_row(self, record: bytes) -> bool:
        """Whether a cut last record may be the start of one of our rows (else the file is someone else's)."""
        return True

    # --- life cycle --------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def remove(self) -> None:
        if self.path.exists():
            self.path.unlink()

    def start(self) -> Set[str]:
        """Open for appending, after cutting crash damage; returns the sources already done."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        end = 0
        if self.path.exists():
            end = self._recover()
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
        self._fh = open(self.path, "ab")
        if end == 0 and self.header:
            self._fh.write(self.header)
            self._fh.flush()
        return self.recovered.sources

    def write(self, rows: List[Row]) -> None:
        self._buffer.extend(self.encode(r) for r in rows)

    def flush(self) -> None:
        """Push the buffered rows to the OS in one write: whole images, never half a batch on purpose."""
        if self._fh is None or not self._buffer:
            return
        self._fh.write(b"".join(self._buffer))
        self._fh.flush()
        self._buffer = []

    def close(self, *, complete: bool = True) -> None:
        if self._fh is not None:
            self.flush()
            self._fh.close()
            self._fh = None

    # --- reading ---------------------------------------------------------------------
    def _recover(self) -> int:
        """Scan the file; returns the byte offset up to which it holds complete images."""
        rec = self.recovered
        for group, end in self._groups(check=True):
            if group is None:
                return end
            rec.sources.add(group[0]["source"])
            rec.rows += len(group)
            if rec.run is None:
                rec.run = run_of(group[0])
        return 0  # not reached: _groups always ends with (None, end)

    def read(self) -> Iterator[Row]:
        """Every row of every complete image, in file order."""
        for group, _end in self._groups(check=False):
            if group is None:
                return
            yield from group

    def _groups(self, *, check: bool) -> Iterator[Tuple[Optional[List[Row]], int]]:
        """Yield (rows of one complete image, byte offset after them); last (None, offset after the
        last complete image).  Damage is tolerated only at the end of the file."""
        with open(self.path, "rb") as fh:
            offset = self._read_header(fh)
            if offset < 0:  # empty, or the header was cut: nothing to keep
                yield None, 0
                return
            good = offset
            group: List[Row] = []
            seen: Set[str] = set()
            lineno = 1 if self.header else 0
            for record, whole in self.records(fh):
                lineno += 1
                if not whole:  # the last record, cut by a crash while it was written
                    if not self.could_start_row(record):
                        raise self._corrupt(lineno, f"cut off, and not the start of a score row: {record[:60]!r}")
                    break
                try:
                    row = self.decode(record)
                except ValueError as exc:  # rows are written whole: a whole line that is not one is foreign
                    raise self._corrupt(lineno, str(exc)) from None
                if check and any(row[k] != self.run[k] for k in RUN_COLUMNS):
                    raise refuse_other_run(self.path, run_of(row), self.run)
                if group and row["source"] != group[0]["source"]:
                    if not is_complete(group):
                        raise self._corrupt(lineno - 1, f"image {group[0]['source']} has only {len(group)} row(s)")
                    if _first_time(group, seen):  # an image written twice (files of older versions) counts once
                        yield group, offset
                    good, group = offset, []
                group.append(row)
                offset += len(record)
            if group and is_complete(group):
                if _first_time(group, seen):
                    yield group, offset
                good, group = offset, []
            self.recovered.dropped_rows = len(group)
            yield None, good

    def _read_header(self, fh: IO[bytes]) -> int:
        """Offset after the header (0 if none); -1 when the file is empty or its header was cut."""
        if not self.header:
            return 0
        first = fh.readline()
        if first == self.header:
            return len(first)
        if not first.endswith(b"\n") and self.header.startswith(first):
            return -1  # empty, or killed while writing the header: start afresh
        raise InvalidInputError(
            f"{self.path}: not a leukedge score file (its first line is {first[:120]!r}, expected the header "
            f"{self.header.decode().strip()!r})",
            hint="write to another --out, or pass --overwrite to replace the file",
        )

    def _corrupt(self, lineno: int, why: str) -> InvalidInputError:
        return InvalidInputError(
            f"{self.path}: line {lineno} is not a complete score row ({why}); only the end of a results "
            "file can be damaged by an interrupted run, so this file was changed by something else",
            hint="write to another --out, or pass --overwrite to replace the file",
        )


def _first_time(group: List[Row], seen: Set[str]) -> bool:
    source = group[0]["source"]
    if source in seen:
        return False
    seen.add(source)
    return True


class JsonlStore(LineStore):
    suffix = ".jsonl"

    def could_start_row(self, record: bytes) -> bool:
        return b'{"source":"'.startswith(record[:11])

    def encode(self, row: Row) -> bytes:
        return (json.dumps(row, separators=(",", ":"), allow_nan=False) + "\n").encode("ascii")

    def decode(self, record: bytes) -> Row:
        try:
            row = json.loads(record)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(row, dict):
            raise ValueError("not a JSON object")
        check_row(row)
        return row


class CsvStore(LineStore):
    suffix = ".csv"
    header = (",".join(CSV_COLUMNS) + "\n").encode("ascii")

    def encode(self, row: Row) -> bytes:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(to_csv(row))
        return buf.getvalue().encode("utf-8", "surrogateescape")

    def decode(self, record: bytes) -> Row:
        text = record.decode("utf-8", "surrogateescape")
        try:
            fields = next(csv.reader(io.StringIO(text)))
        except (csv.Error, StopIteration) as exc:
            raise ValueError(f"not CSV: {exc}") from None
        row = from_csv(fields)
        check_row(row)
        return row

    def records(self, fh: IO[bytes]) -> Iterator[Tuple[bytes, bool]]:
        """One CSV record may span lines (a quoted newline in a file name): join lines until quotes balance."""
        pending = b""
        for line in fh:
            pending += line
            if pending.count(b'"') % 2 == 0 and pending.endswith(b"\n"):
                yield pending, True
                pending = b""
        if pending:
            yield pending, False


STORES: Dict[str, Callable[[Path, Dict[str, str]], Any]] = {".jsonl": JsonlStore, ".csv": CsvStore}
