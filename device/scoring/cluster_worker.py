"""The Ray actor that scores on a cluster node: it loads the model once, then decodes,
preprocesses and classifies chunks of images where they are read.

``ScoringWorker`` is a plain class, so this module imports without Ray;
:func:`worker_actor` makes it a Ray actor class (Rule 3: vendor wrappers inside
a factory).  The worker never raises from its constructor: what went wrong on
its node (a bundle path missing there, no TensorRT, another model at the same
path) is reported by :meth:`ScoringWorker.ready`, so the driver can name the
node and stop before any image is scored.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from leukedge.device.scoring.engine import ScoredImage, iter_scored
from leukedge.device.scoring.work import Prepared, PrepareOptions, prepare_image
from leukedge.errors import LeukedgeError

# (position in the listing, absolute path, source key as the driver computed it)
Task = Tuple[int, str, str]


@dataclass(frozen=True)
class WorkerSpec:
    """What every actor needs to load the model and prepare images: plain, picklable values."""

    model: str  # absolute bundle folder, "reference", or an absolute Keras file path
    backend: str  # resolved on the driver: onnxruntime, tensorrt or keras
    precision: str  # resolved on the driver: fp32, fp16 or int8
    identity: str  # the model's short hash on the driver; a node holding another model refuses
    opts: PrepareOptions
    batch_size: int
    threads: int = 1  # ONNX Runtime intra-op threads: the actor has its CPU(s), not the node's


@dataclass
class WorkerReport:
    node: str  # Ray node id (hex)
    host: str
    pid: int
    error: Optional[str] = None  # why this worker cannot score, in a user's words


class ScoringWorker:
    """One model-holding worker.  Create it through :func:`worker_actor`, not directly."""

    def __init__(self, spec: WorkerSpec) -> None:
        import cv2
        import ray

        cv2.setNumThreads(1)  # the actors are the parallelism; OpenCV threads on top only contend
        self.spec = spec
        self.report = WorkerReport(ray.get_runtime_context().get_node_id(), socket.gethostname(), os.getpid())
        self.runtime: Any = None
        try:
            self.runtime = _open(spec)
        except LeukedgeError as exc:
            self.report.error = exc.message + (f" ({exc.hint})" if exc.hint else "")
        except Exception as exc:  # an import or driver failure on this node: report it, do not crash
            self.report.error = f"{type(exc).__name__}: {exc}"

    def ready(self) -> WorkerReport:
        return self.report

    def score(self, tasks: Sequence[Task]) -> Tuple[str, List[ScoredImage]]:
        """Prepare and classify one chunk; a file that cannot be read comes back failed, as on one machine."""
        if self.runtime is None:  # ready() said why; the driver never sends work to such a worker
            raise LeukedgeError(self.report.error or "this worker has no model")
        items: List[Prepared] = []
        for pos, path, source in tasks:
            item = prepare_image(pos, path, self.spec.opts)
            item.source = source  # the driver's key, so resume matches whatever this node's mounts say
            items.append(item)
        scored = [s for batch in iter_scored(items, self.runtime, batch_size=self.spec.batch_size) for s in batch]
        return self.report.node, scored

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None


def _open(spec: WorkerSpec) -> Any:
    from leukedge.device.runtimes import open_runtime, resolve_model
    from leukedge.errors import BundleError

    ref = resolve_model(spec.model)
    if ref.identity != spec.identity:
        raise BundleError(
            f"{spec.model} on this node holds model {ref.identity}, but the driver's is {spec.identity}",
            hint="give every node the same bundle (a shared folder, or the same copy at the same path)",
        )
    options: Dict[str, Any] = {"threads": spec.threads} if spec.backend == "onnxruntime" else {}
    runtime = open_runtime(ref, backend=spec.backend, precision=spec.precision, **options)
    return runtime.open()


def worker_actor(*, cpus: float, gpus: float) -> Any:
    """The Ray actor class of :class:`ScoringWorker` with these resources.

    No Ray restarts (``max_restarts=0``): a worker that dies is replaced by the
    pool, and its chunk resubmitted to a live worker, a bounded number of times.
    Ray's own restart would queue the chunk on an actor that may never be
    placed again (its node gone, no spare CPUs): a hang.
    """
    import ray

    return ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_task_retries=0)(ScoringWorker)
