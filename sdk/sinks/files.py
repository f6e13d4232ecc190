"""JSON Lines results file: one line per cell (schema in leukedge.results), flushed per frame."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from leukedge.jsonl import JsonlWriter
from leukedge.results import cell_records
from leukedge.sinks.base import Sink
from leukedge.types import FrameResult


class JsonlSink(Sink):
    name = "jsonl"

    def __init__(self, path: str | os.PathLike[str], model: str, *, append: bool = False) -> None:
        self.path = path
        self.model = model
        self.append = append
        self._w: Optional[JsonlWriter] = None
        self.frames = 0
        self.cells = 0

    def open(self) -> None:
        self._w = JsonlWriter(self.path, append=self.append)

    def write(self, result: FrameResult) -> None:
        assert self._w is not None, "JsonlSink.write before open()"
        self._w.write_many(cell_records(result, self.model))
        self._w.flush()  # per frame: a crash loses at most the frame being written
        self.frames += 1
        self.cells += len(result.cells)

    def close(self) -> None:
        if self._w:
            self._w.close()

    def stats(self) -> Dict[str, Any]:
        return {"frames": self.frames, "cells": self.cells, "path": str(self.path)}
