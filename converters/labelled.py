"""Folders of labelled cell images, for calibration and for the acceptance gate.

A cell's label comes from its folder (``all/`` or ``hem/``, as in C-NMC) or,
failing that, from its C-NMC file name (``UID_<subject>_<image>_<cell>_<all|hem>``);
its subject comes from the file name.  Unreadable images are skipped and
counted, never silently dropped: the caller reports them.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from leukedge.cnmc import parse_cnmc_name
from leukedge.errors import InvalidImageError, InvalidInputError
from leukedge.images import iter_image_files, read_image
from leukedge.manifest import Preprocessing
from leukedge.segment import cell_image_crop

LABELS = ("hem", "all")


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: Optional[str]  # "all", "hem" or None when neither folder nor name says
    subject: str  # C-NMC subject, or "?" when the name is not a C-NMC name


@dataclass
class CellSet:
    """Cells read into memory: crops (H×W×3 uint8 RGB) with labels and subjects."""

    source: Path
    crops: List[np.ndarray]
    labels: List[Optional[str]]
    subjects: List[str]
    skipped: List[str] = field(default_factory=list)  # "path: why" for unreadable files

    def __len__(self) -> int:
        return len(self.crops)

    def y(self) -> np.ndarray:
        """1 for ALL, 0 for hem (only meaningful when every cell is labelled)."""
        return np.array([1 if lab == "all" else 0 for lab in self.labels], dtype=np.int64)

    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = defaultdict(int)
        for lab in self.labels:
            out[lab or "unlabelled"] += 1
        return dict(sorted(out.items()))

    def describe(self) -> Dict[str, object]:
        """A JSON-able summary for the manifest (where the cells came from, not the cells)."""
        by_subject: Dict[str, int] = defaultdict(int)
        for s in self.subjects:
            by_subject[s] += 1
        return {
            "folder": self.source.name,
            "images": len(self),
            "per_class": self.counts(),
            "subjects": dict(sorted(by_subject.items())),
            "skipped_unreadable": len(self.skipped),
        }


def label_of(path: Path) -> LabelledFile:
    parsed = parse_cnmc_name(path.name)
    folder = path.parent.name.lower()
    label = folder if folder in LABELS else (parsed.label if parsed else None)
    return LabelledFile(path=path, label=label, subject=parsed.subject if parsed else "?")


def list_cells(folder: str | os.PathLike[str], *, what: str) -> List[LabelledFile]:
    """Every image file under ``folder`` with its label; ``what`` names the option in errors."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(
            f"{what} {root}: no such folder",
            hint="point it at a folder of cell images, e.g. ../shared/data/cnmc_sample (all/ and hem/ inside)",
        )
    files = [label_of(p) for p in iter_image_files([root])]
    if not files:
        raise InvalidInputError(
            f"{what} {root}: the folder holds no image (.png, .jpg, .bmp, .tif)",
            hint="point it at a folder of cell images, with all/ and hem/ subfolders or C-NMC file names",
        )
    return files


def read_cells(files: Sequence[LabelledFile], source: Path, spec: Optional[Preprocessing] = None) -> CellSet:
    """The files' cells as model crops: ``cell_image_crop`` with ``spec`` (what ``score`` feeds the
    model), or the decoded images as they are without it."""
    crops, labels, subjects, skipped = [], [], [], []
    for f in files:
        try:
            image = read_image(f.path)
            crops.append(image if spec is None else cell_image_crop(image, spec)[0])
        except InvalidImageError as exc:
            skipped.append(str(exc))
            continue
        labels.append(f.label)
        subjects.append(f.subject)
    return CellSet(source=source, crops=crops, labels=labels, subjects=subjects, skipped=skipped)


def balanced_selection(files: Sequence[LabelledFile], size: int, *, seed: int = 0) -> List[LabelledFile]:
    """Up to ``size`` files, as evenly over the classes as they allow, spread over subjects.

    Each class gets ``size / classes`` files; a class with fewer gives its
    share to the others (the caller warns about the imbalance).  Within a class
    the subjects take turns (round robin, each subject's files in a seeded
    random order), so one large donor cannot fill the set.  Unlabelled files
    are used only when no file is labelled.
    """
    rng = np.random.default_rng(seed)
    by_class: Dict[str, List[LabelledFile]] = defaultdict(list)
    for f in files:
        if f.label is not None:
            by_class[f.label].append(f)
    if not by_class:  # nothing labelled: no balance possible, take a seeded sample
        pool = list(files)
        order = rng.permutation(len(pool))
        return [pool[i] for i in order[:size]]
    queues = {label: _round_robin(by_class[label], rng) for label in sorted(by_class)}
    quota = dict.fromkeys(queues, 0)
    budget = min(size, sum(len(q) for q in queues.values()))
    while budget > 0:  # one more file to each class that still has some, in turn
        for label, queue in queues.items():
            if budget > 0 and quota[label] < len(queue):
                quota[label] += 1
                budget -= 1
    return [f for label, queue in queues.items() for f in queue[: quota[label]]]


def _round_robin(files: Sequence[LabelledFile], rng: np.random.Generator) -> List[LabelledFile]:
    by_subject: Dict[str, List[LabelledFile]] = defaultdict(list)
    for f in files:
        by_subject[f.subject].append(f)
    queues = []
    for subject in sorted(by_subject):
        group = by_subject[subject]
        queues.append([group[i] for i in rng.permutation(len(group))])
    out: List[LabelledFile] = []
    for i in range(max(len(q) for q in queues)):
        out.extend(q[i] for q in queues if i < len(q))
    return out
