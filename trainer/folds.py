"""Folds for cross-validation: grouped by subject, stratified by class, large donors apart.

C-NMC labels belong to subjects, so a fold holds whole subjects.  Within each
class, subjects are dealt to folds largest first, each to the fold that has
the fewest cells of that class so far (ties: fewest subjects, then lowest
index).  With K no larger than the number of normal donors, every fold gets
both classes, and the K largest donors of each class fall in K different
folds: each large donor is held out once, alone among the large ones.
"""

from __future__ import annotations

from collections import Counter

from leukedge.errors import InvalidInputError
from leukedge.trainer.dataset import Cell
from leukedge.trainer.split import subject_key, subject_table


def subject_folds(cells: list[Cell], k: int) -> list[tuple[str, ...]]:
    """K tuples of subjects (see the module docstring); deterministic, no seed needed."""
    table = subject_table(cells)
    by_class = {label: [s for s, (lab, _, _) in table.items() if lab == label] for label in ("all", "hem")}
    fewest = min(len(v) for v in by_class.values())
    if k < 2 or k > fewest:
        raise InvalidInputError(
            f"cv folds is {k}, expected 2 to {fewest} (the data have {len(by_class['all'])} ALL subjects and "
            f"{len(by_class['hem'])} normal donors; every fold needs both classes)",
            hint="choose fewer folds, or add subjects of the smaller class",
        )
    folds: list[list[str]] = [[] for _ in range(k)]
    for label in ("hem", "all"):  # the scarcer class first, so it is dealt evenly
        load = Counter({f: 0 for f in range(k)})
        for s in sorted(by_class[label], key=lambda s: (-table[s][1], subject_key(s))):
            f = min(range(k), key=lambda f: (load[f], len(folds[f]), f))
            folds[f].append(s)
            load[f] += table[s][1]
    return [tuple(sorted(f, key=subject_key)) for f in folds]
