"""Parquet results that survive a crash: atomic part files, merged into one file at the end.

A Parquet file cannot be appended to, and a half-written one is unreadable,
so while a run goes on its rows go to part files in ``<out>.parts/`` (one every 0.5 s or 4096
rows, less often as a long run goes on): each
part is written to a temporary name and renamed, so it is either whole or
absent, and it holds whole images only.  When every input is done the parts
(and the rows of an earlier finished run) are merged into ``<out>`` (written
to a temporary name, renamed), and then the parts folder is removed.

Resuming reads the sources in ``<out>`` and in every part.  If a run was
killed after the merge's rename but before the parts were removed, an image
can be in both; the rows in ``<out>`` win, in reading and in the next merge,
so every image is counted exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set

from leukedge.device.scoring.rows import COLUMNS, RUN_COLUMNS, check_row
from leukedge.device.scoring.stores import Recovered, refuse_other_run
from leukedge.errors import InvalidInputError, MissingDependencyError

Row = Dict[str, Any]
META_KEY = b"leukedge.score"


def require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise MissingDependencyError(
            f"writing .parquet results needs pyarrow, which could not be imported ({exc})",
            hint="pip install 'leukedge[parquet]', or write .csv or .jsonl instead",
        ) from exc
    return pyarrow


def _schema(pa: Any, run: Optional[Dict[str, str]] = None) -> Any:
    types = {
        "cell": pa.int32(),
        "n_cells": pa.int32(),
        "bbox": pa.list_(pa.int32()),
        "area": pa.int64(),
        "p_all": pa.float64(),
    }
    meta = {META_KEY: json.dumps(run).encode()} if run else None
    return pa.schema([pa.field(c, types.get(c, pa.string())) for c in COLUMNS], metadata=meta)


class ParquetStore:
    suffix = ".parquet"

    def __init__(self, path: Path, run: Dict[str, str], *, part_rows: int = 4096, part_seconds: float = 0.5) -> None:
        self.pa = require_pyarrow()
        self.path = Path(path)
        self.parts = self.path.with_name(self.path.name + ".parts")
        self.run = dict(run)
        self.part_rows = part_rows
        self.part_seconds = part_seconds
        self.recovered = Recovered()
        self._buffer: List[Row] = []
        self._started = self._last_part = time.monotonic()
        self._next_part = 1

    def exists(self) -> bool:
        return self.path.exists() or self.parts.exists()

    def remove(self) -> None:
        if self.path.exists():
            self.path.unlink()
        if self.parts.exists():
            shutil.rmtree(self.parts)

    def start(self) -> Set[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.parts.mkdir(exist_ok=True)
        for tmp in self.parts.glob("*.tmp"):
            tmp.unlink()  # a part being written when the run was killed
        rec = self.recovered
        for name in self._files():
            table = self._read_table(name, ["source", *RUN_COLUMNS])
            for src, *run in zip(*(table.column(c).to_pylist() for c in ["source", *RUN_COLUMNS])):
                found = dict(zip(RUN_COLUMNS, run))
                if found != self.run:
                    raise refuse_other_run(name, found, self.run)
                rec.run = rec.run or found
                rec.sources.add(src)
                rec.rows += 1
        numbers = [int(p.stem.split("-")[1]) for p in self._part_files()]
        self._next_part = max(numbers, default=0) + 1
        return rec.sources

    def write(self, rows: List[Row]) -> None:
        self._buffer.extend(rows)

    def flush(self, *, force: bool = False) -> None:
        """Write a part when 4096 rows or some time (0.5 s, more in long runs) have gathered, not one per batch."""
        now = time.monotonic()
        # The interval grows with the run (1 % of its length), so a long run makes ~100s of parts, not 10,000s.
        interval = max(self.part_seconds, (now - self._started) / 100)
        due = len(self._buffer) >= self.part_rows or now - self._last_part >= interval
        if not self._buffer or not (due or force):
            return
        import pyarrow.parquet as pq

        table = self._table(self._buffer)
        final = self.parts / f"part-{self._next_part:06d}.parquet"
        tmp = final.with_suffix(".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, final)  # a part is whole or absent
        self._next_part += 1
        self._buffer = []
        self._last_part = time.monotonic()

    def close(self, *, complete: bool = True) -> None:
        self.flush(force=True)
        if complete:
            self._merge()

    def read(self) -> Iterator[Row]:
        """Rows of ``<out>`` and then of the parts, each image once: an image already read (in
        ``<out>``, or in an earlier part) is left out wherever it comes again."""
        done: Set[str] = set()
        for path in self._files():
            current: Optional[str] = None
            for row in self._rows(path):
                if row["source"] != current:
                    if current is not None:
                        done.add(current)
                    current = row["source"]
                if current not in done:
                    yield row
            if current is not None:
                done.add(current)

    # --- internals -------------------------------------------------------------------
    def _files(self) -> List[Path]:
        return ([self.path] if self.path.exists() else []) + self._part_files()

    def _part_files(self) -> List[Path]:
        return sorted(self.parts.glob("part-*.parquet")) if self.parts.exists() else []

    def _read_table(self, path: Path, columns: Optional[List[str]] = None) -> Any:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, columns=columns)
        except (OSError, self.pa.ArrowException) as exc:
            raise InvalidInputError(
                f"{path}: not a readable Parquet file ({exc})",
                hint="write to another --out, or pass --overwrite to replace it",
            ) from exc
        missing = [c for c in (columns or COLUMNS) if c not in table.column_names]
        if missing:
            raise InvalidInputError(
                f"{path}: not a leukedge score file (no column(s) {', '.join(missing)})",
                hint="write to another --out, or pass --overwrite to replace it",
            )
        return table

    def _rows(self, path: Path) -> Iterator[Row]:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096):
            for row in batch.to_pylist():
                check_row(row)
                yield row

    def _table(self, rows: List[Row]) -> Any:
        cols = {c: [r[c] for r in rows] for c in COLUMNS}
        return self.pa.Table.from_pydict(cols, schema=_schema(self.pa, self.run))

    def _merge(self) -> None:
        """Write ``<out>`` from its old rows and the parts, atomically, then remove the parts."""
        import pyarrow.parquet as pq

        parts = self._part_files()
        if not parts and self.path.exists():
            shutil.rmtree(self.parts, ignore_errors=True)
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        schema = _schema(self.pa, self.run)
        seen: Set[str] = set()
        with pq.ParquetWriter(tmp, schema) as writer:
            if self.path.exists():
                for batch in pq.ParquetFile(self.path).iter_batches(batch_size=65536):
                    seen.update(batch.column(COLUMNS.index("source")).to_pylist())
                    writer.write_table(self.pa.Table.from_batches([batch]).cast(schema))
            for part in parts:
                table = self._read_table(part)
                if seen:
                    keep = [s not in seen for s in table.column("source").to_pylist()]
                    table = table.filter(self.pa.array(keep))
                writer.write_table(table.select(list(COLUMNS)).cast(schema))
        os.replace(tmp, self.path)
        shutil.rmtree(self.parts)
