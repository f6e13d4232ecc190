"""Near-identical cells, found by perceptual hash and removed before any split.

C-NMC holds the same cell imaged twice within a donor, and copies filed under
two donors (in cnmc_sample both cells of H6 are H2's).  A split by subject
cannot see the second kind: the copy crosses the boundary and leaks.  So every
group of near-identical cells keeps one member (the first by path) and the
rest are removed and listed.  A group whose members carry different labels
is removed whole: its label cannot be trusted.

Two cells are near-identical when their perceptual hashes are within
``DUPLICATE_BITS`` *and* their thumbnails correlate at least
``DUPLICATE_CORRELATION`` (the hash finds candidates fast; the correlation
rejects distinct cells of similar shape).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leukedge.trainer.dataset import Cell, Dataset
from leukedge.trainer.features import DUPLICATE_BITS, DUPLICATE_CORRELATION, hamming, thumb_correlation

_BLOCK = 256  # rows per block of the pairwise distance matrix (memory: BLOCK × N × 32 bytes)


@dataclass(frozen=True)
class Removed:
    file: str  # the removed cell (rel path)
    duplicate_of: str  # the kept cell, or "" for a label conflict
    bits: int  # hash distance to it
    reason: str  # "duplicate", "duplicate across subjects", "label conflict"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "duplicate_of": self.duplicate_of, "bits": self.bits, "reason": self.reason}


def near_pairs(hashes: np.ndarray, *, max_bits: int = DUPLICATE_BITS) -> list[tuple[int, int, int]]:
    """(i, j, bits) for every i < j whose hashes are at most ``max_bits`` apart (candidates)."""
    pairs = []
    n = len(hashes)
    for start in range(0, n, _BLOCK):
        d = hamming(hashes[start : start + _BLOCK], hashes)
        rows, cols = np.nonzero(d <= max_bits)
        for r, c in zip(rows.tolist(), cols.tolist()):
            i = start + r
            if c > i:
                pairs.append((i, c, int(d[r, c])))
    return pairs


def groups_of(n: int, pairs: list[tuple[int, int, int]]) -> list[list[int]]:
    """Connected components (size ≥ 2) of the pair graph, each sorted, in order of first member."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _ in pairs:
        ri, rj = root(i), root(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    members: dict[int, list[int]] = {}
    for i in range(n):
        members.setdefault(root(i), []).append(i)
    return sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])


def deduplicate(
    data: Dataset, *, max_bits: int = DUPLICATE_BITS, min_correlation: float = DUPLICATE_CORRELATION
) -> tuple[Dataset, list[Removed]]:
    """``data`` without near-duplicate cells, and the list of what was removed and why."""
    cells = sorted(data.cells, key=lambda c: c.file.rel)
    if not cells:
        return data, []
    hashes = np.stack([c.phash for c in cells])
    pairs = [
        (i, j, b)
        for i, j, b in near_pairs(hashes, max_bits=max_bits)
        if thumb_correlation(cells[i].thumb, cells[j].thumb) >= min_correlation
    ]
    bits = {(i, j): b for i, j, b in pairs}
    drop: dict[int, Removed] = {}
    for group in groups_of(len(cells), pairs):
        labels = {cells[i].file.label for i in group}
        if len(labels) > 1:
            for i in group:
                drop[i] = Removed(cells[i].file.rel, "", 0, "label conflict")
            continue
        keep = group[0]
        for i in group[1:]:
            same = cells[i].file.subject == cells[keep].file.subject
            b = bits.get((keep, i), min(bits.get((min(i, k), max(i, k)), 999) for k in group if k != i))
            drop[i] = Removed(
                cells[i].file.rel, cells[keep].file.rel, b, "duplicate" if same else "duplicate across subjects"
            )
    kept: list[Cell] = [c for k, c in enumerate(cells) if k not in drop]
    return data.subset(kept), [drop[k] for k in sorted(drop)]


def duplicates_of(cells: list[Cell], reference: np.ndarray, *, max_bits: int = DUPLICATE_BITS) -> list[int]:
    """Indices of ``cells`` within ``max_bits`` of any hash in ``reference`` (K×32 packed bytes).

    Hash only (the reference's thumbnails are not stored), so this errs
    towards flagging: used to keep possible copies of training cells out of
    an evaluation.
    """
    if not cells or len(reference) == 0:
        return []
    hashes = np.stack([c.phash for c in cells])
    hit = []
    for start in range(0, len(hashes), _BLOCK):
        d = hamming(hashes[start : start + _BLOCK], reference)
        hit.extend((start + np.nonzero((d <= max_bits).any(axis=1))[0]).tolist())
    return hit
