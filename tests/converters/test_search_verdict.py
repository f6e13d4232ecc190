"""The INT8 verdict after the search for layers to keep in float: what the manifest records, passed or not."""

from __future__ import annotations

from types import SimpleNamespace

from leukedge.converters.convert import _after_search
from leukedge.verdict import GateVerdict

FAILED = GateVerdict("int8", False, ("label flips 3.0% > 1.0%",), {"metrics": {"flips": 6}, "excluded_nodes": []})


def _found(passed: bool, attempts: list) -> SimpleNamespace:
    return SimpleNamespace(
        passed=passed,
        handle="bundle with layers in float",
        metrics={"flips": 1},
        excluded=["block1_conv1"],
        ranking=[("block1_conv1", 0.02)],
        attempts=attempts,
        reasons=["label flips 2.0% > 1.0% with 3 layers in float"],
    )


def test_a_search_that_passes_ships_its_model_and_records_what_it_kept_in_float() -> None:
    bundle, verdict = _after_search(_found(True, [{"passed": True}]), "plain", FAILED, lambda excluded: "rebuilt")
    assert bundle == "bundle with layers in float" and verdict.passed is True and verdict.reasons == ()
    stored = verdict.to_dict()
    assert stored["metrics"] == {"flips": 1} and stored["excluded_nodes"] == ["block1_conv1"]
    assert stored["sensitivity"] == [{"node": "block1_conv1", "mean_abs_delta_p_in_float": 0.02}]


def test_a_search_that_fails_ships_the_plain_int8_marked_as_failed_with_both_reasons() -> None:
    built = []

    def build(excluded):
        built.append(excluded)
        return "plain, rebuilt"

    bundle, verdict = _after_search(_found(False, [{"passed": False}]), "plain", FAILED, build)
    assert bundle == "plain, rebuilt" and built == [[]] and verdict.passed is False  # no layers in float
    assert verdict.reasons == ("label flips 3.0% > 1.0%", "label flips 2.0% > 1.0% with 3 layers in float")
    assert verdict.to_dict()["metrics"] == {"flips": 6}  # the plain model's figures, not the search's
