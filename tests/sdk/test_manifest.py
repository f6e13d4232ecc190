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
        (("decision", "threshold"), 1.5, "decision.threshold", "a finite number in [0.0, 1.0]"),
        (("classes",), ["a", "b"], "classes", "two distinct names from"),
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


# --- every numeric field finite and in its range; classes distinct and in the trained order ------


def _numeric_leaves(node: object, path: tuple = ()) -> list:
    """Paths of every number in the sections a runtime reads (preprocessing, decision)."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _numeric_leaves(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _numeric_leaves(v, (*path, i))]
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return [path]
    return []


NUMERIC_FIELDS = [
    p for section in ("preprocessing", "decision") for p in _numeric_leaves(Manifest().to_dict()[section], (section,))
]


def _with(path: tuple, value: object) -> dict:
    d = Manifest().to_dict()
    node = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return d


def test_every_numeric_field_is_walked() -> None:
    names = {".".join(map(str, p)) for p in NUMERIC_FIELDS}
    assert {"preprocessing.scale", "preprocessing.log.gaussian_sigma", "preprocessing.crop.source_scale"} <= names
    assert {"decision.threshold", "decision.indeterminate.0", "preprocessing.log.gaussian_ksize"} <= names


@pytest.mark.parametrize("path", NUMERIC_FIELDS, ids=lambda p: ".".join(map(str, p)))
@pytest.mark.parametrize(
    "bad",
    [float("nan"), float("inf"), float("-inf"), 10**400, -(10**400), 1e300, -1e300],
    ids=["nan", "inf", "-inf", "int-1e400", "int--1e400", "1e300", "-1e300"],
)
def test_numeric_fields_refuse_non_finite_and_huge_values(path: tuple, bad: object) -> None:
    text = json.dumps(_with(path, bad))  # NaN/Infinity as Python's json writes them (and reads them back)
    with pytest.raises(ManifestError) as err:
        Manifest.from_dict(json.loads(text))
    assert err.value.field.split(".")[0] == path[0]


@pytest.mark.parametrize(
    "path, value",
    [
        (("preprocessing", "log", "gaussian_ksize"), 1_000_000_001),
        (("preprocessing", "log", "gaussian_ksize"), 33),
        (("preprocessing", "log", "gaussian_ksize"), -3),
        (("preprocessing", "log", "gaussian_sigma"), -1.0),
        (("preprocessing", "log", "alpha"), -0.5),
        (("preprocessing", "crop", "canvas_px"), 1_000_000),
        (("preprocessing", "crop", "source_scale"), 0.0),
        (("preprocessing", "scale"), 0.0),
        (("preprocessing", "scale"), -1 / 255),
        (("preprocessing", "input_width"), 10**9),
        (("decision", "threshold"), -0.1),
    ],
)
def test_numeric_fields_have_stated_ranges(path: tuple, value: object) -> None:
    with pytest.raises(ManifestError) as err:
        Manifest.from_dict(_with(path, value))
    assert "in [" in str(err.value)


def test_nan_scale_in_a_manifest_file_is_refused(tmp_path) -> None:
    p = tmp_path / "manifest.json"
    p.write_text(json.dumps(_with(("preprocessing", "scale"), float("nan"))))
    with pytest.raises(ManifestError, match=r"'preprocessing.scale' is nan, expected a finite number in"):
        Manifest.load(p)


@pytest.mark.parametrize(
    "classes", [["all", "all"], ["hem", "hem"], ["all"], ["hem", "all", "x"], ["hem", "blast"], ["hem", 1], "all"]
)
def test_classes_must_be_two_distinct_known_names(classes: object) -> None:
    with pytest.raises(ManifestError) as err:
        Manifest.from_dict(_with(("classes",), classes))
    assert err.value.field == "classes"


def test_class_order_against_the_trained_order() -> None:
    with pytest.raises(ManifestError, match="trained with the output order"):
        Manifest.from_dict(_with(("classes",), ["all", "hem"]))  # leukedge trains ("hem", "all")
    d = _with(("classes",), ["all", "hem"])
    d["provenance"] = {"training": {"classes": ["all", "hem"]}}  # a model trained the other way round
    assert Manifest.from_dict(d).positive_index == 0
    d["classes"] = ["hem", "all"]
    with pytest.raises(ManifestError, match=r'trained with the output order \["all", "hem"\]'):
        Manifest.from_dict(d)


@pytest.mark.parametrize("name", ["", "   "])
def test_tensor_names_must_not_be_empty(name: str) -> None:
    with pytest.raises(ManifestError, match="output_name"):
        Manifest.from_dict(_with(("output_name",), name))
