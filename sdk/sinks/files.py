"""Results files, one row per cell (schema in leukedge.results), appended and flushed per frame.

``JsonlSink`` writes JSON Lines, ``CsvSink`` the same fields as CSV columns.
Given a :class:`~leukedge.sinks.crops.CropStore`, both add a ``crop`` field:
the path of the flagged cell's PNG relative to the results file's folder
(null for cells not flagged, or past the crop limit).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from leukedge.errors import InvalidInputError
from leukedge.jsonl import JsonlWriter
from leukedge.outlock import OutputLock
from leukedge.results import cell_records, final_records
from leukedge.sinks.base import Sink
from leukedge.sinks.crops import CropStore
from leukedge.sinks.csvfile import CROP_COLUMN, CSV_COLUMNS, CsvWriter
from leukedge.types import FrameResult


class _FileSink(Sink):
    _w: Any = None  # the format's writer, made by the subclass's open()

    def __init__(
        self,
        path: str | os.PathLike[str],
        model: str,
        *,
        append: bool = False,
        crops: Optional[CropStore] = None,
        refuse_existing: bool = False,
    ) -> None:
        self.path = Path(path)
        self.refuse_existing = refuse_existing  # the CLI's rule: a finished run's file is not replaced silently
        self.model = model
        self.append = append
        self.crops = crops
        self.frames = 0
        self.cells = 0
        self._lock = OutputLock(self.path)
        self.error: Optional[OSError] = None  # the first failed write (full disk, ...): later frames are lost
        self.lost_frames = 0
        self.finals = 0  # final records of tracked cells (JSON Lines only)

    def records(self, result: FrameResult) -> List[Dict[str, Any]]:
        recs = cell_records(result, self.model)
        if self.crops is not None:
            saved = self.crops.paths_for(result)
            base = str(self.path.parent.absolute())  # no resolve(): no file-system call per frame
            for r in recs:
                p = saved.get(r["cell"]) if r["cell"] is not None else None
                r["crop"] = None if p is None else os.path.relpath(p, base)
        self.frames += 1
        self.cells += len(result.cells)
        return recs

    def open(self) -> None:
        self._lock.acquire()  # one writer per results file, for the run's life
        if self.refuse_existing and not self.append and self.path.exists() and self.path.stat().st_size > 0:
            self._lock.release()
            raise InvalidInputError(
                f"--out {self.path} already exists", hint="pass --overwrite to replace it, or write to another file"
            )
        if self.crops is not None:
            try:
                self.crops.open()
            except BaseException:
                self._lock.release()
                raise

    def close(self) -> None:
        """Close the writer (``_w``, set by the subclass's ``open``), then the crops and the lock."""
        try:
            if self._w:
                try:
                    self._w.close()
                except OSError as exc:  # what could not be written is dropped; the error is in stats()
                    self.error = self.error or exc
        finally:
            self._close_crops()

    def _close_crops(self) -> None:
        try:
            if self.crops is not None:
                self.crops.close()
        finally:
            self._lock.release()

    def _write_safely(self, write: Callable[[], object]) -> None:
        """Run one write; a failed one is kept (not raised), so screening ends with a summary and a clear error."""
        if self.error is not None:
            self.lost_frames += 1
            return
        try:
            write()
        except OSError as exc:
            self.error = exc
            self.lost_frames += 1

    def stats(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"frames": self.frames, "cells": self.cells, "path": str(self.path)}
        if self.error is not None:
            out["error"] = self.error.strerror or str(self.error)
            out["lost_frames"] = self.lost_frames
        if self.finals:
            out["unique_cells"] = self.finals
        if self.crops is not None:
            out["crops"] = self.crops.stats()
        return out


class JsonlSink(_FileSink):
    name = "jsonl"

    def __init__(self, path: str | os.PathLike[str], model: str, *, append: bool = False, **kw: Any) -> None:
        super().__init__(path, model, append=append, **kw)
        self._w: Optional[JsonlWriter] = None

    def open(self) -> None:
        super().open()
        try:
            self._w = JsonlWriter(self.path, append=self.append)
        except BaseException:  # e.g. refusing to append: stop the crop writer it started
            self._close_crops()
            raise

    def write(self, result: FrameResult) -> None:
        w = self._w
        if w is None:
            raise RuntimeError("JsonlSink.write before open()")
        records = self.records(result)
        self._write_safely(lambda: (w.write_many(records), w.flush()))  # per frame: a crash loses at most one

    def write_tracks(self, finals: Sequence[Any], source: str) -> None:
        w = self._w
        if w is None:
            raise RuntimeError("JsonlSink.write_tracks before open()")
        records = final_records(finals, source, self.model)
        self._write_safely(lambda: (w.write_many(records), w.flush()))
        self.finals += len(finals)


class CsvSink(_FileSink):
    name = "csv"

    def __init__(self, path: str | os.PathLike[str], model: str, *, append: bool = False, **kw: Any) -> None:
        super().__init__(path, model, append=append, **kw)
        self._w: Optional[CsvWriter] = None

    @property
    def columns(self) -> tuple:
        return CSV_COLUMNS + ((CROP_COLUMN,) if self.crops is not None else ())

    def open(self) -> None:
        super().open()
        try:
            self._w = CsvWriter(self.path, self.columns, append=self.append)
        except BaseException:  # e.g. refusing to append: stop the crop writer it started
            self._close_crops()
            raise

    def write(self, result: FrameResult) -> None:
        w = self._w
        if w is None:
            raise RuntimeError("CsvSink.write before open()")
        records = self.records(result)
        self._write_safely(lambda: (w.write_many(records), w.flush()))
