"""Before training: scan the data folders, remove near-duplicate cells, split by subject."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from leukedge.trainer.dataset import DataArg, Dataset, scan
from leukedge.trainer.dedup import Removed, deduplicate
from leukedge.trainer.split import Split, check_no_leakage, split_subjects

Progress = Callable[[str], None]


@dataclass(frozen=True)
class SplitOptions:
    val_subjects: tuple[str, ...] = ()
    test_subjects: tuple[str, ...] = ()
    val_fold: str | None = None
    test_fold: str | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2


@dataclass
class Prepared:
    data: Dataset
    removed: list[Removed]
    split: Split


def prepare(data_dir: DataArg, split: SplitOptions, *, seed: int, progress: Progress | None = None) -> Prepared:
    """Scan, deduplicate and split a data folder; checks the split for leakage."""
    say = progress or (lambda _m: None)
    data = scan(data_dir, progress=lambda k, n: say(f"reading cells: {k}/{n}"))
    kept, removed = deduplicate(data)
    s = split_subjects(
        kept.cells,
        val_subjects=list(split.val_subjects),
        test_subjects=list(split.test_subjects),
        val_fold=split.val_fold,
        test_fold=split.test_fold,
        val_fraction=split.val_fraction,
        test_fraction=split.test_fraction,
        seed=seed,
    )
    check_no_leakage(s, kept.cells)
    return Prepared(kept, removed, s)


def data_warnings(p: Prepared) -> list[str]:
    out = []
    if p.data.skipped:
        out.append(f"{len(p.data.skipped)} file(s) skipped (unreadable or mislabelled); listed in the split file")
    if p.removed:
        crossing = sum(r.reason == "duplicate across subjects" for r in p.removed)
        out.append(f"{len(p.removed)} near-duplicate cell(s) removed ({crossing} filed under another subject)")
    if len(p.data.sizes()) > 1:
        out.append(
            "images come in several sizes ("
            + ", ".join(f"{k}: {v}" for k, v in sorted(p.data.sizes().items()))
            + "); each is padded to a square and resized, so a cell's apparent size depends on its file's size"
        )
    if p.data.unnamed:
        out.append(
            f"{p.data.unnamed} file(s) lack C-NMC names (UID_<subject>_…); each counts as its own subject, "
            "so their patients may be split across training and validation"
        )
    return out
