"""Optimal one-to-one assignment for small cost matrices (the cells of one frame against the
tracks near it), so that the device needs no SciPy for a 10×10 problem.

:func:`min_cost_pairs` solves the rectangular assignment problem exactly with the
shortest-augmenting-path Hungarian method (O(n²m)); pairs costing more than ``max_cost`` are
a gate: any row or column may stay unpaired at that cost.  It agrees with
``scipy.optimize.linear_sum_assignment`` (tested against it and against brute force).
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np


def min_cost_pairs(cost: np.ndarray, *, max_cost: Optional[float] = None) -> List[Tuple[int, int]]:
    """(row, column) pairs of a minimum-cost matching of ``cost`` (2-D, finite floats), each row
    and column used at most once.

    Without ``max_cost``: min(rows, columns) pairs.  With it (a gate), a row may stay unpaired at
    a cost of ``max_cost`` and a column for nothing: the matching is optimal over those choices
    too, so a column that can only pair expensively does not take a row from a cheap pair, and
    no pair above ``max_cost`` is returned."""
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2:
        raise ValueError(f"cost must be a 2-D matrix, got shape {c.shape}")
    if c.size == 0:
        return []
    if not np.isfinite(c).all():
        raise ValueError("cost must be finite (use a large value, then max_cost, to forbid a pair)")
    if max_cost is not None:
        rows, cols = c.shape
        opt_out = np.full((rows, rows), float(max_cost))  # one "stay unpaired" column per row
        pairs = _solve(np.hstack([c, opt_out]))
        return [(r, k) for r, k in pairs if k < cols and c[r, k] <= max_cost]
    return _solve(c)


def _solve(c: np.ndarray) -> List[Tuple[int, int]]:
    """All min(rows, columns) pairs of a minimum-cost matching, sorted by row."""
    transposed = c.shape[0] > c.shape[1]
    cols_of_rows = _hungarian(c.T if transposed else c)
    pairs = [(r, k) for r, k in enumerate(cols_of_rows)]
    if transposed:
        pairs = [(k, r) for r, k in pairs]
    pairs.sort()
    return pairs


def _hungarian(c: np.ndarray) -> List[int]:
    """The column of each row of ``c`` (rows <= columns) in a minimum-cost matching."""
    n, m = c.shape
    u = np.zeros(n + 1)  # row potentials (1-based, 0 is a sentinel)
    v = np.zeros(m + 1)  # column potentials
    row_of = np.zeros(m + 1, dtype=np.int64)  # row matched to each column (0: none)
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        row_of[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:  # grow a shortest augmenting path from row i
            used[j0] = True
            i0 = row_of[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            masked = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(masked)) + 1
            delta = masked[j1 - 1]
            u[row_of[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if row_of[j0] == 0:
                break
        while j0:  # flip the path
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    out = [0] * n
    for j in range(1, m + 1):
        if row_of[j]:
            out[row_of[j] - 1] = j - 1
    return out
