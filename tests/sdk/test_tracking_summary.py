"""Unique-cell counts in the running summary that the live view, MQTT and screen's summary share."""

from __future__ import annotations

import json

from leukedge.liveview import LiveViewSink
from leukedge.report import format_summary
from leukedge.sinks.base import CallbackSink, SinkSet
from leukedge.sinks.mqtt import MqttSettings, MqttSink
from leukedge.sinks.summary import RunningSummary, SummarySink
from leukedge.tracking import CellTrack
from leukedge.types import BBox, Cell, FrameResult


def _frame(i: int, ids, skip=None) -> FrameResult:
    cells = tuple(Cell(k, BBox(10 * k, 10, 8, 8), 64, None, 0.9, "all", cell_id=cid) for k, cid in enumerate(ids))
    meta = {"track": {"state": "still", "skip": skip, "field": 0}}
    return FrameResult(index=i, source="s", t_capture=1.0, t_result=2.0, cells=cells, meta=meta)


def _final(cell_id: int, label: str, p: float) -> CellTrack:
    t = CellTrack(cell_id, 0.0, 0.0, 8.0, 8.0, 0, 5, 0, cell_id=cell_id)
    t.label, t.p_all = label, p
    return t


def test_running_summary_counts_each_cell_once_and_finals_fix_labels() -> None:
    s = RunningSummary(model="m")
    for i in range(30):  # a still field: the same two cells in 30 frames
        s.update(_frame(i, [0, 1, None]))  # the third blob is not a counted cell
    s.update(_frame(30, [], skip="moving"))
    d = s.to_dict()
    assert d["counting"] == "unique cells" and d["cells"] == 2 and d["all"] == 2 and d["frames"] == 31
    assert d["skipped"] == {"moving": 1} and d["fields"] == 1 and d["final_cells"] == 0
    s.add_finals([_final(0, "hem", 0.2)])  # the combined looks say otherwise
    d = s.to_dict()
    assert d["cells"] == 2 and d["all"] == 1 and d["final_cells"] == 1
    s.update(_frame(31, [0]))  # a look after the final record changes nothing
    assert s.to_dict()["all"] == 1
    text = format_summary(dict(d, model="m"))
    assert "unique cells:      2 (each cell counted once)" in text and "frames skipped: 1 moving" in text


def test_every_counting_sink_takes_final_records() -> None:
    summary_sink = SummarySink(RunningSummary())
    mqtt = MqttSink(MqttSettings(host="127.0.0.1"), model="m")
    live = LiveViewSink("127.0.0.1", 0)
    got: list = []
    sinks = SinkSet([summary_sink, mqtt, live, CallbackSink(on_track=got.append)])
    sinks.write(_frame(0, [0]))
    sinks.write_tracks([_final(0, "all", 0.8)], "s")
    assert [t.cell_id for t in got] == [0]
    for running in (summary_sink.running, mqtt.summary, live.summary):
        d = running.to_dict()
        assert d["counting"] == "unique cells" and d["cells"] == 1 and d["final_cells"] == 1
    body = json.loads(mqtt._summary_payload())
    assert body["cells"] == 1 and body["counting"] == "unique cells"


def test_untracked_frames_count_per_frame() -> None:
    s = RunningSummary()
    for i in range(3):
        s.update(
            FrameResult(
                index=i,
                source="s",
                t_capture=1.0,
                t_result=2.0,
                cells=(Cell(0, BBox(0, 0, 4, 4), 9, None, 0.1, "hem"),),
            )
        )
    d = s.to_dict()
    assert d["counting"] == "cells per frame" and d["cells"] == 3 and d["fields"] is None
