"""Batch segmentation of image files: boxes to JSON Lines, crops to PNG, failures recorded."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from leukedge.errors import InvalidInputError, LeukedgeError
from leukedge.images import DEFAULT_MAX_PIXELS, iter_image_files, read_image
from leukedge.jsonl import JsonlWriter
from leukedge.manifest import CropSpec
from leukedge.segment import Region, SegmentParams, crop_for, find_cells, is_single_cell_image


@dataclass
class SegmentSummary:
    images: int = 0
    cells: int = 0
    empty: int = 0  # images where no cell was found
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    errors_path: Path | None = None


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
) -> SegmentSummary:
    """Segment every image in ``inputs``; one JSON line per cell in ``out``.

    An image with no cell gets one line with ``"cell": null`` so that every
    input is accounted for.  Unreadable images are skipped and written, with
    the reason, to ``<out>.errors.jsonl``.
    """
    if crop_px < 16:
        raise InvalidInputError(f"--crop-px is {crop_px}, expected at least 16")
    files = iter_image_files(list(inputs))
    if not files:
        raise InvalidInputError(f"no image files (PNG, JPEG, BMP, TIFF) found in: {', '.join(str(i) for i in inputs)}")
    out_path = Path(out)
    crops = Path(crops_dir) if crops_dir else None
    if crops:
        crops.mkdir(parents=True, exist_ok=True)
    spec = CropSpec(canvas_px=450, source_scale=source_scale)
    summary = SegmentSummary()
    errors: JsonlWriter | None = None
    with JsonlWriter(out_path, append=False) as writer:
        for path in files:
            summary.images += 1
            try:
                frame = read_image(path, max_pixels=max_pixels)
                regions = find_cells(frame, params=params, source_scale=source_scale)
            except LeukedgeError as exc:
                summary.failed.append((str(path), exc.message))
                if errors is None:
                    summary.errors_path = out_path.with_name(out_path.name + ".errors.jsonl")
                    errors = JsonlWriter(summary.errors_path, append=False)
                errors.write({"source": str(path), "error": exc.message})
                errors.flush()
                continue
            if not regions:
                summary.empty += 1
                writer.write({"source": str(path), "cell": None, "bbox": None, "area": 0})
            single = is_single_cell_image(frame)
            for k, r in enumerate(regions):
                writer.write({"source": str(path), "cell": k, "bbox": r.bbox.as_list(), "area": r.area})
                if crops:
                    _save_crop(frame, r, crops / f"{path.stem}_cell{k}.png", spec, crop_px, single)
            summary.cells += len(regions)
            writer.flush()
            if on_image:
                on_image(path, len(regions))
    if errors:
        errors.close()
    return summary


def _save_crop(frame: np.ndarray, region: Region, dest: Path, spec: CropSpec, px: int, single: bool) -> None:
    from PIL import Image

    Image.fromarray(crop_for(frame, region, crop=spec, out_px=px, single=single)).save(dest)
