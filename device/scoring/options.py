"""How images are scored, as one value: the runtime options and the work options of ``leukedge score``.

``score_files``, ``score_images`` and ``score_labelled`` keep their keyword
arguments (the documented API); each builds one :class:`ScoreOptions` and
passes that on, instead of the same six values one by one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from leukedge.arguments import arg
from leukedge.device.scoring.work import MODES
from leukedge.errors import InvalidInputError
from leukedge.segment import SegmentParams


@dataclass(frozen=True)
class ScoreOptions:
    """``backend``/``precision`` choose the runtime; ``batch_size``, ``workers`` (image-preparing
    processes; None: one per core), ``mode`` (cells, smear or auto), ``progress`` and the
    segmentation ``params`` shape the work."""

    backend: str = "auto"
    precision: str = "auto"
    batch_size: int = 32
    workers: Optional[int] = None
    mode: str = "cells"
    progress: Optional[bool] = False
    params: Optional[SegmentParams] = None

    def checked(self) -> ScoreOptions:
        """Itself, once mode, batch size and workers are valid (errors name the Python argument and the flag)."""
        if self.mode not in MODES:
            raise InvalidInputError(f"{arg('mode', self.mode)} is not a mode, expected one of {', '.join(MODES)}")
        if self.batch_size < 1:
            raise InvalidInputError(f"{arg('batch_size', self.batch_size)} is below 1, expected at least 1")
        if self.workers is not None and self.workers < 0:
            raise InvalidInputError(
                f"{arg('workers', self.workers)} is negative, expected 0 (no worker processes) or more"
            )
        return self
