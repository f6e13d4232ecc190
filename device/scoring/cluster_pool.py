"""An ordered pool of Ray scoring actors: chunks go to the least busy live worker, results
come back in input order, and a worker that dies has its chunk retried elsewhere.

Why not ``ray.util.ActorPool`` or Ray Data: both keep sending work to, or wait
on, an actor that died with its node; here a dead worker leaves the pool at
once, its chunk goes to a live one (at most ``retries`` more times), and a
replacement is started when the cluster has room for it.  Only a bounded
window of chunks is in flight or waiting for an earlier one, so memory stays
flat however many inputs there are.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Iterator, List, Sequence

import numpy as np

from leukedge.device.scoring.cluster_worker import Task
from leukedge.device.scoring.engine import ScoredImage
from leukedge.device.scoring.work import Prepared
from leukedge.errors import ClusterError


@dataclass
class _Chunk:
    seq: int
    tasks: Sequence[Task]
    tries: int = 0
    causes: List[str] = field(default_factory=list)


POLL_S = 5.0  # how often a quiet pool checks on its workers' nodes


class OrderedPool:
    """Runs chunks on ``workers`` (ready Ray actor handles); ``spawn()`` starts a replacement actor.

    ``nodes`` counts the images each Ray node scored.
    """

    def __init__(
        self,
        workers: List[Any],
        spawn: Callable[[], Any],
        *,
        depth: int = 2,
        retries: int = 2,
        start_timeout_s: float = 120.0,
        stall_timeout_s: float = 900.0,
    ) -> None:
        import ray

        self.ray = ray
        self.live: Dict[Any, int] = {w: 0 for w in workers}  # worker -> chunks in flight on it
        self.spawn = spawn
        self.depth = depth
        self.retries = retries
        self.replacements_left = retries * len(workers)
        self.start_timeout_s = start_timeout_s
        self.starting: Dict[Any, Any] = {}  # ready() ref -> new worker
        self.inflight: Dict[Any, tuple] = {}  # score() ref -> (chunk, worker)
        self.nodes: Counter = Counter()
        self.node_of: Dict[Any, str] = {}  # worker -> its Ray node id, from ready()
        self.stall_timeout_s = stall_timeout_s
        self._last_result = time.monotonic()

    def run(self, chunks: Iterator[Sequence[Task]]) -> Iterator[List[ScoredImage]]:
        """Each chunk's scored images, in the order the chunks came."""
        source = iter(chunks)
        again: Deque[_Chunk] = deque()  # chunks of dead workers, resubmitted first
        finished: Dict[int, List[ScoredImage]] = {}
        next_seq = emit_seq = 0
        exhausted = False
        window = 2 * self.depth * max(1, len(self.live))
        while True:
            while self.live and self._room():
                if again:  # before the window check: the chunk that holds up the output may be among them
                    self._submit(again.popleft())
                    continue
                if exhausted or next_seq - emit_seq >= window:
                    break
                tasks = next(source, None)
                if tasks is None:
                    exhausted = True
                    break
                self._submit(_Chunk(next_seq, tasks))
                next_seq += 1
            while emit_seq in finished:
                yield finished.pop(emit_seq)
                emit_seq += 1
            if exhausted and not again and not self.inflight:
                return
            self._wait(again, finished)

    def _room(self) -> bool:
        return min(self.live.values()) < self.depth

    def _submit(self, chunk: _Chunk) -> None:
        worker = min(self.live, key=self.live.__getitem__)
        self.live[worker] += 1
        self.inflight[worker.score.remote(chunk.tasks)] = (chunk, worker)

    def _wait(self, again: Deque[_Chunk], finished: Dict[int, List[ScoredImage]]) -> None:
        if not self.live and not self.starting:
            raise ClusterError(
                "every scoring worker on the cluster died, and no replacement could be started",
                hint="check the nodes (ray status); results so far are saved: rerun with --resume",
            )
        refs = list(self.inflight) + list(self.starting)
        # Never wait unbounded: every few seconds look for workers whose node died without Ray
        # failing their tasks yet, and give up when nothing at all has come back for a long time.
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=POLL_S)
        if not ready:
            self._check(again, finished)
            return
        self._last_result = time.monotonic()
        ref = ready[0]
        if ref in self.starting:
            self._started(ref)
            return
        chunk, worker = self.inflight.pop(ref)
        try:
            node, scored = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as exc:  # the worker (or its node) died
            self._retry(chunk, worker, _first_line(exc), again, finished)
            return
        except self.ray.exceptions.RayError as exc:  # our code failed on this chunk: record, go on
            self._done_on(worker)
            finished[chunk.seq] = _failed(chunk, f"the cluster could not score it ({_first_line(exc)})")
            return
        self._done_on(worker)
        self.nodes[node] += len(scored)
        finished[chunk.seq] = scored

    def _done_on(self, worker: Any) -> None:
        if worker in self.live:
            self.live[worker] -= 1

    def _retry(self, chunk: _Chunk, worker: Any, cause: str, again: Deque[_Chunk], finished: Dict) -> None:
        self._lost(worker)
        chunk.causes.append(cause)
        chunk.tries += 1
        if chunk.tries <= self.retries:
            again.append(chunk)
        else:
            finished[chunk.seq] = _failed(chunk, f"its worker died {chunk.tries} times ({cause})")

    def _check(self, again: Deque[_Chunk], finished: Dict[int, List[ScoredImage]]) -> None:
        """Nothing came back for POLL_S: retry chunks on dead nodes; fail if stalled or no worker can start."""
        idle = time.monotonic() - self._last_result
        if not self.live and idle > self.start_timeout_s:
            raise ClusterError(
                f"no live scoring worker, and none could be started within {self.start_timeout_s:.0f} s",
                hint="the cluster has no free CPU (or GPU) left; results so far are saved: rerun with --resume",
            )
        if idle > self.stall_timeout_s:
            raise ClusterError(
                f"the cluster returned nothing for {idle:.0f} s",
                hint="check the nodes (ray status); results so far are saved: rerun with --resume",
            )
        alive = {n["NodeID"] for n in self.ray.nodes() if n.get("Alive")}
        for ref, (chunk, worker) in list(self.inflight.items()):
            if self.node_of.get(worker, "") not in alive:
                del self.inflight[ref]
                self._retry(chunk, worker, "its node is gone", again, finished)

    def _lost(self, worker: Any) -> None:
        if worker in self.live:
            del self.live[worker]
            _kill(self.ray, worker)
            if self.replacements_left > 0:
                self.replacements_left -= 1
                new = self.spawn()
                self.starting[new.ready.remote()] = new

    def _started(self, ref: Any) -> None:
        new = self.starting.pop(ref)
        try:
            report = self.ray.get(ref)
        except self.ray.exceptions.RayError:
            return  # it died starting; the pool goes on with the others
        if report.error is None:
            self.live[new] = 0
            self.node_of[new] = report.node

    def close(self) -> None:
        for worker in list(self.live) + list(self.starting.values()):
            _kill(self.ray, worker)
        self.live.clear()
        self.starting.clear()
        self.inflight.clear()


def _kill(ray: Any, worker: Any) -> None:
    with contextlib.suppress(Exception):  # already gone with its node
        ray.kill(worker, no_restart=True)


def _failed(chunk: _Chunk, why: str) -> List[ScoredImage]:
    empty = np.zeros(0, np.float32)
    return [
        ScoredImage(Prepared(pos, path, source, error=f"{path}: {why}"), empty) for pos, path, source in chunk.tasks
    ]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def wait_ready(workers: List[Any], timeout_s: float) -> List[Any]:
    """The workers' ready() reports, or ClusterError naming what is wrong; never waits past ``timeout_s``."""
    import ray

    refs = [w.ready.remote() for w in workers]
    t0 = time.monotonic()
    done, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
    if pending:
        raise ClusterError(
            f"only {len(done)} of {len(refs)} scoring worker(s) started within {time.monotonic() - t0:.0f} s: "
            "the cluster has too few free CPUs or GPUs for them",
            hint="ask for fewer --workers (or --gpus-per-worker), or add nodes; `ray status` shows what is free",
        )
    try:
        return ray.get(refs)  # type: ignore[no-any-return]
    except ray.exceptions.RayError as exc:
        raise ClusterError(
            f"a scoring worker could not start on the cluster ({_first_line(exc)})",
            hint="every node needs leukedge installed, with the same Python and Ray as this machine",
        ) from None


def chunked(tasks: Iterator[Task], size: int) -> Iterator[List[Task]]:
    chunk: List[Task] = []
    for t in tasks:
        chunk.append(t)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
