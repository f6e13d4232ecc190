"""The classify stage: dynamic batches of cells through the runtime, and the models it runs.

:class:`Models` owns the CUDA context (when the CUDA LoG or TensorRT is used),
the runtime and the preprocessor that runs in the classify stage (the CUDA
LoG; with CPU preprocessing the segment workers already made the inputs).
It is opened in the first classify worker's thread, which keeps the context
current for its whole life, and closed there after every worker finished.

Batches grow under load: a worker takes one job, then whatever is already
waiting, up to the batch limit, so the cells of several frames share a batch
when the classifier is the bottleneck.  With more than one worker (ONNX
Runtime: two callers of one thread each), a frame's cells may be split
between workers; the frame is complete when its last cell is recorded.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, List, Optional, Tuple

import numpy as np

from leukedge.device.channel import CLOSED, EMPTY, Channel, RunControl
from leukedge.device.cuda_context import CudaContext
from leukedge.device.gpu_path import GpuClassifier, can_stay_on_gpu
from leukedge.device.preprocessing import CpuPreprocessor, CudaPreprocessor
from leukedge.device.runtimes.base import Runtime
from leukedge.device.stages import Job
from leukedge.device.stats import PipelineStats

DEFAULT_BATCH = 32


def gather_inputs(items: List[Tuple[Job, int]]) -> np.ndarray:
    """The model inputs of ``items`` as one batch: a frame's rows are consecutive, so the batch is
    a few slices joined (or a whole frame's array as it is)."""
    runs: List[Tuple[Job, int, int]] = []
    for job, i in items:
        if runs and runs[-1][0] is job and runs[-1][2] == i:
            runs[-1] = (job, runs[-1][1], i + 1)
        else:
            runs.append((job, i, i + 1))
    parts = [job.inputs[a:b] for job, a, b in runs]  # type: ignore[index]
    if len(parts) == 1 and len(parts[0]) == len(runs[0][0].inputs):  # type: ignore[arg-type]
        return parts[0]
    return np.concatenate(parts)


class Models:
    """The runtime, the classify stage's preprocessor and the CUDA context they share; opened in one thread."""

    def __init__(self, runtime: Runtime, *, preprocess_kind: str, requested_batch: Optional[int] = None) -> None:
        self.runtime = runtime
        self.spec = runtime.manifest.preprocessing
        self.preprocess_kind = preprocess_kind
        self.requested_batch = requested_batch
        self.batch_limit = requested_batch or DEFAULT_BATCH
        self.preprocessor: Any = None
        self.gpu_path: Optional[GpuClassifier] = None  # CUDA LoG → TensorRT without a host round trip
        self.ready = threading.Event()
        self._stack = contextlib.ExitStack()

    def open(self) -> None:
        """Open the context (kept current in this thread), the runtime and the preprocessor."""
        stack = self._stack
        try:
            ctx: Optional[CudaContext] = None
            if self.preprocess_kind == "cuda":
                ctx = CudaContext().open()
                stack.callback(ctx.close)
                stack.enter_context(ctx)  # current in this thread for its whole life
            self.runtime.open()
            stack.callback(self.runtime.close)
            self.batch_limit = self.requested_batch or self.runtime.max_batch or DEFAULT_BATCH
            if self.runtime.max_batch:
                self.batch_limit = min(self.batch_limit, self.runtime.max_batch)
            if ctx is not None:
                prep: Any = CudaPreprocessor(self.spec, max_batch=self.batch_limit, context=ctx)
            else:
                prep = CpuPreprocessor(self.spec)
            prep.open()
            stack.callback(prep.close)
            self.preprocessor = prep
            if can_stay_on_gpu(prep, self.runtime):
                self.gpu_path = GpuClassifier(prep, self.runtime)
        except BaseException:
            stack.close()
            raise

    def close(self) -> None:
        self._stack.close()


@dataclass(eq=False)
class ClassifyStage:
    """Takes jobs, classifies their cells in batches of up to ``models.batch_limit``, passes complete frames on.

    The ``owner`` worker opens ``models`` in its thread (setting
    ``models.ready`` either way: ``prepare()`` waits for it) and closes them
    once each of the ``other_workers`` has released ``others_done``.
    """

    jobs_in: Channel
    done_out: Channel
    control: RunControl
    stats: PipelineStats
    models: Models
    owner: bool = True
    others_done: Optional[threading.Semaphore] = None
    other_workers: int = 0

    def run(self) -> None:
        if not self.owner:
            try:
                self.loop()
            finally:
                if self.others_done is not None:
                    self.others_done.release()
            return
        try:
            self.models.open()
        except BaseException as exc:
            self.control.fail(exc, drain=False)  # recorded before prepare() is woken, which raises it
            self.done_out.close()
            return
        finally:
            self.models.ready.set()
        try:
            self.loop()
        finally:
            for _ in range(self.other_workers if self.others_done is not None else 0):
                self.others_done.acquire()  # type: ignore[union-attr]
            self.models.close()

    def loop(self) -> None:
        try:
            while True:
                pending = self._take_batch()
                if pending is None or self.control.aborted:
                    return
                limit = self.models.batch_limit
                while pending:
                    self.classify([pending.popleft() for _ in range(min(limit, len(pending)))])
        finally:
            self.done_out.close()

    def _take_batch(self) -> Optional[Deque[Tuple[Job, int]]]:
        """One job (waiting for it), then what is already waiting, up to a batch; None at the end."""
        pending: Deque[Tuple[Job, int]] = deque()
        job = self.jobs_in.get()
        if job is CLOSED:
            return None
        while True:
            wanted = range(len(job.cells)) if job.to_classify is None else job.to_classify  # tracking may skip some
            if not wanted:
                self.done_out.put(job)
            else:
                pending.extend((job, i) for i in wanted)
            if len(pending) >= self.models.batch_limit:
                return pending
            job = self.jobs_in.get_nowait()
            if job is EMPTY or job is CLOSED:
                return pending

    def classify(self, items: List[Tuple[Job, int]]) -> None:
        t0 = time.perf_counter()
        models = self.models
        if items[0][0].inputs is not None:  # preprocessed by the segment workers
            batch = gather_inputs(items)
        elif models.gpu_path is not None:  # preprocessed and classified on the GPU, in one go
            p = models.gpu_path.p_all([job.cells[i].crop for job, i in items])
            self.stats.add_busy("classify", time.perf_counter() - t0)
            self._record(items, p)
            return
        else:
            batch = models.preprocessor.prepare([job.cells[i].crop for job, i in items])
            self.stats.add_busy("preprocess", time.perf_counter() - t0)
        t1 = time.perf_counter()
        p = models.runtime.p_all(batch)
        self.stats.add_busy("classify", time.perf_counter() - t1)
        self._record(items, p)

    def _record(self, items: List[Tuple[Job, int]], p: np.ndarray) -> None:
        self.stats.add_batch(len(items))
        for (job, i), value in zip(items, np.asarray(p, dtype=np.float64)):
            if job.record(i, float(value)):
                self.done_out.put(job)
