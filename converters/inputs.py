"""Everything ``convert`` checks before the slow work, and what it records about its inputs.

A mistake in an argument (a missing folder, too few calibration cells, an
unlabelled validation set, a model that is not a leukedge model, no TensorRT
for ``--engine``) is reported here, in seconds, rather than after minutes of
export and calibration.
"""

from __future__ import annotations

import datetime
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

import numpy as np

from leukedge.bundle import MANIFEST_NAME, sha256_file
from leukedge.converters.labelled import CellSet, balanced_selection, list_cells, read_cells
from leukedge.converters.onnx_export import OPSET
from leukedge.converters.quantize import CALIB_BATCH, CALIB_METHODS
from leukedge.errors import InvalidInputError
from leukedge.manifest import Manifest, Preprocessing

if TYPE_CHECKING:
    from leukedge.converters.convert import ConvertOptions

CALIB_WARN_BELOW = 300  # fewer calibration cells than this give noisy activation ranges
REFERENCE_MAX = 256  # cells for the Keras-vs-ONNX parity check
ENGINE_PRECISIONS = ("fp16", "int8")


@dataclass
class ConvertPlan:
    model: Path
    model_sha256: str
    options: ConvertOptions
    manifest: Manifest
    out: Path
    calib: Optional[CellSet]
    validate: Optional[CellSet]
    opset: int = OPSET
    warnings: List[str] = field(default_factory=list)
    reference_source: str = ""


def plan_inputs(model: Path, options: ConvertOptions, *, echo: Callable[[str], None] = print) -> ConvertPlan:
    from leukedge.modelfile import check_layers, read_manifest

    manifest = read_manifest(model)  # not a leukedge model, corrupt, truncated: clear errors, no TensorFlow
    check_layers(model)  # a Lambda or custom layer is refused before anything loads it
    _check_options(options)
    out = options.out or default_out(model)
    _check_out(out, model)
    warnings: List[str] = []
    spec = manifest.preprocessing
    calib = (
        _read_calibration(options.calib_data, options, spec, warnings, echo) if options.calib_data is not None else None
    )
    validate = _read_validation(options.validate, spec, warnings, echo) if options.validate is not None else None
    if options.engine:
        from leukedge.extras import require_tensorrt

        require_tensorrt()
        if options.precision == "int8" and calib is None:
            raise InvalidInputError(
                "--engine --precision int8 needs an INT8 model, and INT8 needs --calib-data",
                hint="add --calib-data DIR (real cells), or build an FP16 engine with --precision fp16",
            )
    out.mkdir(parents=True, exist_ok=True)
    for w in warnings:
        echo(f"Warning: {w}")
    return ConvertPlan(
        model=model,
        model_sha256=sha256_file(model),
        options=options,
        manifest=manifest,
        out=out,
        calib=calib,
        validate=validate,
        warnings=warnings,
    )


def default_out(model: Path) -> Path:
    """The bundle folder when ``--out`` is not given: beside the model, named after it."""
    return model.with_name(model.stem + "-bundle")


def _check_options(options: ConvertOptions) -> None:
    if options.calib_method not in CALIB_METHODS:
        raise InvalidInputError(
            f"--calib-method is {options.calib_method!r}, expected one of {', '.join(CALIB_METHODS)}"
        )
    if options.calib_size < CALIB_BATCH:
        raise InvalidInputError(
            f"--calib-size is {options.calib_size}, expected at least {CALIB_BATCH} (one calibration batch)",
            hint="use 300 or more real cells for stable activation ranges",
        )
    if options.precision not in ENGINE_PRECISIONS:
        raise InvalidInputError(f"--precision is {options.precision!r}, expected one of {', '.join(ENGINE_PRECISIONS)}")
    if not 1 <= options.max_batch <= 1024:
        raise InvalidInputError(f"--max-batch is {options.max_batch}, expected an integer in [1, 1024]")


def _check_out(out: Path, model: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out}: is a file, expected a bundle folder", hint="choose a folder name")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
        raise InvalidInputError(
            f"--out {out}: the folder is not empty and is not a model bundle; leukedge will not write into it",
            hint="choose a new folder, or an existing bundle folder to replace it",
        )
    if out.resolve() == model.parent.resolve():
        raise InvalidInputError(f"--out {out}: is the model's own folder", hint="choose a separate bundle folder")


def _read_calibration(
    folder: Path, options: ConvertOptions, spec: Preprocessing, warnings: List[str], echo: Callable[[str], None]
) -> CellSet:
    found = list_cells(folder, what="--calib-data")
    chosen = balanced_selection(found, options.calib_size, seed=options.seed)
    echo(f"Reading {len(chosen)} of {len(found)} calibration cells (class-balanced) from {folder}")
    cells = read_cells(chosen, Path(folder), spec)
    if cells.skipped:
        warnings.append(f"--calib-data: {len(cells.skipped)} unreadable image(s) skipped, e.g. {cells.skipped[0]}")
    if len(cells) < CALIB_BATCH:
        raise InvalidInputError(
            f"--calib-data {folder}: {len(cells)} usable cell image(s) "
            f"({len(found)} found, balanced over classes {cells.counts()}); at least {CALIB_BATCH} "
            "(one calibration batch) are needed",
            hint=f"add real cells of both classes; {CALIB_WARN_BELOW} or more give stable INT8 ranges",
        )
    if len(cells) < CALIB_WARN_BELOW:
        warnings.append(
            f"--calib-data: only {len(cells)} calibration cells (per class: {cells.counts()}); "
            f"below ~{CALIB_WARN_BELOW} the INT8 activation ranges are noisy"
        )
    labelled = [n for c, n in cells.counts().items() if c != "unlabelled"]
    if len(labelled) < 2 or max(labelled) > 1.5 * min(labelled):
        warnings.append(f"--calib-data: cells per class are {cells.counts()}; calibration is not class-balanced")
    return cells


def _read_validation(folder: Path, spec: Preprocessing, warnings: List[str], echo: Callable[[str], None]) -> CellSet:
    found = list_cells(folder, what="--validate")
    unlabelled = [f.path for f in found if f.label is None]
    if unlabelled:
        raise InvalidInputError(
            f"--validate {folder}: {len(unlabelled)} image(s) have no label, e.g. {unlabelled[0]}",
            hint="the gate needs labelled cells: put them in all/ and hem/ subfolders, or use C-NMC file names "
            "(UID_<subject>_<image>_<cell>_<all|hem>)",
        )
    echo(f"Reading {len(found)} labelled validation cells from {folder}")
    cells = read_cells(found, Path(folder), spec)
    if cells.skipped:
        warnings.append(f"--validate: {len(cells.skipped)} unreadable image(s) skipped, e.g. {cells.skipped[0]}")
    counts = cells.counts()
    if counts.get("all", 0) == 0 or counts.get("hem", 0) == 0:
        raise InvalidInputError(
            f"--validate {folder}: readable cells per class are {counts}; the gate needs both 'all' and 'hem' cells",
            hint="validate on held-back subjects of both classes",
        )
    return cells


def reference_cells(plan: ConvertPlan) -> List[np.ndarray]:
    """Cells for the Keras-vs-ONNX check: validation cells, else calibration cells, else synthetic ones."""
    for source, cells in (("validate", plan.validate), ("calib-data", plan.calib)):
        if cells is not None and len(cells):
            plan.reference_source = f"{source} ({min(len(cells), REFERENCE_MAX)} cells)"
            return cells.crops[:REFERENCE_MAX]
    from leukedge.segment import cell_image_crop
    from leukedge.synthetic import make_cell_image

    spec = plan.manifest.preprocessing
    plan.reference_source = "synthetic cells (32; no --validate or --calib-data given)"
    images = [make_cell_image(i, ("hem", "all")[i % 2], size=spec.crop.canvas_px) for i in range(32)]
    return [cell_image_crop(im, spec)[0] for im in images]


def provenance(plan: ConvertPlan, seconds: Dict[str, float], warnings: List[str]) -> Dict[str, Any]:
    """What the conversion records about itself: source model, tools, data, time."""
    from leukedge._version import __version__

    versions: Dict[str, Any] = {"leukedge": __version__, "python": platform.python_version()}
    for name in ("tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime"):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # recorded as absent; conversion already ran without it
            versions[name] = None
    return {
        "source_model": plan.model.name,
        "source_sha256": plan.model_sha256,
        "converted_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "opset": plan.opset,
        "calibration_data": plan.calib.describe() if plan.calib is not None else None,
        "validation_data": plan.validate.describe() if plan.validate is not None else None,
        "versions": versions,
        "seconds": dict(seconds),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "warnings": list(warnings),
    }
