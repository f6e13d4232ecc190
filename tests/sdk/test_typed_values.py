"""Typed values instead of dict paths and loose keywords: the gate verdict, sink options, argument names."""

from __future__ import annotations

from pathlib import Path

import pytest

from leukedge.arguments import arg, for_cli
from leukedge.errors import InvalidInputError
from leukedge.manifest import Manifest
from leukedge.sinks.options import SinkOptions, build_sinks
from leukedge.verdict import GateVerdict, int8_passed, verdict_of


def test_a_verdict_reads_back_what_it_wrote_in_the_manifest_form() -> None:
    v = GateVerdict("int8", False, ("label flips 3.0% > 1.0%",), {"metrics": {"cells": 200}, "threshold": 0.5})
    stored = v.to_dict()
    assert stored["passed"] is False and stored["reasons"] == ["label flips 3.0% > 1.0%"]
    assert verdict_of({"int8": stored}, "int8") == v and v["metrics"] == {"cells": 200}
    assert v.status == "failed"


def test_a_gate_that_did_not_run_keeps_its_reason_as_one_string() -> None:
    stored = GateVerdict.not_run("int8", "no --validate data").to_dict()
    assert stored == {"passed": None, "reason": "no --validate data"}
    assert verdict_of({"int8": stored}, "int8").reasons == ("no --validate data",)


@pytest.mark.parametrize("parity", [{}, None, {"int8": "yes"}, {"int8": {"passed": "true"}}, {"int8": {"passed": 1}}])
def test_a_missing_or_malformed_verdict_reads_as_not_run_never_as_passed(parity) -> None:
    v = verdict_of(parity, "int8")
    assert v.passed is None and v.status == "not run"
    assert not int8_passed(Manifest(parity=parity if isinstance(parity, dict) else {}))


def test_int8_passed_only_for_a_gate_that_ran_and_passed() -> None:
    assert int8_passed(Manifest(parity={"int8": GateVerdict("int8", True).to_dict()}))
    assert not int8_passed(Manifest(parity={"int8": GateVerdict("int8", False, ("x",)).to_dict()}))


def test_sink_options_refuse_a_misspelt_name(tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="unknown sink option.*mqtt_usr") as info:
        build_sinks("m", Manifest(), mqtt_usr="me")
    assert "mqtt_user" in info.value.message  # the known names are listed


def test_sink_options_as_a_value_build_the_same_sinks_as_keywords(tmp_path) -> None:
    out = tmp_path / "cells.csv"
    by_value = build_sinks("m", Manifest(), SinkOptions.of(outs=[str(out)], min_cells=10))
    by_keywords = build_sinks("m", Manifest(), outs=(out,), min_cells=10)
    assert [s.name for s in by_value.sinks] == [s.name for s in by_keywords.sinks] == ["summary", "csv"]
    assert SinkOptions.of(outs=[str(out)]).outs == (Path(out),)
    with pytest.raises(InvalidInputError, match="not both"):
        build_sinks("m", Manifest(), SinkOptions(), min_cells=3)


def test_library_errors_name_the_python_argument_and_the_cli_prints_its_flag() -> None:
    from leukedge.device.preprocessing import choose_preprocess

    with pytest.raises(InvalidInputError) as info:
        choose_preprocess("gpu", Manifest().preprocessing)
    assert info.value.message.startswith("preprocess='gpu' (--preprocess gpu) is not a preprocessing mode")
    assert info.value.user_message().startswith("Error: --preprocess gpu is not a preprocessing mode")
    assert for_cli(f"{arg('max_batch', 0)} is below 1") == "--max-batch 0 is below 1"
    assert for_cli(f"{arg('outs', 'x.txt')}: unknown format") == "--out x.txt: unknown format"
