"""Batch segmentation of image files: boxes to JSON Lines, crops to PNG, failures recorded.

The same rules as ``leukedge score`` for what is written: an existing ``--out``
is replaced only with ``overwrite``, nothing is ever written over an input,
the results file and its sidecar (``<out>.errors.jsonl``) have one writer
(:class:`~leukedge.outlock.OutputLock`), every input that is not segmented
(an unreadable image or folder) is counted and listed, and every crop gets a
name no other cell of the run shares.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leukedge.errors import InvalidInputError, LeukedgeError
from leukedge.images import DEFAULT_MAX_PIXELS, FileListing, iter_image_files, no_images_error, read_image
from leukedge.jsonl import JsonlWriter
from leukedge.manifest import CropSpec
from leukedge.outlock import OutputLock, output_error
from leukedge.segment import Region, SegmentParams, crop_for, find_cells, is_single_cell_image

MAX_CROP_PX = 4096  # 4096² RGB is 50 MB a crop; larger is a typo (60000 would ask for 10 GB)


@dataclass
class SegmentSummary:
    images: int = 0
    cells: int = 0
    empty: int = 0  # images where no cell was found
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): images and folders not read
    errors_path: Path | None = None
    unreadable_folders: int = 0


def segment_files(
    inputs: list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    crops_dir: str | os.PathLike[str] | None = None,
    crop_px: int = 450,
    source_scale: float = 1.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    params: SegmentParams | None = None,
    on_image: Callable[[Path, int], None] | None = None,
    overwrite: bool = False,
    progress: bool | None = False,
) -> SegmentSummary:
    """Segment every image in ``inputs``; one JSON line per cell in ``out``.

    An image with no cell gets one line with ``"cell": null`` so that every
    input is accounted for.  Unreadable images and folders are skipped and
    written, with the reason, to ``<out>.errors.jsonl``.  With ``crops_dir``
    each line names its crop (``"crop"``, relative to ``crops_dir``), laid
    out in the inputs' sub-folders.
    """
    if not (isinstance(source_scale, (int, float)) and 0.01 <= source_scale <= 100.0):  # NaN fails too
        raise InvalidInputError(f"--source-scale is {source_scale!r}, expected a number in [0.01, 100] (1.0: C-NMC's)")
    if not 16 <= crop_px <= MAX_CROP_PX:
        raise InvalidInputError(f"--crop-px is {crop_px}, expected an integer in [16, {MAX_CROP_PX}] (C-NMC: 450)")
    listing = FileListing()
    files = iter_image_files(list(inputs), listing=listing)
    if not files:
        raise no_images_error(inputs, listing)
    out_path = Path(out)
    crops = Path(crops_dir) if crops_dir else None
    names = crop_names(files) if crops else {}
    _check_outputs(files, out_path, crops, names, overwrite=overwrite)
    summary = SegmentSummary(unreadable_folders=len(listing.unreadable))
    failures = [(str(p), f"folder cannot be read: {why}") for p, why in listing.unreadable]
    run = _Run(out_path, crops, names, CropSpec(canvas_px=450, source_scale=source_scale), crop_px, summary)
    with OutputLock(out_path):
        try:
            if run.errors_path.exists():
                run.errors_path.unlink()  # an earlier run's failures are not this run's
            for path, why in failures:
                run.fail(path, why)
            run.loop(files, max_pixels=max_pixels, params=params, on_image=on_image, progress=progress)
            run.close()
        except OSError as exc:  # reading is checked image by image: this is a write (full disk, read-only)
            run.close(quietly=True)
            raise output_error(exc, out_path) from exc
        except BaseException:
            run.close(quietly=True)
            raise
    return summary


def crop_names(files: list[Path]) -> dict[Path, Path]:
    """Each input's crop name stem (``<sub-folder>/<stem>``, then ``_cell<k>.png``), distinct by construction.

    Sub-folders below the inputs' common folder are kept, so ``a/x.png`` and
    ``b/x.png`` do not meet; two files of one folder with one stem (``x.png``,
    ``x.jpg``) keep their suffix in the name.
    """
    absolute = [Path(os.path.abspath(f)) for f in files]
    common = Path(os.path.commonpath([str(p.parent) for p in absolute]))
    rel = [p.parent.relative_to(common) for p in absolute]
    stems = Counter((r, p.stem) for r, p in zip(rel, absolute))
    names: dict[Path, Path] = {}
    used: set[Path] = set()
    for f, r, p in zip(files, rel, absolute):
        base = r / (p.stem if stems[(r, p.stem)] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}")
        candidate, n = base, 1
        while candidate in used:  # e.g. x.png beside x.PNG: still distinct
            n += 1
            candidate = base.with_name(f"{base.name}_{n}")
        used.add(candidate)
        names[f] = candidate
    return names


def _check_outputs(
    files: list[Path], out: Path, crops: Path | None, names: dict[Path, Path], *, overwrite: bool
) -> None:
    """Refuse an existing output without ``overwrite``, and any output that is (or holds) an input."""
    inputs = {os.path.realpath(f) for f in files}
    if os.path.realpath(out) in inputs:
        raise InvalidInputError(f"--out {out} is one of the input images; it would be overwritten")
    if out.exists() and not overwrite:
        raise InvalidInputError(
            f"--out {out} already exists", hint="pass --overwrite to replace it, or write to another file"
        )
    if crops is None:
        return
    root = os.path.realpath(crops)
    inside = [f for f in inputs if f.startswith(root + os.sep)]
    if inside:
        raise InvalidInputError(
            f"--crops {crops} holds input images (e.g. {inside[0]}); crops written there would mix with "
            "(or overwrite) the inputs, and be read as inputs next time",
            hint="write the crops to a folder outside the inputs",
        )
    if not overwrite:
        clash = next(
            (c for base in names.values() for c in sorted((crops / base.parent).glob(base.name + "_cell*.png"))), None
        )
        if clash is not None:
            raise InvalidInputError(
                f"--crops {crops} already holds crops of these images (e.g. {clash})",
                hint="pass --overwrite to replace them, or write the crops to another folder",
            )


class _Run:
    """One segmentation run's writers: results, errors sidecar (lazily), crops."""

    def __init__(
        self, out: Path, crops: Path | None, names: dict[Path, Path], spec: CropSpec, px: int, summary: SegmentSummary
    ) -> None:
        self.out, self.crops, self.names, self.spec, self.px, self.summary = out, crops, names, spec, px, summary
        self.errors_path = out.with_name(out.name + ".errors.jsonl")
        self.writer: JsonlWriter | None = None
        self.errors: JsonlWriter | None = None

    def fail(self, source: str, why: str) -> None:
        self.summary.failed.append((source, why))
        if self.errors is None:
            self.summary.errors_path = self.errors_path
            self.errors = JsonlWriter(self.errors_path, append=False)
        self.errors.write({"source": source, "error": why})
        self.errors.flush()

    def loop(
        self,
        files: list[Path],
        *,
        max_pixels: int,
        params: SegmentParams | None,
        on_image: Callable[[Path, int], None] | None,
        progress: bool | None,
    ) -> None:
        from leukedge.progress import Progress

        self.writer = JsonlWriter(self.out, append=False)
        bar = Progress(len(files), enabled=progress, label="segment")
        try:
            for path in files:
                self.summary.images += 1
                n = self._one(path, max_pixels, params)
                bar.update(1, failed=int(n < 0))
                if on_image and n >= 0:
                    on_image(path, n)
        finally:
            bar.close()

    def _one(self, path: Path, max_pixels: int, params: SegmentParams | None) -> int:
        """Segment one image; its number of cells, or -1 when it could not be read."""
        assert self.writer is not None
        try:
            frame = read_image(path, max_pixels=max_pixels)
            regions = find_cells(frame, params=params, source_scale=self.spec.source_scale)
        except LeukedgeError as exc:
            self.fail(str(path), exc.message)
            return -1
        if not regions:
            self.summary.empty += 1
            self.writer.write({"source": str(path), "cell": None, "bbox": None, "area": 0})
        single = is_single_cell_image(frame)
        for k, r in enumerate(regions):
            record = {"source": str(path), "cell": k, "bbox": r.bbox.as_list(), "area": r.area}
            if self.crops is not None:
                rel = self.names[path].with_name(f"{self.names[path].name}_cell{k}.png")
                _save_crop(frame, r, self.crops / rel, self.spec, self.px, single)
                record["crop"] = rel.as_posix()
            self.writer.write(record)
        self.summary.cells += len(regions)
        self.writer.flush()
        return len(regions)

    def close(self, *, quietly: bool = False) -> None:
        for w in (self.writer, self.errors):
            try:
                if w is not None:
                    w.close()
            except OSError:
                if not quietly:
                    raise


def _save_crop(frame: np.ndarray, region: Region, dest: Path, spec: CropSpec, px: int, single: bool) -> None:
    from PIL import Image

    dest.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(crop_for(frame, region, crop=spec, out_px=px, single=single)).save(dest)
