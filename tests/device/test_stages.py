"""Each pipeline stage on its own, between real channels and fake neighbours (source, runtime, sinks)."""

from __future__ import annotations

import threading
from typing import Any, List, Optional

import numpy as np
import pytest

from leukedge.device.channel import CLOSED, Channel, RunControl
from leukedge.device.classify import ClassifyStage, Models
from leukedge.device.runtimes.base import Runtime
from leukedge.device.sources.base import Frame, FrameSource, RawFrame
from leukedge.device.stages import CaptureStage, FrameCounter, Job, ResultOutlet, ResultsStage, SegmentStage
from leukedge.device.stats import PipelineStats
from leukedge.errors import BundleError, HardwareUnavailableError
from leukedge.manifest import Manifest, Preprocessing
from leukedge.preprocess import preprocess
from leukedge.sinks.base import Sink, SinkSet
from leukedge.synthetic import make_smear_frame
from leukedge.types import BBox, Cell, FrameResult


class FakeSource(FrameSource):
    def __init__(self, items: List[Any], *, fail_at: Optional[int] = None) -> None:
        super().__init__("fake://")
        self.items, self.fail_at, self.reads = items, fail_at, 0

    def _open(self) -> None:
        pass

    def _read(self) -> Optional[RawFrame]:
        if self.reads == self.fail_at:
            raise HardwareUnavailableError("camera unplugged")
        if self.reads >= len(self.items):
            return None
        self.reads += 1
        return self.items[self.reads - 1], {}


class MeanRuntime(Runtime):
    """p_all = mean of each input; records batch sizes and can fail to open."""

    name = "mean-fake"

    def __init__(self, *, fail_open: bool = False, max_batch: Optional[int] = None) -> None:
        super().__init__(Manifest(), "fp32")
        self.fail_open, self.max_batch, self.batches = fail_open, max_batch, []
        self.closed = False

    def _load(self) -> None:
        if self.fail_open:
            raise BundleError("model does not match its manifest")

    def _unload(self) -> None:
        self.closed = True

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(len(batch))
        m = batch.reshape(len(batch), -1).mean(axis=1)
        return np.stack([1 - m, m], axis=1).astype(np.float32)


class ListSink(Sink):
    def __init__(self) -> None:
        self.results: List[FrameResult] = []
        self.flushed = 0

    def write(self, result: FrameResult) -> None:
        self.results.append(result)

    def flush(self) -> None:
        self.flushed += 1


def _frame(k: int, image: Optional[np.ndarray] = None) -> Frame:
    return Frame(image if image is not None else np.zeros((8, 8, 3), np.uint8), k, float(k), "fake://")


def _job(seq: int, n_cells: int, value: float = 0.25) -> Job:
    crop = np.full((128, 128, 3), 10 * seq, np.uint8)
    cells = [Cell(i, BBox(0, 0, 4, 4), 16, crop) for i in range(n_cells)]
    inputs = np.full((n_cells, 128, 128, 3), value + seq, np.float32) if n_cells else None
    return Job(seq, _frame(seq), cells, inputs, p_all=[0.0] * n_cells, cells_left=n_cells)


def _drain(ch: Channel) -> List[Any]:
    out = []
    while True:
        item = ch.get(timeout=2.0)
        if item is CLOSED:
            return out
        out.append(item)


# -- capture ----------------------------------------------------------------------------------


def test_capture_sends_every_frame_of_a_file_source_then_closes() -> None:
    control, stats = RunControl(), PipelineStats()
    out = control.channel(10)
    src = FakeSource([np.zeros((8, 8, 3), np.uint8)] * 3).open()
    stage = CaptureStage(src, out, control, stats, latest_frame=False)
    stage.run()
    assert [f.index for f in _drain(out)] == [0, 1, 2] and stage.captured == 3


def test_capture_of_a_live_source_keeps_the_newest_frame_and_counts_the_rest_as_dropped() -> None:
    control, stats = RunControl(), PipelineStats()
    out = control.channel(1)
    src = FakeSource([np.zeros((8, 8, 3), np.uint8)] * 5).open()
    CaptureStage(src, out, control, stats, latest_frame=True).run()  # nobody reads: never waits
    assert [f.index for f in _drain(out)] == [4] and stats.dropped == 4


def test_a_source_error_ends_capture_but_lets_the_frames_taken_drain() -> None:
    control = RunControl()
    out = control.channel(10)
    src = FakeSource([np.zeros((8, 8, 3), np.uint8)] * 5, fail_at=2).open()
    CaptureStage(src, out, control, PipelineStats(), latest_frame=False).run()
    assert isinstance(control.error, HardwareUnavailableError) and not control.aborted
    assert len(_drain(out)) == 2


def test_capture_stops_when_told_to() -> None:
    control = RunControl()
    out = control.channel(10)
    control.end_capture()
    CaptureStage(
        FakeSource([np.zeros((8, 8, 3), np.uint8)]).open(), out, control, PipelineStats(), latest_frame=False
    ).run()
    assert _drain(out) == []


# -- segment ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smears() -> List[np.ndarray]:
    return [make_smear_frame(k, width=640, height=480, cells=n)[0] for k, n in enumerate((2, 0, 1))]


def _segment(frames: List[Frame], *, cpu: bool = True, max_frames: Optional[int] = None):
    control = RunControl()
    frames_in, jobs = control.channel(len(frames) + 1), control.channel(len(frames) + 1)
    for f in frames:
        frames_in.put(f)
    frames_in.close()
    stage = SegmentStage(
        frames_in,
        jobs,
        control,
        PipelineStats(),
        Preprocessing(),
        counter=FrameCounter(),
        preprocess_on_cpu=cpu,
        max_frames=max_frames,
    )
    stage.run()
    return control, _drain(jobs)


def test_segment_numbers_frames_and_preprocesses_their_crops_on_the_cpu(smears) -> None:
    _, jobs = _segment([_frame(k, img) for k, img in enumerate(smears)])
    assert [j.seq for j in jobs] == [0, 1, 2] and [len(j.cells) for j in jobs] == [2, 0, 1]
    first = jobs[0]
    np.testing.assert_array_equal(first.inputs, preprocess([c.crop for c in first.cells], Preprocessing()))
    assert jobs[1].inputs is None and first.cells_left == 2 and first.p_all == [0.0, 0.0]


def test_segment_leaves_inputs_to_the_classify_stage_when_preprocessing_is_on_the_gpu(smears) -> None:
    _, jobs = _segment([_frame(0, smears[0])], cpu=False)
    assert jobs[0].inputs is None and len(jobs[0].cells) == 2


def test_segment_ends_capture_at_max_frames_and_screens_no_more(smears) -> None:
    control, jobs = _segment([_frame(k, smears[1]) for k in range(4)], max_frames=2)
    assert [j.seq for j in jobs] == [0, 1] and control.capture_stopped


# -- classify ---------------------------------------------------------------------------------


def _classify(jobs: List[Job], runtime: Runtime, *, workers: int = 1, max_batch: Optional[int] = None):
    control = RunControl()
    jobs_in = control.channel(len(jobs) + 1)
    done = control.channel(len(jobs) + 1, producers=workers)
    for j in jobs:
        jobs_in.put(j)
    jobs_in.close()
    models = Models(runtime, preprocess_kind="cpu", requested_batch=max_batch)
    others = threading.Semaphore(0)
    stages = [
        ClassifyStage(
            jobs_in, done, control, PipelineStats(), models, owner=k == 0, others_done=others, other_workers=workers - 1
        )
        for k in range(workers)
    ]
    threads = [control.spawn(f"leukedge-test-classify-{k}", s.run) for k, s in enumerate(stages)]
    out = _drain(done)
    for t in threads:
        t.join(2.0)
    return control, models, out


def test_classify_batches_cells_across_frames_and_completes_each_frame() -> None:
    rt = MeanRuntime()
    control, models, done = _classify([_job(0, 2), _job(1, 0), _job(2, 3)], rt)
    assert control.error is None and rt.batches == [5]  # the waiting frames shared one batch
    by_seq = {j.seq: j for j in done}
    assert sorted(by_seq) == [0, 1, 2]
    assert by_seq[0].p_all == pytest.approx([0.25, 0.25]) and by_seq[2].p_all == pytest.approx([2.25] * 3)
    assert models.ready.is_set() and rt.closed  # opened and closed in the stage's thread


def test_classify_respects_the_batch_limit() -> None:
    rt = MeanRuntime()
    _, _, done = _classify([_job(0, 3), _job(1, 3)], rt, max_batch=2)
    assert max(rt.batches) <= 2 and sum(rt.batches) == 6 and len(done) == 2


def test_two_classify_workers_complete_each_frame_once_and_close_the_models_after_both() -> None:
    rt = MeanRuntime()
    jobs = [_job(k, 3) for k in range(8)]
    control, _, done = _classify(jobs, rt, workers=2, max_batch=2)
    assert control.error is None and sorted(j.seq for j in done) == list(range(8))
    assert all(j.cells_left == 0 and j.p_all == pytest.approx([0.25 + j.seq] * 3) for j in done)
    assert rt.closed


def test_a_model_that_cannot_open_is_the_run_error_and_still_wakes_prepare() -> None:
    control, models, done = _classify([_job(0, 1)], MeanRuntime(fail_open=True))
    assert isinstance(control.error, BundleError) and models.ready.is_set() and done == []


# -- results ----------------------------------------------------------------------------------


def _results(jobs: List[Job], *, aborted: bool = False, deliver: bool = True, keep_early: int = 0):
    control = RunControl()
    done = control.channel(len(jobs) + 1)
    for j in jobs:
        done.put(j)
    done.close()
    if aborted:
        control.abort()
    sink = ListSink()
    outlet = ResultOutlet(control.channel(32), deliver=deliver, keep_early=keep_early)
    stage = ResultsStage(done, control, PipelineStats(), Manifest(), SinkSet([sink]), outlet)
    stage.run()
    return stage, sink, outlet


def _classified(seq: int, n: int) -> Job:
    job = _job(seq, n)
    for i in range(n):
        job.record(i, 0.9)
    return job


def test_results_restore_frame_order_label_cells_and_flush() -> None:
    stage, sink, outlet = _results([_classified(2, 1), _classified(0, 2), _classified(1, 0)])
    assert [r.index for r in sink.results] == [0, 1, 2] and sink.flushed == 1
    assert [c.label for c in sink.results[0].cells] == ["all", "all"]  # p 0.9 ≥ the manifest's threshold
    assert [r.index for r in _drain(outlet.channel)] == [0, 1, 2] and stage.finished.is_set()


def test_after_an_abort_a_gap_in_frame_order_is_not_filled() -> None:
    _, sink, _ = _results([_classified(1, 1), _classified(2, 1)], aborted=True)
    assert sink.results == []


def test_results_before_delivery_are_kept_for_a_late_iterator_newest_first_out() -> None:
    _, sink, outlet = _results([_classified(k, 1) for k in range(5)], deliver=False, keep_early=2)
    assert len(sink.results) == 5 and len(outlet.channel) == 0
    outlet.deliver()
    assert [r.index for r in _drain(outlet.channel)] == [3, 4]


def test_a_job_reports_its_last_cell_once_whichever_worker_records_it() -> None:
    job = _job(0, 3)
    finished = [job.record(i, 0.5) for i in (2, 0, 1)]
    assert finished == [False, False, True]
