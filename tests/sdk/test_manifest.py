from __future__ import annotations

import json

import pytest

from leukedge.errors import ManifestError
from leukedge.manifest import SCHEMA, LogSpec, Manifest


def test_round_trip_is_exact() -> None:
    m = Manifest()
    again = Manifest.from_dict(json.loads(m.to_json()))
    assert again == m
    assert again.to_dict()["schema"] == SCHEMA


def test_defaults_state_the_log_exactly() -> None:
    log = Manifest().to_dict()["preprocessing"]["log"]
    assert set(log) == {
        "enabled",
        "apply_at",
        "gaussian_ksize",
        "gaussian_sigma",
        "laplacian_aperture",
        "border",
        "combine",
        "alpha",
    }
    assert log["apply_at"] == "input"


@pytest.mark.parametrize(
    "path, value, field, expected",
    [
        (("preprocessing", "log", "gaussian_ksize"), 4, "preprocessing.log.gaussian_ksize", "an odd integer"),
        (("preprocessing", "log", "border"), "wrap", "preprocessing.log.border", "one of 'reflect101'"),
        (("preprocessing", "log", "laplacian_aperture"), 5, "preprocessing.log.laplacian_aperture", "one of 1, 3"),
        (("preprocessing", "input_height"), "128", "preprocessing.input_height", "an integer"),
        (("preprocessing", "scale"), True, "preprocessing.scale", "a number"),
        (("decision", "threshold"), 1.5, "decision.threshold", "a number in [0.0, 1.0]"),
        (("classes",), ["a", "b"], "classes", "two class names"),
    ],
)
def test_errors_name_field_value_and_expectation(path: tuple, value: object, field: str, expected: str) -> None:
    d = Manifest().to_dict()
    node = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ManifestError) as err:
        Manifest.from_dict(d)
    msg = str(err.value)
    assert err.value.field == field
    assert f"'{field}'" in msg and json.dumps(value) in msg and expected in msg


def test_missing_schema_and_wrong_schema() -> None:
    d = Manifest().to_dict()
    d["schema"] = "leukedge.bundle/0"
    with pytest.raises(ManifestError, match="expected 'leukedge.bundle/1'"):
        Manifest.from_dict(d)
    del d["schema"]
    with pytest.raises(ManifestError, match="'schema' is missing"):
        Manifest.from_dict(d)


def test_band_must_hold_the_threshold() -> None:
    d = Manifest().to_dict()
    d["decision"]["indeterminate"] = [0.6, 0.7]
    with pytest.raises(ManifestError, match="low <= threshold"):
        Manifest.from_dict(d)


def test_not_json(tmp_path) -> None:
    p = tmp_path / "manifest.json"
    p.write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.load(p)


def test_label_rule() -> None:
    m = Manifest()
    assert m.label_for(0.5) == "all" and m.label_for(0.49) == "hem"
    assert m.positive_index == 1
    assert LogSpec().laplacian_aperture == 3
