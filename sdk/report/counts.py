"""The slide tally moved to :mod:`leukedge.tally` (shared with the sinks); re-exported for old imports."""

from __future__ import annotations

from leukedge.tally import (
    DEFAULT_MIN_CELLS,
    Z95,
    CellTally,
    adequacy_verdict,
    describe_fraction,
    format_percent,
    in_band,
    wilson_interval,
)

__all__ = [
    "DEFAULT_MIN_CELLS",
    "Z95",
    "CellTally",
    "adequacy_verdict",
    "describe_fraction",
    "format_percent",
    "in_band",
    "wilson_interval",
]
