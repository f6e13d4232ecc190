"""``leukedge bench``: every usable backend and precision is measured; the others say why not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from leukedge.bundle import Bundle
from leukedge.cli import main
from leukedge.device.bench import BenchReport, format_table, run_bench, time_calls
from leukedge.errors import HardwareUnavailableError, InvalidInputError
from leukedge.manifest import Manifest, Preprocessing


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, synthetic_cells: Path) -> Bundle:
    """An untrained tiny Keras model, converted with INT8 calibration (no gate): speed needs no accuracy."""
    import keras

    from leukedge.converters.convert import ConvertOptions, convert_model
    from leukedge.trainer.modelio import save_model

    root = tmp_path_factory.mktemp("bench")
    manifest = Manifest(name="bench-tiny", preprocessing=Preprocessing(input_height=32, input_width=32))
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3), name="input")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="block1_conv1")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="predictions")(x))
    path = save_model(model, root / "model.h5", manifest)
    options = ConvertOptions(out=root / "bundle", calib_data=synthetic_cells)
    return convert_model(path, options, echo=lambda _m: None).bundle


def test_every_usable_row_at_batch_1_and_32(bundle: Bundle) -> None:
    report = run_bench(bundle.root, seconds=0.05, warmup=0.01)
    measured = {(r.backend, r.precision, r.batch) for r in report.rows}
    assert measured == {
        (b, p, n) for b, p in [("keras", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")] for n in (1, 32)
    }
    assert all(r.cells_per_s > 0 and r.runs >= 3 for r in report.rows)
    assert report.row("onnxruntime", "int8", 32).gate == "not run"  # converted without --validate
    skipped = {(s["backend"], s["precision"]) for s in report.skipped}
    assert skipped == {("tensorrt", "fp32"), ("tensorrt", "fp16"), ("tensorrt", "int8")}
    assert report.preprocess and report.preprocess["cells_per_s"] > 0
    assert report.machine["cores"] and report.machine["load_average_after"] is not None
    table = format_table(report)
    assert "vs ORT FP32" in table and "1.00×" in table and "skipped tensorrt fp16" in table


def test_cli_json_and_backend_filter(bundle: Bundle) -> None:
    args = [
        "bench",
        "--model",
        str(bundle.root),
        "--backend",
        "onnxruntime",
        "--batch-size",
        "4",
        "--seconds",
        "0.05",
        "--repeat",
        "2",
        "--json",
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [(row["backend"], row["precision"], row["batch"]) for row in data["rows"]] == [
        ("onnxruntime", "fp32", 4),
        ("onnxruntime", "int8", 4),
    ]
    assert data["model"]["hash"] == bundle.short_hash and data["settings"]["batch_sizes"] == [4]
    assert data["settings"]["repeat"] == 2


def test_bad_requests_are_clear(bundle: Bundle, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="--batch-size"):
        run_bench(bundle.root, batch_sizes=[0])
    with pytest.raises(InvalidInputError, match="--repeat"):
        run_bench(bundle.root, repeat=0)
    with pytest.raises(HardwareUnavailableError, match="tensorrt fp16: TensorRT is not installed"):
        run_bench(bundle.root, backends=["tensorrt"])
    r = CliRunner().invoke(main, ["bench", "--model", str(tmp_path / "nowhere")])
    assert r.exit_code == 4 and "not a model bundle folder" in r.output


def test_time_calls_warms_up_then_times() -> None:
    calls: list = []
    times = time_calls(lambda: calls.append(1), seconds=0.0, warmup=0.0, min_runs=5)
    assert len(times) == 5 and len(calls) == 7  # two warm-up calls at least


def test_report_is_json_serialisable() -> None:
    report = BenchReport(model={}, machine={}, settings={})
    assert json.loads(json.dumps(report.to_dict()))["rows"] == []
