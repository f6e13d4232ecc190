"""Scoring on a Ray cluster: the same results, stores and resume as on one machine.

``score_files(..., cluster="HOST:PORT" | "local" | ClusterOptions(...))``
swaps the engine that turns paths into scored images; everything else (the
listing, the results stores, resume, the errors file, progress) is the code
a single machine runs.  The driver (the machine running ``leukedge score``)
sends chunks of absolute paths to a pool of Ray actors; each actor loads the
model once and decodes, preprocesses and classifies where the files are
read; scored images come back in input order and the driver writes them.

Every node must reach the input files and the bundle at the same absolute
paths as the driver (a shared folder), and run the same leukedge, Ray and
Python.  The driver resolves ``--backend``/``--precision`` ``auto`` once, so
every row of a results file names one backend and precision; a node that
cannot run them stops the run before any image is scored.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

from leukedge.device.runtimes import ModelRef, choose_backend, choose_precision, resolve_model
from leukedge.device.scoring.cluster_connect import ClusterInfo, connect, disconnect
from leukedge.device.scoring.engine import ScoredImage
from leukedge.device.scoring.work import PrepareOptions, source_key
from leukedge.errors import ClusterError, InvalidInputError
from leukedge.extras import require


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how to score on Ray.  ``address``: HOST[:PORT] of a head node, "auto", or "local"."""

    address: str
    workers: Optional[int] = None  # scoring actors; None: as many as the cluster's CPUs (or GPUs) allow
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    connect_timeout_s: float = 30.0
    start_timeout_s: float = 120.0  # for the workers to load the model (a TensorRT build takes a while)
    retries: int = 2  # times a chunk whose worker died is tried again on another worker
    chunk: int = 16  # images per task: large enough that Ray's per-task cost is small, small enough to spread

    @classmethod
    def of(cls, value: Union[str, ClusterOptions], workers: Optional[int]) -> ClusterOptions:
        if isinstance(value, ClusterOptions):
            return value
        return cls(address=str(value), workers=workers)


def _model_everywhere(model: Any, ref: ModelRef) -> str:
    """How a worker node finds the model: "reference" (each node's packaged copy) or an absolute path."""
    if (isinstance(model, str) and model == "reference") or model is None:
        return "reference"
    if ref.bundle is not None:
        return str(Path(ref.bundle.root).resolve())
    assert ref.keras_path is not None
    return str(Path(ref.keras_path).resolve())


class ClusterEngine:
    """Turns paths into scored images on Ray; the single-machine engine's twin (see ``run.py``)."""

    def __init__(self, options: ClusterOptions, model: Any, backend: str, precision: str) -> None:
        require("ray")  # before anything else: without the extra, say which to install
        if options.workers is not None and options.workers < 1:
            raise InvalidInputError(
                f"--workers is {options.workers}, but scoring on a cluster needs at least 1 worker",
                hint="leave --workers out to use every CPU of the cluster",
            )
        self.options = options
        ref = model if isinstance(model, ModelRef) else resolve_model(model)
        name = choose_backend(ref, backend)
        self.run: Dict[str, str] = {
            "model": ref.identity,
            "precision": choose_precision(ref, name, precision),
            "backend": name,
        }
        self.manifest = ref.manifest
        self.model_path = _model_everywhere(model, ref)
        self.info: Optional[ClusterInfo] = None
        self.workers = 0
        self.nodes: Dict[str, int] = {}  # images scored per Ray node id

    @contextmanager
    def opened(self, todo: List[str], note: Any) -> Iterator[None]:
        """Connected to the cluster while scoring ``todo`` (nothing to connect for when it is empty)."""
        if not todo:
            yield
            return
        local_cpus = self.options.workers if self.options.address == "local" else None
        self.info = connect(self.options.address, timeout_s=self.options.connect_timeout_s, local_cpus=local_cpus)
        try:
            self.workers = self._plan_workers(self.info)
            note(self.info.describe(self.workers))
            yield
        finally:
            disconnect(self.info)

    def _plan_workers(self, info: ClusterInfo) -> int:
        """How many actors to start; a request the cluster cannot place is refused now, not left waiting."""
        o = self.options
        if o.gpus_per_worker > 0 and info.gpus == 0:
            raise ClusterError(
                f"--gpus-per-worker {o.gpus_per_worker:g} asks for GPUs, but no node of the cluster has one "
                f"({len(info.nodes)} node(s), {info.cpus:g} CPU(s))",
                hint="leave out --gpus-per-worker to score on CPUs, or add a node with a GPU",
            )
        fit = int(info.cpus // o.cpus_per_worker) if o.cpus_per_worker else 1 << 30
        if o.gpus_per_worker > 0:
            fit = min(fit, int(info.gpus // o.gpus_per_worker))
        wanted = o.workers if o.workers is not None else fit
        if wanted > fit or fit < 1:
            raise ClusterError(
                f"--workers {wanted} needs {wanted * o.cpus_per_worker:g} CPU(s)"
                + (f" and {wanted * o.gpus_per_worker:g} GPU(s)" if o.gpus_per_worker else "")
                + f", but the cluster has {info.cpus:g} CPU(s) and {info.gpus:g} GPU(s)",
                hint=f"use --workers {max(fit, 1)} or fewer, or add nodes",
            )
        return wanted

    def batches(self, todo: List[str], opts: PrepareOptions, batch_size: int) -> Iterator[List[ScoredImage]]:
        """Scored images of ``todo`` in input order, one list per chunk, as the cluster returns them."""
        from leukedge.device.scoring.cluster_pool import OrderedPool, chunked, wait_ready
        from leukedge.device.scoring.cluster_worker import WorkerSpec, worker_actor

        if not todo:  # a finished run resumed: nothing to start
            return
        o = self.options
        spec = WorkerSpec(
            model=self.model_path,
            backend=self.run["backend"],
            precision=self.run["precision"],
            identity=self.run["model"],
            opts=opts,
            batch_size=batch_size,
            threads=max(1, int(o.cpus_per_worker)),
        )
        actor = worker_actor(cpus=o.cpus_per_worker, gpus=o.gpus_per_worker)

        def spawn() -> Any:
            return actor.options(scheduling_strategy="SPREAD").remote(spec)

        workers = [spawn() for _ in range(self.workers)]
        pool = OrderedPool(workers, spawn, retries=o.retries, start_timeout_s=o.start_timeout_s)
        try:
            reports = wait_ready(workers, o.start_timeout_s)
            _check_reports(reports)
            pool.node_of = {w: r.node for w, r in zip(workers, reports)}
            tasks = ((i, os.path.abspath(p), source_key(Path(p))) for i, p in enumerate(todo))
            yield from pool.run(chunked(tasks, o.chunk))
        finally:
            self.nodes = dict(pool.nodes)
            pool.close()


def _check_reports(reports: List[Any]) -> None:
    bad = [r for r in reports if r.error]
    if bad:
        r = bad[0]
        raise ClusterError(
            f"{len(bad)} of {len(reports)} scoring worker(s) cannot load the model; on node {r.host} "
            f"({r.node[:12]}): {r.error}",
            hint="every node needs the bundle at the same absolute path as this machine (a shared folder), "
            "and the backend's libraries",
        )
