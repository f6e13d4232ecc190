"""Command-line options that choose sinks, shared by ``screen`` (and anything else that streams results).

``@sink_options`` adds the options to a click command; ``build_sinks`` turns
their values into a :class:`SinkSet`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Tuple

import click

from leukedge.errors import InvalidInputError
from leukedge.manifest import Manifest
from leukedge.sinks.base import SinkSet
from leukedge.sinks.files import JsonlSink

FILE_SUFFIXES = (".jsonl",)


def sink_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--out",
        "outs",
        multiple=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Results file, one line per cell (.jsonl). Repeatable.",
    )(f)
    return f


def build_sinks(model_id: str, manifest: Manifest, *, outs: Tuple[Path, ...] = (), **_: Any) -> SinkSet:
    sinks = SinkSet()
    for out in outs:
        if out.suffix.lower() not in FILE_SUFFIXES:
            raise InvalidInputError(
                f"--out {out}: unknown results format {out.suffix!r}, expected one of {', '.join(FILE_SUFFIXES)}"
            )
        sinks.add(JsonlSink(out, model_id))
    return sinks


def first_out(outs: Tuple[Path, ...]) -> Optional[Path]:
    return outs[0] if outs else None
