"""Labelled cell folders: find the files, read each once, keep what is usable.

Two layouts are read, and anything in between, from one folder or several
(``scan([a, b])``, or a list file naming one folder per line):

* C-NMC as distributed: ``training_data/fold_0..2/{all,hem}/*.bmp``;
* flat folders ``{all,hem}/`` of BMP, PNG or JPEG files.

Every image whose folder is named ``all`` or ``hem`` is a labelled cell; the
nearest ``fold_<k>`` folder above it is its fold.  The subject comes from the
C-NMC name ``UID_<subject>_<image>_<cell>_<all|hem>``.

``scan`` reads every file once (in threads, one image in memory per thread)
to check it decodes, and to measure its perceptual hash and hand-crafted
features.  Unreadable files are skipped and listed, never silently dropped.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from leukedge.cnmc import parse_cnmc_name
from leukedge.errors import InvalidImageError, InvalidInputError
from leukedge.images import is_image_path, read_image
from leukedge.manifest import Preprocessing

LABELS = ("hem", "all")
_FOLD = re.compile(r"^fold_?(\d+)$", re.IGNORECASE)
LAYOUT_HINT = (
    "put cells in DATA/all/ and DATA/hem/ (or C-NMC's training_data/fold_<k>/{all,hem}/), "
    "named UID_<subject>_<image>_<cell>_<all|hem>.<bmp|png|jpg>"
)


@dataclass(frozen=True)
class CellFile:
    """A labelled image file found under a data folder."""

    path: Path
    rel: str  # relative to the data folder, '/'-separated
    label: str  # "all" or "hem"
    subject: str  # C-NMC subject, or "?<stem>" when the name is not a C-NMC name
    fold: str | None = None


@dataclass
class Cell:
    """A file that decoded, with what was measured on it."""

    file: CellFile
    phash: np.ndarray  # 32 packed bytes
    thumb: np.ndarray  # 32×32×3 uint8
    features: np.ndarray  # features.FEATURE_NAMES
    size: tuple[int, int]  # height, width of the file

    @property
    def area(self) -> float:
        return float(self.features[0])


@dataclass
class Dataset:
    """The usable cells of one or more data folders, and an account of everything else.

    With several folders, ``root`` is the first and each file's ``rel`` starts
    with ``<k>:`` (its folder's position in ``roots``), so names stay unique.
    """

    root: Path
    cells: list[Cell]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (rel path, reason)
    ignored: int = 0  # image files outside any all/ or hem/ folder
    unnamed: int = 0  # files without a C-NMC name (each its own subject)
    roots: tuple[Path, ...] = ()

    def labels(self) -> np.ndarray:
        """1 for ALL, 0 for normal (hem), per cell."""
        return np.array([c.file.label == "all" for c in self.cells], dtype=np.int64)

    def subjects(self) -> np.ndarray:
        return np.array([c.file.subject for c in self.cells], dtype=object)

    def areas(self) -> np.ndarray:
        return np.array([c.area for c in self.cells], dtype=np.float64)

    def counts(self) -> dict[str, int]:
        c = Counter(cell.file.label for cell in self.cells)
        return {label: c.get(label, 0) for label in LABELS}

    def sizes(self) -> dict[str, int]:
        return dict(Counter(f"{c.size[1]}x{c.size[0]}" for c in self.cells))

    def subset(self, keep: list[Cell]) -> Dataset:
        return Dataset(self.root, keep, self.skipped, self.ignored, self.unnamed, self.roots)

    def files_sha256(self) -> str:
        """SHA-256 of the sorted list of ``<rel path>\\t<size in bytes>`` lines of the cells used."""
        lines = sorted(f"{c.file.rel}\t{c.file.path.stat().st_size}" for c in self.cells)
        return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def square_crop(image: np.ndarray) -> np.ndarray:
    """Pad a non-square cell image with black to a centred square, as the scoring path does
    for a pre-segmented cell (``leukedge.segment.crop_for``); square images pass unchanged."""
    h, w = image.shape[:2]
    if h == w:
        return image
    side = max(h, w)
    out = np.zeros((side, side, 3), np.uint8)
    y, x = (side - h) // 2, (side - w) // 2
    out[y : y + h, x : x + w] = image
    return out


def load_cell(path: str | os.PathLike[str], spec: Preprocessing | None = None) -> np.ndarray:
    """A cell image as the model's crop (uint8 RGB), decoded by ``read_image``.

    Without ``spec`` (or with a "canvas" crop) the image padded to a square; with a
    "cell_box" crop, the model-size crop ``leukedge.segment.cell_image_crop`` makes,
    which is what ``score`` feeds the model.
    """
    image = read_image(path)
    if spec is None or spec.crop.mode == "canvas":
        return square_crop(image)
    from leukedge.segment import cell_image_crop

    return cell_image_crop(image, spec)[0]


DataArg = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]


def data_roots(data: DataArg) -> tuple[Path, ...]:
    """The data folders of ``data``: one folder, several, or a text file listing one per line.

    Relative lines of a list file are relative to the file's folder; blank lines and
    lines starting with '#' are ignored.
    """
    items = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not items:
        raise InvalidInputError("no data folder given", hint=LAYOUT_HINT)
    roots: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_file() and not is_image_path(p):
            lines = [ln.strip() for ln in p.read_text(encoding="utf-8", errors="replace").splitlines()]
            listed = [p.parent / ln for ln in lines if ln and not ln.startswith("#")]
            if not listed:
                raise InvalidInputError(f"{p}: the list file names no data folder", hint="one folder per line")
            roots.extend(listed)
        else:
            roots.append(p)
    unique: dict[Path, Path] = {}
    for r in roots:
        unique.setdefault(r.resolve(), r)  # the same folder named twice is read once
    return tuple(unique.values())


def find_cell_files(root: str | os.PathLike[str]) -> tuple[list[CellFile], list[tuple[str, str]], int]:
    """Labelled image files under ``root``: (files, skipped with reasons, images ignored)."""
    base = Path(root)
    if not base.exists():
        raise InvalidInputError(f"{base}: no such data folder", hint=LAYOUT_HINT)
    if not base.is_dir():
        raise InvalidInputError(f"{base}: is a file, expected a data folder", hint=LAYOUT_HINT)
    files: list[CellFile] = []
    skipped: list[tuple[str, str]] = []
    ignored = 0
    for dirpath, dirnames, names in os.walk(base, followlinks=False):
        dirnames.sort()
        folder = Path(dirpath)
        label = folder.name.lower() if folder.name.lower() in LABELS else None
        for name in sorted(names):
            p = folder / name
            if not is_image_path(p):
                continue
            rel = p.relative_to(base).as_posix()
            if label is None:
                ignored += 1
                continue
            parsed = parse_cnmc_name(name)
            if parsed is not None and parsed.label != label:
                skipped.append((rel, f"the name says '{parsed.label}' but the file is in a '{label}' folder"))
                continue
            subject = parsed.subject if parsed is not None else f"?{p.stem}"
            files.append(CellFile(p, rel, label, subject, _fold_of(p, base)))
    return files, skipped, ignored


def _fold_of(path: Path, base: Path) -> str | None:
    for part in reversed(path.relative_to(base).parts[:-1]):
        m = _FOLD.match(part)
        if m:
            return f"fold_{m.group(1)}"
    return None


def scan(data: DataArg, *, workers: int | None = None, require_both: bool = True, progress=None) -> Dataset:
    """Find and read every labelled cell under ``data``'s folders (see the module docstring).

    Raises :class:`InvalidInputError` when no cell is usable, or (with
    ``require_both``) when one class has none.  ``progress(done, total)`` is
    called now and then.
    """
    from leukedge.trainer.features import cell_features, perceptual_hash, thumbnail

    roots = data_roots(data)
    where = " + ".join(str(r) for r in roots)
    files, skipped, ignored = [], [], 0
    for k, root in enumerate(roots):
        f, s, n = find_cell_files(root)
        if len(roots) > 1:  # keep names unique across folders
            f = [CellFile(c.path, f"{k}:{c.rel}", c.label, c.subject, c.fold) for c in f]
            s = [(f"{k}:{rel}", why) for rel, why in s]
        files, skipped, ignored = files + f, skipped + s, ignored + n
    if not files:
        raise InvalidInputError(
            f"{where}: no labelled cell images found ({ignored} image(s) outside all/ or hem/ folders, "
            f"{len(skipped)} skipped)",
            hint=LAYOUT_HINT,
        )

    def measure(f: CellFile) -> Cell | tuple[str, str]:
        try:
            raw = read_image(f.path)
        except InvalidImageError as exc:
            return (f.rel, exc.message)
        img = square_crop(raw)
        return Cell(f, perceptual_hash(img), thumbnail(img), cell_features(img), raw.shape[:2])

    cells: list[Cell] = []
    n_workers = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        for k, result in enumerate(pool.map(measure, files), start=1):
            if isinstance(result, Cell):
                cells.append(result)
            else:
                skipped.append(result)
            if progress is not None and (k % 200 == 0 or k == len(files)):
                progress(k, len(files))
    unnamed = sum(c.file.subject.startswith("?") for c in cells)
    data = Dataset(roots[0], cells, skipped, ignored, unnamed, roots)
    if not cells:
        raise InvalidInputError(
            f"{where}: none of the {len(files)} labelled image(s) could be read (first: {skipped[0][0]}: {skipped[0][1]})",
            hint="check that the files are RGB images (PNG, BMP, JPEG)",
        )
    missing = [label for label, n in data.counts().items() if n == 0]
    if require_both and missing:
        have = next(label for label in LABELS if label not in missing)
        raise InvalidInputError(
            f"{where}: found {len(cells)} '{have}' cell(s) but no '{missing[0]}' cell; training needs both classes",
            hint=f"add a {missing[0]}/ folder with {missing[0]} cells (" + LAYOUT_HINT + ")",
        )
    return data
