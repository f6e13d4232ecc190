"""``score_files`` (inputs → a results file, resumable) and ``score_labelled`` (for evaluate).

Both run the same engine: worker processes decode, segment and preprocess
with the core :func:`leukedge.preprocess.preprocess`; the main process runs
batched inference on the runtime that :func:`open_runtime` chose.  Metrics
for a Keras ``.h5``, FP32 ONNX, INT8 ONNX and TensorRT engines therefore come
from one piece of code.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from leukedge.bundle import Bundle
from leukedge.cnmc import parse_cnmc_name
from leukedge.device.runtimes import ModelRef, choose_backend, open_runtime, resolve_model
from leukedge.device.runtimes.base import Runtime
from leukedge.device.scoring.engine import LocalEngine, default_workers, iter_prepared, iter_scored, rows_of
from leukedge.device.scoring.options import ScoreOptions
from leukedge.device.scoring.progress import Progress
from leukedge.device.scoring.stores import STORES, Recovered
from leukedge.device.scoring.work import PrepareOptions, source_key
from leukedge.errors import InvalidInputError
from leukedge.images import FileListing, list_image_paths, no_images_error
from leukedge.jsonl import JsonlWriter
from leukedge.manifest import Manifest
from leukedge.outlock import OutputLock, is_file_error, output_error
from leukedge.segment import SegmentParams

if TYPE_CHECKING:
    from leukedge.device.scoring.cluster import ClusterOptions

ModelArg = Union[str, "os.PathLike[str]", Bundle, ModelRef, None]
ClusterArg = Union[str, "ClusterOptions", None]
SUFFIXES = (".csv", ".jsonl", ".parquet")


@dataclass
class ScoreSummary:
    out: Path
    listed: int = 0  # image files found in the inputs
    already_done: int = 0  # skipped because the results file had them (--resume)
    scored: int = 0  # images scored in this run
    cells: int = 0
    no_cells: int = 0  # images in which no cell was found
    modes: Dict[str, int] = field(default_factory=dict)  # images per mode used
    failed: List[Tuple[str, str]] = field(default_factory=list)  # (path, reason)
    errors_path: Optional[Path] = None
    duplicates: List[Tuple[Path, Path]] = field(default_factory=list)  # (left out, kept)
    ignored: List[Path] = field(default_factory=list)  # not image files, found in folders or patterns
    unreadable: List[Tuple[str, str]] = field(default_factory=list)  # folders that could not be listed, and why
    dropped_rows: int = 0  # rows of an image cut short by a crash, scored again
    run: Dict[str, str] = field(default_factory=dict)  # model, precision, backend
    seconds: float = 0.0
    nodes: Dict[str, int] = field(default_factory=dict)  # on a cluster: images scored per Ray node id


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def open_store(out: Path, run: Dict[str, str]) -> Any:
    """The results store for ``out``'s suffix (.csv, .jsonl or .parquet)."""
    suffix = out.suffix.lower()
    if suffix == ".parquet":
        from leukedge.device.scoring.parquet_store import ParquetStore

        return ParquetStore(out, run)
    if suffix not in STORES:
        raise InvalidInputError(
            f"--out {out}: unknown results format {suffix or '(no suffix)'!r}, expected one of {', '.join(SUFFIXES)}",
            hint="name the file results.csv, results.jsonl or results.parquet",
        )
    return STORES[suffix](out, run)


def read_results(path: Union[str, os.PathLike[str]]) -> Iterator[Dict[str, Any]]:
    """The rows of a score results file of any format (complete images only, each once)."""
    p = Path(path)
    store = open_store(p, {"model": "", "precision": "", "backend": ""})
    if not store.exists():
        raise InvalidInputError(f"{p}: no such results file")
    return store.read()  # type: ignore[no-any-return]


def _runtime_for(model: ModelArg, options: ScoreOptions) -> Tuple[Runtime, Dict[str, str]]:
    """The (unopened) runtime and the run's identity.

    ONNX Runtime gets the cores the workers leave (at least one thread): its
    default, a spinning thread per core, was measured to double the main
    process's CPU time per image while the workers need those cores.
    """
    ref = model if isinstance(model, ModelRef) else resolve_model(model)
    name = choose_backend(ref, options.backend)
    runtime_options: Dict[str, Any] = {}
    if name == "onnxruntime":
        cores = os.cpu_count() or 1
        workers = options.workers
        runtime_options["threads"] = max(1, cores - (cores if workers is None else workers))
    runtime = open_runtime(ref, backend=name, precision=options.precision, **runtime_options)
    return runtime, {"model": ref.identity, "precision": runtime.precision, "backend": runtime.name}


def _engine_for(model: ModelArg, options: ScoreOptions, cluster: ClusterArg) -> Any:
    """This machine's engine, or with ``cluster`` the Ray one (``cluster.py``): the same interface."""
    if cluster is None:
        runtime, run = _runtime_for(model, options)
        return LocalEngine(runtime, run, options.workers)
    from leukedge.device.scoring.cluster import ClusterEngine, ClusterOptions

    return ClusterEngine(ClusterOptions.of(cluster, options.workers), model, options.backend, options.precision)


def score_files(
    inputs: Sequence[Union[str, os.PathLike[str]]],
    out: Union[str, os.PathLike[str]],
    *,
    model: ModelArg = "reference",
    backend: str = "auto",
    precision: str = "auto",
    batch_size: int = 32,
    workers: Optional[int] = None,
    mode: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    progress: Optional[bool] = None,
    params: Optional[SegmentParams] = None,
    cluster: ClusterArg = None,
) -> ScoreSummary:
    """Score every image in ``inputs`` (files, folders, globs) into ``out`` (.csv, .jsonl or .parquet).

    One row per cell (see :mod:`leukedge.device.scoring.rows`).  Unreadable
    images are listed with the reason in ``<out>.errors.jsonl`` and the run
    goes on; check ``summary.failed``.  ``resume`` continues a results file
    of the same model, precision and backend, scoring only images it lacks
    (images that failed before are tried again).  An existing ``out`` is
    never replaced unless ``overwrite``.  ``cluster`` ("HOST:PORT", "local" or
    a :class:`~leukedge.device.scoring.cluster.ClusterOptions`) scores on Ray
    (``workers`` is then the number of scoring actors); see docs/scoring.md.
    """
    t0 = time.monotonic()
    options = ScoreOptions(backend, precision, batch_size, workers, mode, progress, params).checked()
    out_path = Path(out)
    if resume and overwrite:
        raise InvalidInputError("--resume and --overwrite contradict each other", hint="pass one of them")
    engine = _engine_for(model, options, cluster)
    run = engine.run
    store = open_store(out_path, run)
    summary = ScoreSummary(out=out_path, run=run)
    listing = FileListing()
    files = list_image_paths(list(inputs), listing=listing)
    summary.listed, summary.duplicates, summary.ignored = len(files), listing.duplicates, listing.ignored
    summary.unreadable = [(str(p), f"folder cannot be read: {why}") for p, why in listing.unreadable]
    if not files:
        raise no_images_error(inputs, listing)
    with OutputLock(out_path):  # one writer for the results file and its sidecars, for the whole run
        try:
            _score_into(store, files, summary, engine, run, resume=resume, overwrite=overwrite, options=options)
        except OSError as exc:  # images are read in workers and reported per image: this is a write
            if not is_file_error(exc):
                raise  # e.g. a cluster's connection: not the results file's fault
            err = output_error(exc, out_path)
            err.hint = f"{err.hint}; the images written so far are kept: run again with --resume to finish"
            raise err from exc
    summary.seconds = time.monotonic() - t0
    return summary


def _score_into(
    store: Any,
    files: List[str],
    summary: ScoreSummary,
    engine: Any,
    run: Dict[str, str],
    *,
    resume: bool,
    overwrite: bool,
    options: ScoreOptions,
) -> None:
    """The scoring loop, run while this process holds the results file's lock."""
    out_path = summary.out
    if store.exists() and not resume:
        if not overwrite:
            raise InvalidInputError(
                f"--out {out_path} already exists",
                hint="pass --resume to continue it (it keeps its rows), or --overwrite to replace it",
            )
        store.remove()
    done = store.start()
    recovered: Recovered = store.recovered
    summary.dropped_rows = recovered.dropped_rows
    todo = [p for p in files if source_key(Path(p)) not in done] if done else files
    summary.already_done = len(files) - len(todo)
    errors_path = out_path.with_name(out_path.name + ".errors.jsonl")
    if errors_path.exists():
        errors_path.unlink()  # failures of an earlier run are retried now
    errors: Optional[JsonlWriter] = None
    if summary.unreadable:  # inputs never reached are failures too, listed like unreadable images
        errors = JsonlWriter(errors_path, append=False)
        for path, why in summary.unreadable:
            errors.write({"source": path, "error": why})
        errors.flush()
        summary.failed.extend(summary.unreadable)
    bar = Progress(len(todo), enabled=options.progress)
    opts = PrepareOptions(mode=options.mode, spec=engine.manifest.preprocessing, params=options.params)
    modes: Counter = Counter()
    complete = False
    try:
        with engine.opened(todo, bar.note):
            for batch in engine.batches(todo, opts, options.batch_size):
                failed_now = 0
                for scored in batch:
                    it = scored.item
                    if it.error is not None:
                        if errors is None:
                            errors = JsonlWriter(errors_path, append=False)
                        errors.write({"source": it.path, "error": it.error})
                        summary.failed.append((it.path, it.error))
                        failed_now += 1
                        continue
                    store.write(rows_of(scored, engine.manifest, run))
                    summary.scored += 1
                    summary.cells += len(it.cells)
                    summary.no_cells += not it.cells
                    modes[it.mode] += 1
                store.flush()
                if errors is not None:
                    errors.flush()
                bar.update(len(batch), failed=failed_now)
        complete = True
    finally:
        bar.close()
        summary.nodes = dict(engine.nodes)
        store.close(complete=complete)
        if errors is not None:
            errors.close()
    summary.errors_path = errors_path if summary.failed else None
    summary.modes = dict(modes)


@dataclass
class LabelledScores:
    """Per-cell scores of labelled C-NMC-named images, for metrics.

    ``rows`` hold ``source``, ``subject``, ``true_label`` ("all"/"hem"),
    ``p_all`` (full float precision), ``label``, ``area`` (cell pixels) and
    ``mode``; arrays below are in the same order.
    """

    rows: List[Dict[str, Any]]
    failed: List[Tuple[str, str]]
    run: Dict[str, str]  # model (short hash), precision, backend

    @property
    def p_all(self) -> np.ndarray:
        return np.array([r["p_all"] for r in self.rows], dtype=np.float64)

    @property
    def y_true(self) -> np.ndarray:
        """1 for ALL, 0 for normal (hem)."""
        return np.array([r["true_label"] == "all" for r in self.rows], dtype=np.int64)

    @property
    def subjects(self) -> List[str]:
        return [r["subject"] for r in self.rows]

    @property
    def areas(self) -> np.ndarray:
        return np.array([r["area"] for r in self.rows], dtype=np.float64)


@dataclass
class ImageScores:
    """In-memory scores of image files: for each file that was read, its cells' (p_all, area).

    ``cells`` maps the path as given to a list (empty when no cell was found);
    unreadable files are in ``failed`` instead.
    """

    cells: Dict[str, List[Tuple[float, int]]]
    modes: Dict[str, str]  # path -> mode used (cells or smear)
    sources: Dict[str, str]  # path -> source as written in results rows
    failed: List[Tuple[str, str]]
    run: Dict[str, str]  # model (short hash), precision, backend
    manifest: Manifest  # the scored model's, for its decision rule
    describe: str = ""  # the runtime, e.g. "onnxruntime int8 (CPU)"


def score_images(
    files: Sequence[Union[str, os.PathLike[str]]],
    model: ModelArg,
    *,
    backend: str = "auto",
    precision: str = "auto",
    batch_size: int = 32,
    workers: Optional[int] = None,
    mode: str = "cells",
    progress: Optional[bool] = False,
) -> ImageScores:
    """Score image files in memory through the same engine as ``leukedge score``.

    The single prediction path behind ``score_labelled`` and ``leukedge evaluate``.
    """
    options = ScoreOptions(backend, precision, batch_size, workers, mode, progress).checked()
    return _score_images(files, model, options)


def _score_images(files: Sequence[Union[str, os.PathLike[str]]], model: ModelArg, options: ScoreOptions) -> ImageScores:
    paths = [str(f) for f in files]
    runtime, run = _runtime_for(model, options)
    opts = PrepareOptions(mode=options.mode, spec=runtime.manifest.preprocessing)
    n_workers = default_workers(len(paths)) if options.workers is None else options.workers
    out = ImageScores(cells={}, modes={}, sources={}, failed=[], run=run, manifest=runtime.manifest)
    bar = Progress(len(paths), enabled=options.progress)
    try:
        with runtime if paths else _nothing():
            for batch in iter_scored(
                iter_prepared(paths, opts, workers=n_workers), runtime, batch_size=options.batch_size
            ):
                for scored in batch:
                    it = scored.item
                    if it.error is not None:
                        out.failed.append((it.path, it.error))
                        continue
                    out.cells[it.path] = [(float(p), int(c["area"])) for c, p in zip(it.cells, scored.p_all)]
                    out.modes[it.path] = it.mode
                    out.sources[it.path] = it.source
                bar.update(len(batch), failed=sum(s.failed for s in batch))
            out.describe = runtime.describe() if paths else ""
    finally:
        bar.close()
    return out


def score_labelled(
    inputs: Sequence[Union[str, os.PathLike[str]]],
    model: ModelArg,
    *,
    backend: str = "auto",
    precision: str = "auto",
    batch_size: int = 32,
    workers: Optional[int] = None,
    mode: str = "cells",
    progress: Optional[bool] = False,
) -> LabelledScores:
    """Score C-NMC-named cell images (``UID_<subject>_<image>_<cell>_<all|hem>``) in memory.

    The same path as ``leukedge score``.  Every image must carry a C-NMC
    name (else :class:`InvalidInputError` before any scoring); images that
    cannot be read are returned in ``failed`` with the reason, for the
    caller to report.
    """
    options = ScoreOptions(backend, precision, batch_size, workers, mode, progress).checked()
    files = list_image_paths(list(inputs))
    unlabelled = [p for p in files if parse_cnmc_name(p) is None]
    if unlabelled or not files:
        shown = ", ".join(str(p) for p in unlabelled[:3]) + (" …" if len(unlabelled) > 3 else "")
        raise InvalidInputError(
            f"{len(unlabelled)} of {len(files)} image(s) have no C-NMC name, so no true label: {shown}"
            if files
            else f"no image files found in: {', '.join(str(i) for i in inputs)}",
            hint="name labelled cells UID_<subject>_<image>_<cell>_<all|hem>.png, as C-NMC does",
        )
    scores = _score_images(files, model, options)
    label_for = scores.manifest.label_for
    rows: List[Dict[str, Any]] = []
    for path in map(str, files):
        cnmc = parse_cnmc_name(Path(path).name)
        assert cnmc is not None  # checked above
        for p, area in scores.cells.get(path, []):
            rows.append(
                {
                    "source": scores.sources[path],
                    "subject": cnmc.subject,
                    "true_label": cnmc.label,
                    "p_all": p,
                    "label": label_for(p),
                    "area": area,
                    "mode": scores.modes[path],
                }
            )
    return LabelledScores(rows=rows, failed=scores.failed, run=scores.run)
