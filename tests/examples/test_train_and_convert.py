"""examples/train_and_convert.py: a real (tiny) training, conversion and the INT8 gate, on synthetic cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.examples.helpers import run_example

pytest.importorskip("tensorflow")
pytest.importorskip("tf2onnx")


@pytest.mark.slow  # ~20 s on a 2-core CPU: TensorFlow start-up, 2 epochs, export, calibration, gate
def test_tiny_training_then_conversion_prints_the_gate_and_exits_by_its_verdict(tmp_path: Path) -> None:
    from leukedge.bundle import Bundle

    out = run_example(
        "train_and_convert.py",
        "--synthetic",
        "32",
        "--out-dir",
        str(tmp_path),
        "--epochs",
        "2",
        "--width",
        "0.0625",
        "--dense",
        "16",
        "--size",
        "64",
        timeout=300,
        check=False,
    )
    text = out.stdout
    assert (tmp_path / "model.h5").is_file()
    assert "gate: " in text and "cells of held-out subjects" in text
    assert "FP32 parity (Keras vs ONNX" in text and "INT8 gate (" in text and "label flips" in text
    bundle = Bundle.load(tmp_path / "bundle", verify=True)  # written either way, every file hashed
    gate = bundle.manifest.parity["int8"]
    held_out = set(bundle.manifest.provenance["split"]["subjects"]["test"])
    gate_files = list((tmp_path / "gate_cells").rglob("*.png"))
    assert gate["metrics"]["cells"] == len(gate_files) > 0
    assert all(f.name.split("_")[1] in held_out for f in gate_files)  # only subjects never trained on
    if gate["passed"]:
        assert out.returncode == 0, out.stderr[-3000:]
        assert "verdict: PASS" in text and f"bundle: {tmp_path / 'bundle'}" in text
    else:  # a tiny model may legitimately fail: the documented behaviour is the table, then exit 7
        assert out.returncode == 7, out.stderr[-3000:]
        assert "verdict: FAIL" in text and "Error:" in out.stderr


def test_missing_data_folder_is_a_clear_error(tmp_path: Path) -> None:
    out = run_example(
        "train_and_convert.py", str(tmp_path / "nope"), "--out-dir", str(tmp_path / "o"), "--epochs", "1", check=False
    )
    assert "Traceback" not in out.stderr and "Error:" in out.stderr and str(tmp_path / "nope") in out.stderr
    assert out.returncode == 3, out.stderr
