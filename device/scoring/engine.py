"""The scoring engine: worker processes prepare images, the main process runs batched inference.

Images flow through a bounded window of tasks (``window`` chunks in flight),
so memory stays flat however many inputs there are, and results come back in
input order.  Inference runs in this process, where the runtime lives: a
TensorRT engine or CUDA context must not be shared with forked children, and
workers are started with ``spawn`` for that reason.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from leukedge.device.runtimes.base import Runtime
from leukedge.device.scoring.rows import image_rows
from leukedge.device.scoring.work import Prepared, PrepareOptions, init_worker, prepare_chunk, prepare_image
from leukedge.errors import LeukedgeError
from leukedge.manifest import Manifest


@dataclass
class ScoredImage:
    """One image after inference: its rows, or the reason it failed."""

    item: Prepared
    p_all: np.ndarray  # one per cell (empty when failed or no cell)

    @property
    def failed(self) -> bool:
        return self.item.error is not None


def iter_prepared(
    paths: Sequence[Union[str, Path]], opts: PrepareOptions, *, workers: int, chunk: int = 4, window: int = 0
) -> Iterator[Prepared]:
    """Prepare every path, in order; ``workers=0`` runs inline (no processes)."""
    tasks = _chunks(paths, chunk)
    if workers <= 0:
        for task in tasks:
            for pos, path in task:
                yield prepare_image(pos, path, opts)
        return
    window = window or 4 * workers
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker, initargs=(opts,))
    pending: Deque[Any] = deque()
    try:
        for task in tasks:
            pending.append((task, pool.submit(prepare_chunk, task)))
            if len(pending) >= window:
                yield from _collect(pending.popleft())
        while pending:
            yield from _collect(pending.popleft())
    finally:
        for _task, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)


def _collect(entry: Tuple[List[Tuple[int, str]], Any]) -> List[Prepared]:
    task, fut = entry
    try:
        return fut.result()  # type: ignore[no-any-return]
    except BrokenProcessPool as exc:
        first, last = task[0][1], task[-1][1]
        raise LeukedgeError(
            f"a worker process died while reading {first}" + (f" … {last}" if last != first else "") + f" ({exc})",
            hint="the machine may be out of memory: use fewer --workers; results so far are saved, rerun with --resume",
        ) from exc


def _chunks(paths: Sequence[Union[str, Path]], size: int) -> Iterator[List[Tuple[int, str]]]:
    """(position, path) tasks, made as they are submitted: nothing per input is held twice."""
    size = max(1, size)
    for i in range(0, len(paths), size):
        yield [(i + k, str(p)) for k, p in enumerate(paths[i : i + size])]


def iter_scored(prepared: Iterable[Prepared], runtime: Runtime, *, batch_size: int) -> Iterator[List[ScoredImage]]:
    """Run inference on whole images gathered until they hold ``batch_size`` cells; yield each batch's images."""
    waiting: List[Prepared] = []
    cells = 0
    for item in prepared:
        waiting.append(item)
        cells += len(item.cells) if item.error is None else 0
        if cells >= batch_size:
            yield _infer(waiting, runtime, batch_size)
            waiting, cells = [], 0
    if waiting:
        yield _infer(waiting, runtime, batch_size)


def _infer(items: List[Prepared], runtime: Runtime, batch_size: int) -> List[ScoredImage]:
    arrays = [it.batch for it in items if it.error is None and it.batch is not None]
    if arrays:
        batch = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
        # Slices of exactly batch_size: a TensorRT profile is built for that size.
        p = np.concatenate([runtime.p_all(batch[i : i + batch_size]) for i in range(0, len(batch), batch_size)])
    else:
        p = np.zeros(0, np.float32)
    out, k = [], 0
    for it in items:
        n = len(it.cells) if it.error is None else 0
        out.append(ScoredImage(it, p[k : k + n]))
        it.batch = None  # the pixels are done with; keep only the numbers
        k += n
    return out


def default_workers(n_inputs: int) -> int:
    """One worker process per core, and never more than inputs."""
    return max(1, min(os.cpu_count() or 1, n_inputs))


class LocalEngine:
    """This machine: worker processes prepare, this process classifies.

    ``score_files`` drives it, or its twin on a Ray cluster (``cluster.py``), through
    ``run``, ``manifest``, ``opened(todo, note)``, ``batches(todo, opts, batch_size)`` and ``nodes``.
    """

    def __init__(self, runtime: Runtime, run: Dict[str, str], workers: Optional[int]) -> None:
        self.runtime, self.run, self.workers = runtime, run, workers
        self.manifest = runtime.manifest
        self.nodes: Dict[str, int] = {}

    def opened(self, todo: List[str], note: Any) -> Any:
        return self.runtime if todo else nullcontext()  # a TensorRT engine is not loaded for nothing

    def batches(self, todo: List[str], opts: PrepareOptions, batch_size: int) -> Iterator[List[ScoredImage]]:
        n_workers = default_workers(len(todo)) if self.workers is None else self.workers
        return iter_scored(iter_prepared(todo, opts, workers=n_workers), self.runtime, batch_size=batch_size)


def rows_of(scored: ScoredImage, manifest: Manifest, run: Dict[str, str]) -> List[Dict[str, Any]]:
    """The result rows of a scored image (``run``: model, precision, backend)."""
    it = scored.item
    labels = [manifest.label_for(float(p)) for p in scored.p_all]
    return image_rows(it.source, it.mode, it.cells, scored.p_all, labels, run, name=it.path)
