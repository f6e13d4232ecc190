"""Results files (JSON Lines, CSV), crops, the frame hook of SinkSet, and the sink options."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from leukedge.errors import InvalidInputError
from leukedge.jsonl import JsonlProblems, iter_jsonl
from leukedge.manifest import Manifest
from leukedge.results import CELL_FIELDS
from leukedge.sinks import CallbackSink, CsvSink, JsonlSink, Sink, SinkSet
from leukedge.sinks.crops import CropStore, crops_dir_for
from leukedge.sinks.csvfile import CSV_COLUMNS, iter_csv
from leukedge.sinks.options import build_sinks
from leukedge.sinks.synthetic import crop_pool, random_cells
from leukedge.types import BBox, Cell, FrameResult


def frame(i: int, cells=(), source: str = "synthetic://") -> FrameResult:
    return FrameResult(i, source, 100.0 + i, 100.05 + i, tuple(cells), 640, 480)


def some_cells(rng, n=5, crops=None):
    return random_cells(rng, n, width=640, height=480, crops=crops)


def test_jsonl_and_csv_hold_the_same_records(tmp_path, rng) -> None:
    results = [frame(0, some_cells(rng)), frame(1), frame(2, some_cells(rng, 3), source='a, "quoted" name.png')]
    sinks = SinkSet([JsonlSink(tmp_path / "c.jsonl", "m1"), CsvSink(tmp_path / "c.csv", "m1")])
    with sinks:
        for r in results:
            sinks.write(r)
    from_jsonl = list(iter_jsonl(tmp_path / "c.jsonl"))
    problems = JsonlProblems()
    from_csv = list(iter_csv(tmp_path / "c.csv", problems))
    assert not problems
    assert len(from_jsonl) == 5 + 1 + 3  # the empty frame gives one record with null cell fields
    assert from_csv == from_jsonl
    assert set(from_jsonl[0]) == set(CELL_FIELDS)
    assert from_jsonl[5]["cell"] is None and from_jsonl[5]["bbox"] is None and from_jsonl[5]["frame"] == 1
    assert from_jsonl[6]["source"] == 'a, "quoted" name.png'
    with open(tmp_path / "c.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == CSV_COLUMNS
    assert from_csv[0]["bbox"] == results[0].cells[0].bbox.as_list()


def test_rows_are_flushed_per_frame(tmp_path, rng) -> None:
    sink = CsvSink(tmp_path / "c.csv", "m")
    sink.open()
    sink.write(frame(0, some_cells(rng, 4)))
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 1 + 4  # visible before close
    sink.close()


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_a_cut_off_last_line_is_skipped_and_reported(tmp_path, rng, suffix) -> None:
    path = tmp_path / f"c{suffix}"
    cls = JsonlSink if suffix == ".jsonl" else CsvSink
    with cls(path, "m") as sink:
        for i in range(3):
            sink.write(frame(i, some_cells(rng, 2)))
    text = path.read_text()
    path.write_text(text[: len(text) - 9])  # a crash in the middle of the last line
    lines = len(path.read_text().splitlines())
    problems = JsonlProblems()
    reader = iter_jsonl if suffix == ".jsonl" else iter_csv
    records = list(reader(path, problems))
    assert len(records) == 5
    assert problems.bad_lines == [(lines, "cut off (no newline at end of file)")]


def test_csv_reader_names_bad_rows_by_line(tmp_path) -> None:
    path = tmp_path / "c.csv"
    with CsvSink(path, "m") as sink:
        sink.write(frame(0, [Cell(0, BBox(1, 2, 3, 4), 9, None, 0.7, "all")]))
    with open(path, "a") as fh:
        fh.write("1,1.0,1.1,s,0,1,2,3,4,9,not-a-number,all,m,,\n")
        fh.write("2,1.0,1.1,s,0,1,2\n")
        fh.write("3,1.0,1.1,s,0,1,2,3,4,9,0.25,hem,m,,\n")
    problems = JsonlProblems()
    records = list(iter_csv(path, problems))
    assert [r["frame"] for r in records] == [0, 3]
    assert problems.bad_lines == [
        (3, "column 'p_all' is 'not-a-number', expected a number"),
        (4, "7 values, expected 15"),
    ]


def test_appending_to_a_csv_with_other_columns_is_refused(tmp_path, rng) -> None:
    path = tmp_path / "c.csv"
    with CsvSink(path, "m") as sink:
        sink.write(frame(0, some_cells(rng, 1)))
    store = CropStore(tmp_path / "crops", (0.4, 0.6))
    with pytest.raises(InvalidInputError, match="cannot append"):
        CsvSink(path, "m", append=True, crops=store).open()
    assert store._thread is None  # the refused sink left no crop-writer thread behind
    with CsvSink(path, "m", append=True) as sink:  # same columns: appends below, no second header
        sink.write(frame(1, some_cells(rng, 1)))
    assert [r["frame"] for r in iter_csv(path)] == [0, 1]


def test_flagged_crops_are_saved_once_and_named_relative_to_each_results_file(tmp_path) -> None:
    pool = crop_pool(2)
    cells = [
        Cell(0, BBox(0, 0, 50, 50), 1, pool[0], 0.9, "all"),  # ALL
        Cell(1, BBox(60, 0, 50, 50), 1, pool[1], 0.45, "hem"),  # indeterminate
        Cell(2, BBox(120, 0, 50, 50), 1, pool[1], 0.1, "hem"),  # neither
        Cell(3, BBox(180, 0, 50, 50), 1, None, 0.95, "all"),  # flagged but no pixels
    ]
    store = CropStore(crops_dir_for(tmp_path / "cells.jsonl"), (0.4, 0.6))
    (tmp_path / "sub").mkdir()
    with SinkSet(
        [JsonlSink(tmp_path / "cells.jsonl", "m", crops=store), CsvSink(tmp_path / "sub/c.csv", "m", crops=store)]
    ) as s:
        s.write(frame(7, cells))
    saved = sorted(p.name for p in (tmp_path / "cells-crops").iterdir())
    assert saved == ["f000007_c000.png", "f000007_c001.png"]
    assert store.stats()["saved"] == 2 and store.stats()["skipped"] == 1
    j = list(iter_jsonl(tmp_path / "cells.jsonl"))
    c = list(iter_csv(tmp_path / "sub/c.csv"))
    assert [r["crop"] for r in j] == ["cells-crops/f000007_c000.png", "cells-crops/f000007_c001.png", None, None]
    assert [r["crop"] for r in c] == ["../cells-crops/f000007_c000.png", "../cells-crops/f000007_c001.png", None, None]
    import cv2

    back = cv2.cvtColor(cv2.imread(str(tmp_path / j[0]["crop"])), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, pool[0])  # PNG: lossless, RGB order kept


def test_crop_limit_is_counted(tmp_path) -> None:
    pool = crop_pool(1)
    store = CropStore(tmp_path / "crops", (0.4, 0.6), max_crops=3)
    with JsonlSink(tmp_path / "c.jsonl", "m", crops=store) as sink:
        for i in range(2):
            sink.write(frame(i, [Cell(k, BBox(0, 0, 9, 9), 1, pool[0], 0.9, "all") for k in range(2)]))
    assert store.stats()["saved"] == 3 and store.stats()["skipped"] == 1


class FrameSink(Sink):
    wants_frames = True

    def __init__(self) -> None:
        self.got: list = []

    def write(self, result: FrameResult) -> None:
        self.got.append((result.index, None))

    def write_frame(self, result: FrameResult, pixels) -> None:
        self.got.append((result.index, None if pixels is None else pixels.shape))


class Boom(Sink):
    name = "boom"

    def write(self, result: FrameResult) -> None:
        raise OSError("disk full")


def test_sinkset_hands_frames_only_to_sinks_that_want_them() -> None:
    plain, pix = [], FrameSink()
    s = SinkSet([CallbackSink(on_frame=lambda r: plain.append(r.index)), Boom(), pix])
    assert s.wants_frames
    assert not SinkSet([CallbackSink()]).wants_frames
    img = np.zeros((48, 64, 3), np.uint8)
    s.write_frame(frame(0), img)
    s.write(frame(1))  # no pixels at hand: write() still reaches every sink
    assert plain == [0, 1]
    assert pix.got == [(0, (48, 64, 3)), (1, None)]
    assert s.errors == {"boom": 2}
    assert s.find(FrameSink) is pix


def test_two_sinks_of_one_kind_keep_both_stats(tmp_path) -> None:
    s = SinkSet([JsonlSink(tmp_path / "a.jsonl", "m"), JsonlSink(tmp_path / "b.jsonl", "m")])
    assert set(s.stats()) == {"jsonl", "jsonl2"}


def test_build_sinks_makes_what_the_options_ask_for(tmp_path) -> None:
    m = Manifest()
    s = build_sinks("m", m, outs=(tmp_path / "a.jsonl", tmp_path / "b.CSV"), save_crops=True)
    assert [x.name for x in s.sinks] == ["summary", "jsonl", "csv"]
    assert s.sinks[1].crops is s.sinks[2].crops
    assert s.sinks[1].crops.folder == tmp_path / "a-crops"
    assert [x.name for x in build_sinks("m", m).sinks] == ["summary"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"outs": (Path("x.parquet"),)}, "unknown results format '.parquet'"),
        ({"save_crops": True}, "--save-crops needs a results file"),
        ({"mqtt_user": "u"}, "without --mqtt"),
        ({"mqtt": "mqtt://u:p@host"}, "is not a broker address"),
        ({"mqtt": "mqtt://host:99999"}, "is not a broker address"),
        ({"mqtt": "mqtt://host", "mqtt_ca": __file__}, "plain mqtt://"),
        ({"mqtt": "mqtts://host", "mqtt_cert": __file__}, "go together"),
        ({"mqtt": "mqtts://host", "mqtt_password": "pw"}, "without --mqtt-user"),
        ({"mqtt": "host", "mqtt_device_id": "a/b"}, "cannot be an MQTT topic level"),
        ({"serve": "localhost:http"}, "is not an address to listen on"),
        ({"serve": "0.0.0.0:8080"}, "needs a token"),
        ({"serve": "192.168.1.20:8080", "token": ""}, "needs a token"),
        ({"serve": "127.0.0.1:8080", "token": "short"}, "at least 16"),
    ],
)
def test_bad_sink_options_are_clear_errors(options, message) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        build_sinks("m", Manifest(), **options)
    assert info.value.hint


def test_mqtt_url_forms() -> None:
    from leukedge.sinks.mqtt import parse_mqtt_url

    assert parse_mqtt_url("broker.local") == (False, "broker.local", 1883)
    assert parse_mqtt_url("mqtts://broker.local") == (True, "broker.local", 8883)
    assert parse_mqtt_url("mqtt://10.0.0.2:1884/") == (False, "10.0.0.2", 1884)
    assert parse_mqtt_url("mqtt://[::1]:1883") == (False, "::1", 1883)


def test_jsonl_record_is_json_per_line(tmp_path, rng) -> None:
    with JsonlSink(tmp_path / "c.jsonl", "m") as sink:
        sink.write(frame(0, some_cells(rng, 2)))
    for line in (tmp_path / "c.jsonl").read_text().splitlines():
        assert isinstance(json.loads(line), dict)


def test_crops_beyond_the_writer_queue_are_skipped_not_waited_for(tmp_path) -> None:
    pool = crop_pool(1)
    store = CropStore(tmp_path / "crops", (0.4, 0.6), queue_size=2)  # not opened: nothing drains the queue
    named = store.paths_for(frame(0, [Cell(k, BBox(0, 0, 9, 9), 1, pool[0], 0.9, "all") for k in range(5)]))
    assert sorted(named) == [0, 1]
    assert store.stats()["skipped"] == 3 and store.stats()["queued"] == 2


def test_sink_options_reach_build_sinks_through_click(tmp_path, monkeypatch) -> None:
    """How a streaming command (``screen``) uses the options: parse, build, write, summarise."""
    import click
    from click.testing import CliRunner

    from leukedge.report import screen_summary
    from leukedge.sinks.options import first_out, sink_options
    from leukedge.sinks.synthetic import synthetic_results

    @click.command()
    @sink_options
    def fake_screen(**options) -> None:
        sinks = build_sinks("0123456789ab", Manifest(), **options)
        with sinks:
            for r, f in synthetic_results(3, cells=4, distinct_frames=1):
                sinks.write_frame(r, f) if sinks.wants_frames else sinks.write(r)
        click.echo(screen_summary(sinks, results=str(first_out(options["outs"]))))

    out = tmp_path / "cells.csv"
    r = CliRunner().invoke(fake_screen, ["--out", str(out), "--min-cells", "10"])
    assert r.exit_code == 0, r.output
    assert "cells classified:  12" in r.output and "adequate: 12 classified cells, at least 10 needed" in r.output
    assert f"leukedge report {out} --out {tmp_path / 'cells-report.html'}" in r.output
    assert len(list(iter_csv(out))) == 12
    monkeypatch.setenv("LEUKEDGE_TOKEN", "x" * 20)
    r = CliRunner().invoke(fake_screen, ["--serve", "0.0.0.0:0"])  # the token comes from the environment
    assert r.exit_code == 0, r.output
    monkeypatch.delenv("LEUKEDGE_TOKEN")
    r = CliRunner().invoke(fake_screen, ["--serve", "0.0.0.0:0"])
    assert r.exit_code != 0 and "needs a token" in str(r.exception)
