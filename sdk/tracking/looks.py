"""Which looks at a cell count, and how they combine into one p_all.

The rule (documented in docs/tracking.md):

* A *look* is the classifier's p_all for the cell in one frame that is still, in focus, well
  exposed, and shows the whole cell (not cut by the frame's edge).
* The first look counts.  A later look counts only when its frame is sharper than every
  counted look so far by ``sharper_by`` (10%): looks at an unchanged field are not new evidence.
* At most ``max_looks`` (3) looks are kept, the sharpest ones.
* The cell's p_all is the mean of the kept looks in log-odds, turned back into a probability:
  ``sigmoid(mean(logit(p_i)))``.  Log-odds treat a confident look on either side alike, and
  one look gives back its own p_all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Sequence

from leukedge.errors import InvalidInputError

P_EPS = 1e-6  # p_all is clipped to [eps, 1-eps] before its logit


@dataclass(frozen=True)
class Look:
    frame: int
    p_all: float
    focus: float


@dataclass(frozen=True)
class LookPolicy:
    max_looks: int = 3
    sharper_by: float = 0.10

    def __post_init__(self) -> None:
        if self.max_looks < 1:
            raise InvalidInputError(f"max_looks={self.max_looks!r} must be >= 1")
        if self.sharper_by < 0:
            raise InvalidInputError(f"sharper_by={self.sharper_by!r} must be >= 0")

    def admit(self, kept: List[Look], look: Look) -> bool:
        """Add ``look`` to ``kept`` (in place) if the rule counts it; True if it did."""
        if kept and look.focus <= max(k.focus for k in kept) * (1.0 + self.sharper_by):
            return False
        kept.append(look)
        if len(kept) > self.max_looks:
            kept.remove(min(kept, key=lambda k: k.focus))
        return True


def combine_p_all(looks: Sequence[Look]) -> float:
    """``sigmoid(mean(logit(p)))`` of the looks' p_all; raises on no looks."""
    if not looks:
        raise ValueError("combine_p_all needs at least one look")
    logits = []
    for lk in looks:
        p = min(1.0 - P_EPS, max(P_EPS, lk.p_all))
        logits.append(math.log(p / (1.0 - p)))
    z = sum(logits) / len(logits)
    return 1.0 / (1.0 + math.exp(-z))
