"""``leukedge.Screener``: iterate, callbacks, push mode from threads, typed results, faults."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import leukedge
from leukedge.errors import BundleError, HardwareUnavailableError, InvalidImageError, InvalidInputError
from leukedge.synthetic import make_smear_frame
from leukedge.types import Cell, FrameResult
from tests.device.device_helpers import SMALL_SYNTHETIC


def test_screener_is_exported_lazily_from_leukedge() -> None:
    from leukedge.device.screener import Screener

    assert leukedge.Screener is Screener


def test_iterate_a_synthetic_source(bundle, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    seen = []
    with leukedge.Screener(bundle, source=SMALL_SYNTHETIC + "&frames=3", preprocess="cpu", out=out) as s:
        s.on_cell(lambda cell, frame: seen.append((frame.index, cell.index)))
        results = list(s)
        info = s.describe()
    assert [r.index for r in results] == [0, 1, 2]
    r = results[0]
    assert isinstance(r, FrameResult) and all(isinstance(c, Cell) for c in r.cells)
    d = r.to_dict()
    assert json.loads(json.dumps(d))["cells"][0]["label"] in ("all", "hem")
    assert set(d) >= {"frame", "source", "t_capture", "t_result", "cells", "width", "height", "meta"}
    assert r.cells[0].crop is not None and r.cells[0].crop.shape == (128, 128, 3)
    assert seen == [(f, c) for f in range(3) for c in range(3)]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len([r for r in lines if r.get("record") != "final"]) == 9
    assert len([r for r in lines if r.get("record") == "final"]) == 3  # frame 2 shows frame 0's 3 cells again
    assert info["runtime"].startswith("onnxruntime fp32") and info["preprocess"].startswith("cpu")


def test_push_mode_from_several_threads(bundle) -> None:
    frame, drawn = make_smear_frame(3, width=640, height=480, cells=2)
    got: list = []
    with leukedge.Screener(bundle, source=None, preprocess="cpu", block=True) as s:
        s.on_frame(got.append)

        def producer(k: int) -> None:
            for _ in range(3):
                s.submit(frame, meta={"producer": k})

        threads = [threading.Thread(target=producer, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        s.end()
        stats = s.run()
    assert stats.frames == 6 and stats.dropped == 0
    assert sorted(r.index for r in got) == list(range(6)) and [r.index for r in got] == sorted(r.index for r in got)
    assert {r.meta["producer"] for r in got} == {0, 1}
    assert all(len(r.cells) == len(drawn) for r in got)


def _wait_for(predicate, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_results_finished_before_iteration_began_are_still_iterated(bundle) -> None:
    """Frames submitted (and screened) before the iterator starts: it still yields them, in order."""
    frame, _ = make_smear_frame(4, width=640, height=480, cells=1)
    with leukedge.Screener(bundle, preprocess="cpu", block=True) as s:
        s.submit(frame)
        s.submit(frame)
        _wait_for(lambda: s.stats().frames == 2)  # both finished before anyone iterates
        s.submit(frame)
        s.end()
        results = list(s)
    assert [r.index for r in results] == [0, 1, 2]


def test_an_iterator_that_starts_late_gets_the_newest_early_results_and_a_warning(bundle, monkeypatch, caplog) -> None:
    import leukedge.device.screener as screener_module

    monkeypatch.setattr(screener_module, "EARLY_RESULTS", 2)
    frame, _ = make_smear_frame(4, width=640, height=480, cells=1)
    with leukedge.Screener(bundle, preprocess="cpu", block=True) as s:
        got_by_callback = []
        s.on_frame(lambda r: got_by_callback.append(r.index))
        for _ in range(4):
            s.submit(frame)
        _wait_for(lambda: s.stats().frames == 4)
        s.end()
        with caplog.at_level("WARNING", logger="leukedge.pipeline"):
            results = list(s)
    assert [r.index for r in results] == [2, 3] and got_by_callback == [0, 1, 2, 3]
    assert "the oldest 2 reached only the sinks and callbacks" in caplog.text


def test_iterating_while_another_thread_submits(bundle) -> None:
    frame, _ = make_smear_frame(4, width=640, height=480, cells=1)
    with leukedge.Screener(bundle, preprocess="cpu", block=True) as s:

        def producer() -> None:
            for _ in range(4):
                s.submit(frame, t_capture=1.0e9)
            s.end()

        t = threading.Thread(target=producer)
        t.start()
        results = list(s)
        t.join()
    assert [r.index for r in results] == [0, 1, 2, 3] and results[0].t_capture == 1.0e9


def test_submit_checks_the_frame_at_once(bundle) -> None:
    with leukedge.Screener(bundle, preprocess="cpu") as s:
        with pytest.raises(InvalidImageError, match="float64"):
            s.submit(np.zeros((480, 640, 3)))
        with pytest.raises(InvalidImageError, match=r"shape \(480, 640\)"):
            s.submit(np.zeros((480, 640), np.uint8))


def test_submit_needs_a_push_source(bundle) -> None:
    with leukedge.Screener(bundle, source=SMALL_SYNTHETIC + "&frames=1", preprocess="cpu") as s:
        with pytest.raises(InvalidInputError, match="push source"):
            s.submit(np.zeros((64, 64, 3), np.uint8))


def test_a_callback_that_raises_does_not_stop_screening(bundle) -> None:
    def broken(cell, frame) -> None:
        raise RuntimeError("app bug")

    seen: list = []
    with leukedge.Screener(bundle, source=SMALL_SYNTHETIC + "&frames=2", preprocess="cpu") as s:
        s.on_cell(broken)
        s.on_cell(lambda cell, frame: seen.append(cell.index))
        stats = s.run()
    assert stats.frames == 2 and s.callback_errors == 6 and len(seen) == 6  # the other callback got every cell


def test_opening_a_screener_on_a_mismatched_bundle_fails_in_the_with_statement(mismatched_bundle) -> None:
    s = leukedge.Screener(mismatched_bundle, source=SMALL_SYNTHETIC, preprocess="cpu")
    with pytest.raises(BundleError, match="does not match its manifest"), s:
        pass


def test_forced_cuda_without_a_device_is_refused_when_constructed(bundle, monkeypatch) -> None:
    monkeypatch.setattr("leukedge.device.preprocessing.cuda_problem", lambda device=0: "pycuda is not installed")
    with pytest.raises(HardwareUnavailableError, match="--preprocess cuda"):
        leukedge.Screener(bundle, source=SMALL_SYNTHETIC, preprocess="cuda")


def test_a_screener_opened_but_never_run_closes_quietly(bundle) -> None:
    with leukedge.Screener(bundle, source=SMALL_SYNTHETIC, preprocess="cpu") as s:
        assert s.model_id == bundle.short_hash
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("leukedge-"))


def test_sinks_that_want_pixels_get_each_frame(bundle) -> None:
    from leukedge.sinks.base import Sink, SinkSet

    if not hasattr(SinkSet, "write_frame"):
        pytest.skip("this leukedge.sinks has no frame hook yet")

    class PixelSink(Sink):
        name = "pixels"
        wants_frames = True

        def __init__(self) -> None:
            self.shapes: list = []

        def write(self, result) -> None:
            self.shapes.append(None)

        def write_frame(self, result, frame) -> None:
            self.shapes.append(None if frame is None else (frame.shape, frame.dtype))

    px = PixelSink()
    src = "synthetic://?frames=2&width=640&height=480&cells=1&pool=1"
    with leukedge.Screener(bundle, src, preprocess="cpu", sinks=[px]) as s:
        s.run()
    assert px.shapes == [((480, 640, 3), np.uint8)] * 2


def test_out_that_holds_results_is_not_replaced_silently(bundle, tmp_path) -> None:
    out = tmp_path / "cells.jsonl"
    out.write_text('{"frame": 0}\n')
    with pytest.raises(InvalidInputError, match="already holds results") as err:
        leukedge.Screener(bundle, source=SMALL_SYNTHETIC + "&frames=1", preprocess="cpu", out=out)
    assert "overwrite=True" in (err.value.hint or "")
    assert out.read_text() == '{"frame": 0}\n'
    with leukedge.Screener(
        bundle, source=SMALL_SYNTHETIC + "&frames=1", preprocess="cpu", out=out, overwrite=True
    ) as s:
        list(s)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines and all("frame" in r and r.get("cell") is not None for r in lines if r.get("record") != "final")
    assert {"frame": 0} not in lines
