"""The channel between stages and the run-control object: close, abort, latest-frame, detach, first error."""

from __future__ import annotations

import threading
import time

import pytest

from leukedge.device.channel import CLOSED, EMPTY, Channel, RunControl
from leukedge.errors import InvalidImageError


def _in_thread(fn):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("value", fn()), daemon=True)
    t.start()
    return t, out


def test_every_consumer_sees_closed_once_all_producers_closed_and_items_are_drained() -> None:
    ch = RunControl().channel(4, producers=2)
    ch.put("a")
    ch.close()
    assert ch.get() == "a"
    assert ch.get_nowait() is EMPTY  # one producer is still open
    ch.put("b")
    ch.close()
    assert ch.get() == "b"
    assert [ch.get(), ch.get(), ch.get_nowait()] == [CLOSED, CLOSED, CLOSED]


def test_put_waits_for_room_and_a_get_makes_it() -> None:
    ch = Channel(1)
    ch.put(1)
    t, out = _in_thread(lambda: ch.put(2))
    time.sleep(0.1)
    assert t.is_alive() and len(ch) == 1  # blocked: the channel is full
    assert ch.get() == 1
    t.join(2.0)
    assert out["value"] is True and ch.get() == 2


def test_abort_wakes_a_blocked_put_and_a_blocked_get() -> None:
    control = RunControl()
    full, empty = control.channel(1), control.channel(1)
    full.put("x")
    putter, put_out = _in_thread(lambda: full.put("y"))
    getter, get_out = _in_thread(lambda: empty.get())
    time.sleep(0.1)
    assert putter.is_alive() and getter.is_alive()
    control.abort()
    putter.join(2.0)
    getter.join(2.0)
    assert put_out["value"] is False and get_out["value"] is CLOSED
    assert full.get() == "x" and full.get() is CLOSED  # what was queued is still handed out, then CLOSED


def test_put_latest_never_waits_and_displaces_the_oldest() -> None:
    ch = Channel(2)
    assert [ch.put_latest(k) for k in range(5)] == [0, 0, 1, 1, 1]
    assert [ch.get_nowait(), ch.get_nowait(), ch.get_nowait()] == [3, 4, EMPTY]


def test_a_detached_consumer_makes_put_drop_instead_of_wait() -> None:
    ch = Channel(1)
    ch.put("kept")
    ch.detach()
    assert ch.put("dropped") is False and len(ch) == 1
    ch.attach()
    assert ch.get() == "kept" and ch.put("again") is True


def test_get_with_a_timeout_answers_empty() -> None:
    ch = Channel(1)
    t0 = time.perf_counter()
    assert ch.get(timeout=0.05) is EMPTY
    assert time.perf_counter() - t0 < 1.0


def test_a_channel_needs_room_and_a_producer() -> None:
    with pytest.raises(ValueError, match="capacity and producers"):
        Channel(0)


def test_run_control_keeps_the_first_error_and_stops_with_or_without_draining() -> None:
    control = RunControl()
    interrupted = []
    control.on_stop(lambda: interrupted.append(True))
    first = InvalidImageError("frame 2 is bad")
    control.fail(first, drain=True)
    assert control.capture_stopped and not control.aborted and interrupted == [True]
    control.fail(RuntimeError("later"), drain=False)
    assert control.error is first and control.aborted


def test_end_capture_stops_capturing_without_interrupting_the_source() -> None:
    control = RunControl()
    hooks = []
    control.on_stop(lambda: hooks.append(1))
    control.end_capture()
    assert control.capture_stopped and not control.aborted and hooks == []


def test_a_stage_that_raises_becomes_the_run_error_and_aborts_it() -> None:
    control = RunControl()

    def broken() -> None:
        raise KeyError("oops")

    control.spawn("leukedge-test", broken).join(2.0)
    assert isinstance(control.error, KeyError) and control.aborted
