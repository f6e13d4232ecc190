"""Train / validation / test split by subject, never by image.

C-NMC labels belong to subjects, so a patient's cells must all fall on one
side: a split by image lets the model recognise the patient and inflates every
figure.  Three ways to split:

* named subjects (``val_subjects``, ``test_subjects``; the rest train);
* C-NMC folds (``val_fold``, ``test_fold``); a subject whose cells span folds
  goes wholly to the held-out side;
* seeded, per class: a ``fraction`` of each class's subjects is drawn for
  validation and for test, skipping any subject whose removal would leave
  training with less than half of that class's cells (in cnmc_sample one donor
  holds 93% of the normal cells; drawing it out would leave nothing to learn).

Near-duplicate cells are removed before splitting (``leukedge.trainer.dedup``);
``check_no_leakage`` verifies both conditions afterwards.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from leukedge.errors import InvalidInputError
from leukedge.trainer.dataset import Cell
from leukedge.trainer.features import DUPLICATE_BITS, DUPLICATE_CORRELATION, hamming, thumb_correlation

ROLES = ("train", "val", "test")
MIN_TRAIN_SHARE = 0.5


@dataclass(frozen=True)
class Split:
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...] = ()
    method: str = "subjects"
    seed: int | None = None

    def role_of(self, subject: str) -> str | None:
        for role in ROLES:
            if subject in getattr(self, role):
                return role
        return None

    def cells(self, cells: list[Cell], role: str) -> list[Cell]:
        members = set(getattr(self, role))
        return [c for c in cells if c.file.subject in members]

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seed": self.seed,
            "subjects": {role: list(getattr(self, role)) for role in ROLES},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Split:
        s = d.get("subjects", {})
        return cls(
            train=tuple(s.get("train", ())),
            val=tuple(s.get("val", ())),
            test=tuple(s.get("test", ())),
            method=str(d.get("method", "subjects")),
            seed=d.get("seed"),
        )


def subject_table(cells: list[Cell]) -> dict[str, tuple[str, int, str | None]]:
    """subject → (majority label, cell count, majority fold)."""
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    folds: dict[str, Counter[str]] = defaultdict(Counter)
    for c in cells:
        labels[c.file.subject][c.file.label] += 1
        folds[c.file.subject][c.file.fold or ""] += 1
    return {
        s: (lab.most_common(1)[0][0], sum(lab.values()), folds[s].most_common(1)[0][0] or None)
        for s, lab in sorted(labels.items())
    }


def subject_key(subject: str) -> tuple[bool, int, str]:
    """Natural order: ALL patients 1, 2, … 23, then donors H1, H2, … H22."""
    core = subject.lstrip("H?")
    return (subject[:1] in "H?", int(core) if core.isdigit() else 0, subject)


def _sorted(subjects: set[str]) -> tuple[str, ...]:
    return tuple(sorted(subjects, key=subject_key))


def split_subjects(
    cells: list[Cell],
    *,
    val_subjects: list[str] | None = None,
    test_subjects: list[str] | None = None,
    val_fold: str | None = None,
    test_fold: str | None = None,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Split:
    """Assign every subject of ``cells`` to train, val or test (see the module docstring).

    Named subjects and folds take precedence; a role not named is drawn by
    ``seed`` from the remaining subjects.
    """
    table = subject_table(cells)
    known = set(table)
    chosen: dict[str, set[str]] = {"val": set(), "test": set()}
    method = []
    for role, names, fold in (("val", val_subjects, val_fold), ("test", test_subjects, test_fold)):
        if names:
            wanted = {n.strip().upper() if n.strip()[:1] in "hH" else n.strip() for n in names if n.strip()}
            unknown = sorted(wanted - known)
            if unknown:
                raise InvalidInputError(
                    f"--{role}-subjects names {', '.join(unknown)}, which are not subjects of this data "
                    f"(subjects: {', '.join(_sorted(known))})",
                    hint="name subjects as in the file names, e.g. 23 or H22",
                )
            chosen[role] = wanted
            method.append(f"{role}: named")
        elif fold:
            in_fold = {c.file.subject for c in cells if (c.file.fold or "") == fold}
            if not in_fold:
                folds = sorted({c.file.fold for c in cells if c.file.fold})
                raise InvalidInputError(
                    f"--{role}-fold is {fold!r}, but no cell is in that fold (folds found: {', '.join(folds) or 'none'})",
                    hint="C-NMC folds are named fold_0, fold_1, fold_2 (folders training_data/fold_<k>/)",
                )
            chosen[role] = in_fold
            method.append(f"{role}: {fold}")
    both = chosen["val"] & chosen["test"]
    if both:
        raise InvalidInputError(
            f"subjects {', '.join(_sorted(both))} are chosen for both validation and test",
            hint="give each subject one role",
        )
    rng = np.random.default_rng(seed)
    for role, fraction in (("val", val_fraction), ("test", test_fraction)):
        if chosen[role] or fraction <= 0:
            continue
        taken = chosen["val"] | chosen["test"]
        chosen[role] = _draw(table, taken, fraction, rng)
        method.append(f"{role}: seeded draw of {fraction:.0%} of each class's subjects")
    train = known - chosen["val"] - chosen["test"]
    split = Split(_sorted(train), _sorted(chosen["val"]), _sorted(chosen["test"]), "; ".join(method), seed)
    _require_usable(split, table)
    return split


def _draw(table: dict[str, tuple[str, int, str | None]], taken: set[str], fraction: float, rng) -> set[str]:
    picked: set[str] = set()
    for label in ("all", "hem"):
        subjects = sorted(s for s, (lab, _, _) in table.items() if lab == label)
        total = sum(table[s][1] for s in subjects)
        in_train = total - sum(table[s][1] for s in subjects if s in taken)
        want = max(1, round(fraction * len(subjects)))
        for s in rng.permutation(subjects).tolist():
            if len(picked & set(subjects)) >= want:
                break
            if s in taken:
                continue
            if in_train - table[s][1] < MIN_TRAIN_SHARE * total:
                continue
            picked.add(s)
            in_train -= table[s][1]
    return picked


def _require_usable(split: Split, table: dict[str, tuple[str, int, str | None]]) -> None:
    for role in ("train", "val"):
        if role == "val" and not split.val:
            continue  # no validation at all (the final model of a CV-chosen recipe) is allowed
        labels = {table[s][0] for s in getattr(split, role)}
        for label in ("all", "hem"):
            if label not in labels:
                subjects = [s for s, (lab, _, _) in table.items() if lab == label]
                raise InvalidInputError(
                    f"the {role} split has no '{label}' subject (split: train {len(split.train)}, "
                    f"val {len(split.val)}, test {len(split.test)} subjects; '{label}' subjects in the data: "
                    f"{', '.join(_sorted(set(subjects))) or 'none'})",
                    hint="each class needs at least one subject for training and one for validation: "
                    "add subjects, or name them with --val-subjects / --test-subjects",
                )


def check_no_leakage(split: Split, cells: list[Cell], *, max_bits: int = DUPLICATE_BITS) -> None:
    """Raise if a subject has two roles or a near-duplicate cell crosses a role boundary.

    Cells count as near-duplicates by the same two tests ``dedup`` applies.
    """
    seen: dict[str, str] = {}
    for role in ROLES:
        for s in getattr(split, role):
            if s in seen:
                raise InvalidInputError(f"subject {s} is in both the {seen[s]} and the {role} split")
            seen[s] = role
    by_role = {role: [c for c in cells if split.role_of(c.file.subject) == role] for role in ROLES}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        if not by_role[a] or not by_role[b]:
            continue
        d = hamming(np.stack([c.phash for c in by_role[a]]), np.stack([c.phash for c in by_role[b]]))
        for i, j in zip(*np.nonzero(d <= max_bits)):
            ca, cb = by_role[a][i], by_role[b][j]
            if thumb_correlation(ca.thumb, cb.thumb) >= DUPLICATE_CORRELATION:
                raise InvalidInputError(
                    f"near-duplicate cells across the {a}/{b} boundary: {ca.file.rel} and "
                    f"{cb.file.rel} ({int(d[i, j])} bits apart)",
                    hint="deduplicate before splitting (leukedge.trainer.dedup.deduplicate)",
                )
