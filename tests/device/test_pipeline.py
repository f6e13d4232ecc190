"""The threaded pipeline: order, latest-frame drops, lossless files, dynamic batching, stats, shutdown, faults."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, List, Optional

import numpy as np
import pytest

from leukedge.device.pipeline import Pipeline
from leukedge.device.runtimes import open_runtime
from leukedge.device.runtimes.base import Runtime
from leukedge.device.sources import FrameSource, make_source
from leukedge.device.sources.base import RawFrame
from leukedge.errors import BundleError, HardwareUnavailableError, InvalidImageError, InvalidInputError
from leukedge.manifest import Manifest
from leukedge.sinks import JsonlSink, SinkSet
from leukedge.synthetic import make_smear_frame
from tests.device.device_helpers import SMALL_SYNTHETIC, ProjectionRuntime


class ListSource(FrameSource):
    """Frames from a list (any objects, to feed bad ones), optionally live and paced, optionally endless."""

    def __init__(self, frames: List[Any], *, live: bool = False, fps: float = 0.0, endless: bool = False) -> None:
        super().__init__("test://list")
        self.items, self.live, self.fps, self.endless = frames, live, fps, endless
        self.read_times: List[float] = []

    def _open(self) -> None:
        self._t0 = time.perf_counter()

    def _read(self) -> Optional[RawFrame]:
        i = len(self.read_times)
        if i >= len(self.items) and not self.endless:
            return None
        if self.fps:
            self.wait(self._t0 + i / self.fps - time.perf_counter())
        self.read_times.append(time.perf_counter())
        return self.items[i % len(self.items)], {}


class SlowRuntime(Runtime):
    """Classifies by mean brightness after sleeping ``per_batch`` seconds; records batch sizes."""

    name = "slow-fake"

    def __init__(self, per_batch: float = 0.0, max_batch: Optional[int] = None) -> None:
        super().__init__(Manifest(), "fp32")
        self.per_batch, self.max_batch, self.batches = per_batch, max_batch, []

    def _load(self) -> None:
        pass

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(len(batch))
        time.sleep(self.per_batch)
        m = batch.reshape(len(batch), -1).mean(axis=1)
        return np.stack([1 - m, m], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def smear_frames() -> List[np.ndarray]:
    """Four 800×600 synthetic smears with 1, 2, 3 and 0 white cells."""
    return [make_smear_frame(k, width=800, height=600, cells=n)[0] for k, n in enumerate((1, 2, 3, 0))]


def _run(pipeline: Pipeline) -> List[Any]:
    pipeline.deliver_results()
    pipeline.start()
    out = list(pipeline.results())
    pipeline.close()
    return out


def test_synthetic_frames_through_onnxruntime_to_jsonl(bundle, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    runtime = open_runtime(bundle, backend="onnxruntime", precision="fp32")
    sinks = SinkSet([JsonlSink(out, bundle.short_hash)])
    results = _run(Pipeline(make_source(SMALL_SYNTHETIC + "&frames=3"), runtime, preprocess="cpu", sinks=sinks))
    assert [r.index for r in results] == [0, 1, 2]
    for r in results:
        assert len(r.cells) == 3 and r.width == 800 and r.height == 600
        assert all(0.0 <= c.p_all <= 1.0 and c.label in ("all", "hem") for c in r.cells)
        assert r.t_capture <= r.t_result and r.meta["drawn"] == 3
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 9 and {x["model"] for x in lines} == {bundle.short_hash}
    assert lines[0]["p_all"] == pytest.approx(results[0].cells[0].p_all, abs=1e-6)


def test_results_keep_frame_order_with_several_workers_and_empty_frames(smear_frames, tmp_path) -> None:
    frames = smear_frames * 3  # 12 frames, every fourth without cells
    out = tmp_path / "cells.jsonl"
    pipe = Pipeline(
        ListSource(frames), SlowRuntime(), preprocess="cpu", workers=3, sinks=SinkSet([JsonlSink(out, "m")])
    )
    results = _run(pipe)
    assert [r.index for r in results] == list(range(12))
    assert [len(r.cells) for r in results] == [1, 2, 3, 0] * 3
    records = [json.loads(line) for line in out.read_text().splitlines()]
    empty = [x for x in records if x["frame"] == 3]
    assert empty == [{**empty[0], "cell": None, "bbox": None, "p_all": None, "label": None}]  # frame-level line
    assert len(records) == 6 * 3 + 3


def test_live_source_keeps_the_newest_frame_and_capture_never_waits(smear_frames) -> None:
    src = ListSource(smear_frames[:3] * 20, live=True, fps=100.0)  # 60 frames in 0.6 s
    pipe = Pipeline(src, SlowRuntime(per_batch=0.1), preprocess="cpu", workers=1)
    results = _run(pipe)
    stats = pipe.stats()
    captured = len(src.read_times)
    assert captured == 60
    assert stats.dropped > 0 and stats.frames + stats.dropped == captured  # every frame accounted for
    assert len(results) == stats.frames
    span = src.read_times[-1] - src.read_times[0]
    assert span < 0.59 + 0.3, f"capture was held up: 60 frames took {span:.2f} s at 100 fps"
    assert [r.index for r in results] == sorted(r.index for r in results)


def test_file_sources_lose_no_frame_even_when_screening_is_slow(smear_frames) -> None:
    src = ListSource(smear_frames * 2)
    pipe = Pipeline(src, SlowRuntime(per_batch=0.05), preprocess="cpu")
    results = _run(pipe)
    assert len(results) == 8 and pipe.stats().dropped == 0


def test_cells_of_several_frames_share_a_batch_when_the_classifier_is_the_bottleneck(smear_frames) -> None:
    rt = SlowRuntime(per_batch=0.15)
    pipe = Pipeline(ListSource([smear_frames[2]] * 8), rt, preprocess="cpu", workers=2)  # 3 cells per frame
    _run(pipe)
    assert sum(rt.batches) == 24
    assert max(rt.batches) > 3, f"batches never spanned frames: {rt.batches}"
    assert pipe.stats().mean_batch > 3


@pytest.mark.parametrize("max_batch", [None, 2])
def test_each_cell_is_classified_on_its_own_preprocessed_crop(smear_frames, max_batch) -> None:
    """Segment workers preprocess their frame's crops; batches join and split frames (a slow
    classifier, two workers, a limit of 2 that cuts a 3-cell frame) and still pair every cell
    with its own input: the fake's p_all is the mean of the input it was given."""
    from leukedge.preprocess import preprocess
    from leukedge.segment import segment

    rt = SlowRuntime(per_batch=0.05, max_batch=max_batch)
    frames = [smear_frames[2], smear_frames[1], smear_frames[0]] * 2
    results = _run(Pipeline(ListSource(frames), rt, preprocess="cpu", workers=2))
    assert max(rt.batches) > 3 if max_batch is None else max(rt.batches) <= 2
    for frame, result in zip(frames, results):
        want = [float(preprocess([c.crop], rt.manifest.preprocessing).mean()) for c in segment(frame)]
        assert [c.p_all for c in result.cells] == pytest.approx(want, abs=1e-6)


def test_batches_respect_the_runtime_limit(smear_frames) -> None:
    rt = SlowRuntime(per_batch=0.05, max_batch=2)
    pipe = Pipeline(ListSource([smear_frames[2]] * 4), rt, preprocess="cpu")
    _run(pipe)
    assert max(rt.batches) <= 2 and sum(rt.batches) == 12


def test_stats_report_rates_latency_percentiles_and_stage_shares(smear_frames) -> None:
    pipe = Pipeline(ListSource(smear_frames * 2), SlowRuntime(per_batch=0.01), preprocess="cpu")
    _run(pipe)
    s = pipe.stats()
    assert s.frames == 8 and s.cells == 12 and s.mean_fps > 0 and s.mean_cells_per_s > 0
    assert s.latency_p50_ms is not None and 0 < s.latency_p50_ms <= s.latency_p99_ms
    assert set(s.stage_share) == {"capture", "segment", "preprocess", "classify", "output"}
    assert sum(s.stage_share.values()) == pytest.approx(1.0, abs=0.01)
    assert s.stage_ms["segment"] > 0 and s.stage_ms["classify"] > 0
    assert json.loads(json.dumps(s.to_dict()))["frames"] == 8


def test_max_frames_stops_an_endless_source(smear_frames) -> None:
    results = _run(Pipeline(ListSource(smear_frames, endless=True), SlowRuntime(), preprocess="cpu", max_frames=5))
    assert [r.index for r in results] == [0, 1, 2, 3, 4]


def test_duration_stops_a_live_source() -> None:
    src = make_source("synthetic://?width=320&height=320&cells=1&pool=1&fps=40")
    t0 = time.perf_counter()
    results = _run(Pipeline(src, SlowRuntime(), preprocess="cpu", duration=0.5))
    assert 0.4 < time.perf_counter() - t0 < 5.0 and results


def test_stop_with_drain_writes_every_frame_in_flight(smear_frames, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    src = ListSource(smear_frames[:3], live=True, fps=30.0, endless=True)
    pipe = Pipeline(src, SlowRuntime(per_batch=0.05), preprocess="cpu", sinks=SinkSet([JsonlSink(out, "m")]))
    pipe.start()
    time.sleep(0.6)
    pipe.stop(drain=True)  # what Ctrl-C / SIGTERM do in `leukedge screen`
    pipe.close()
    s = pipe.stats()
    assert s.frames > 0 and s.frames + s.dropped == len(src.read_times)
    written = {json.loads(line)["frame"] for line in out.read_text().splitlines()}
    assert len(written) == s.frames  # flushed: every screened frame is in the file


def test_a_frame_of_the_wrong_dtype_stops_the_run_with_a_clear_error(smear_frames) -> None:
    bad = smear_frames[0].astype(np.float32)
    pipe = Pipeline(
        ListSource([smear_frames[0], smear_frames[1], bad, smear_frames[2]]), SlowRuntime(), preprocess="cpu"
    )
    pipe.deliver_results()
    pipe.start()
    got = []
    with pytest.raises(InvalidImageError, match=r"frame 2: expected dtype uint8 \(or uint16\), got float32"):
        for r in pipe.results():
            got.append(r.index)
    assert got == [0, 1]  # frames before the bad one were screened and delivered
    pipe.close()  # the error is raised once


@pytest.mark.parametrize(
    ("frame", "match"),
    [(np.zeros((600, 800), np.uint8), r"shape \(600, 800\)"), (np.zeros((4, 4, 3), np.uint8), "too small")],
)
def test_a_frame_of_the_wrong_shape_or_size_is_named(frame, match) -> None:
    pipe = Pipeline(ListSource([frame]), SlowRuntime(), preprocess="cpu")
    pipe.start()
    with pytest.raises(InvalidImageError, match=match):
        pipe.run()


def test_a_source_that_yields_nothing_is_an_error() -> None:
    pipe = Pipeline(ListSource([]), SlowRuntime(), preprocess="cpu")
    pipe.start()
    with pytest.raises(InvalidInputError, match="delivered no frame"):
        pipe.run()


def test_a_live_source_that_never_delivers_trips_the_watchdog() -> None:
    class Silent(ListSource):
        def _read(self) -> Optional[RawFrame]:
            self.wait(10.0)
            return None

    src = Silent([], live=True)
    pipe = Pipeline(src, SlowRuntime(), preprocess="cpu", first_frame_timeout=0.3)
    pipe.start()
    t0 = time.perf_counter()
    with pytest.raises(HardwareUnavailableError, match="no frame in"):
        pipe.run()
    assert time.perf_counter() - t0 < 5


def _new_leukedge_threads(before: set) -> list:
    """leukedge threads started since ``before`` and still alive (other tests' daemon threads aside)."""
    return [t for t in threading.enumerate() if t not in before and t.is_alive() and t.name.startswith("leukedge-")]


def test_a_bundle_whose_manifest_does_not_match_its_model_fails_at_start(mismatched_bundle) -> None:
    runtime = open_runtime(mismatched_bundle, backend="onnxruntime", precision="fp32")
    src = make_source(SMALL_SYNTHETIC + "&frames=1")
    pipe = Pipeline(src, runtime, preprocess="cpu")
    before = set(threading.enumerate())
    with pytest.raises(BundleError, match="does not match its manifest"):
        pipe.start()
    assert not _new_leukedge_threads(before)


def test_forced_cuda_preprocessing_without_a_device_fails_before_anything_runs(monkeypatch, smear_frames) -> None:
    monkeypatch.setattr("leukedge.device.preprocessing.cuda_problem", lambda device=0: "pycuda is not installed")
    with pytest.raises(HardwareUnavailableError, match="--preprocess cuda"):
        Pipeline(ListSource(smear_frames), SlowRuntime(), preprocess="cuda")


@pytest.mark.gpu
def test_cuda_preprocessing_gives_the_cpu_results() -> None:
    runs = {}
    for mode in ("cpu", "cuda"):
        pipe = Pipeline(make_source(SMALL_SYNTHETIC + "&frames=4"), ProjectionRuntime(), preprocess=mode)
        assert pipe.preprocess_kind == mode
        runs[mode] = _run(pipe)
        print(f"\npipeline with --preprocess {mode}: ms per frame by stage {pipe.stats().stage_ms}")
    cpu = [c.p_all for r in runs["cpu"] for c in r.cells]
    gpu = [c.p_all for r in runs["cuda"] for c in r.cells]
    assert len(cpu) == len(gpu) == 12
    np.testing.assert_allclose(gpu, cpu, atol=1e-5)


def test_a_sink_that_cannot_open_releases_the_models_and_the_source(smear_frames) -> None:
    from leukedge.sinks.base import Sink

    class Unopenable(Sink):
        name = "broken"

        def open(self) -> None:
            raise InvalidInputError("port 8080 is in use")

        def write(self, result) -> None:
            pass

    src = ListSource(smear_frames)
    pipe = Pipeline(src, SlowRuntime(), preprocess="cpu", sinks=SinkSet([Unopenable()]))
    before = set(threading.enumerate())
    with pytest.raises(InvalidInputError, match="port 8080"):
        pipe.start()
    assert not src._opened
    assert not _new_leukedge_threads(before)
