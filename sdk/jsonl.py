"""JSON Lines written so that a crash leaves at most one partial last line, and read back tolerantly."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

# one encoder for every line: json.dumps with options builds a new encoder per call
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class JsonlWriter:
    """Appends one JSON object per line; ``flush()`` pushes whole lines to the OS.

    Lines are built fully in memory before being written, so an interrupted
    process leaves at most the last line cut short.
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = True, fsync: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(self.path, "a" if append else "w", encoding="utf-8")
        self._fsync = fsync
        self.lines = 0

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(_ENCODE(record) + "\n")
        self.lines += 1

    def write_many(self, records: Iterable[dict[str, Any]]) -> None:
        self._fh.write("".join(_ENCODE(r) + "\n" for r in records))

    def flush(self) -> None:
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.flush()
            self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class JsonlProblems:
    """Lines that could not be read: (line number, reason)."""

    bad_lines: list[tuple[int, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.bad_lines)

    def describe(self, path: str | os.PathLike[str], limit: int = 5) -> str:
        shown = ", ".join(f"line {n} ({why})" for n, why in self.bad_lines[:limit])
        more = f" and {len(self.bad_lines) - limit} more" if len(self.bad_lines) > limit else ""
        return f"{path}: skipped {len(self.bad_lines)} malformed line(s): {shown}{more}"


def iter_jsonl(path: str | os.PathLike[str], problems: JsonlProblems | None = None) -> Iterator[dict[str, Any]]:
    """Yield each line's object; malformed lines (and a cut-off last line) go to ``problems``."""
    for _n, obj in iter_jsonl_numbered(path, problems):
        yield obj


def iter_jsonl_numbered(
    path: str | os.PathLike[str], problems: JsonlProblems | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Like :func:`iter_jsonl`, with each object's 1-based line number (for checks that name the line)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                why = "cut off (no newline at end of file)" if not line.endswith("\n") else f"not JSON: {exc.msg}"
                if problems is not None:
                    problems.bad_lines.append((n, why))
                continue
            if not isinstance(obj, dict):
                if problems is not None:
                    problems.bad_lines.append((n, f"expected a JSON object, got {type(obj).__name__}"))
                continue
            yield n, obj
