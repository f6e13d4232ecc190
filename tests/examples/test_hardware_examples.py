"""examples/jetson_csi_tensorrt.py and pi_picamera2_int8.py: dry runs everywhere, real runs on the hardware.

The real runs carry the hardware markers (``tensorrt``/``gpu``/``camera``) and
skip with the reason where that hardware is absent; on a Jetson or a Pi set
``LEUKEDGE_CAMERA`` to the camera's URI (``csi://0``, ``picamera2://0``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from leukedge.bundle import REFERENCE_BUNDLE
from leukedge.extras import has
from tests.examples.helpers import assert_clean_error, read_jsonl, run_example


def test_jetson_dry_run_builds_the_configuration_and_lists_what_is_missing() -> None:
    out = run_example("jetson_csi_tensorrt.py", "--dry-run", "--precision", "fp16", "--max-batch", "8")
    text = out.stdout
    assert "nvarguscamerasrc sensor-id=0" in text  # the GStreamer pipeline csi://0 would open
    assert "tensorrt fp16 (batch ≤ 8)" in text and "model.onnx on first use" in text
    assert "preprocess: cuda" in text
    assert "dry run: configuration valid" in text
    if not has("tensorrt"):
        assert "missing: tensorrt" in text and "fix: install JetPack" in text
    if not has("pycuda"):
        assert "missing: pycuda+gpu" in text


def test_jetson_dry_run_rejects_what_would_fail_on_the_device(tmp_path: Path) -> None:
    assert_clean_error(
        run_example("jetson_csi_tensorrt.py", "--dry-run", "--model", str(tmp_path), check=False), 4, "no manifest here"
    )
    assert_clean_error(
        run_example("jetson_csi_tensorrt.py", "--dry-run", "--source", "csi://front", check=False), 3, "csi://front"
    )


def test_pi_dry_run_screens_synthetic_frames_through_the_int8_configuration(tmp_path: Path) -> None:
    cells = tmp_path / "cells.jsonl"
    out = run_example("pi_picamera2_int8.py", "--dry-run", "--check-frames", "2", "--out", str(cells))
    text = out.stdout
    assert "INT8 gate passed" in text and "source: picamera2://0" in text
    assert "running: onnxruntime int8 (CPU), preprocess cpu" in text
    assert "checked: 2 synthetic frame(s)" in text and "dry run: configuration valid" in text
    if not has("picamera2"):
        assert "missing: picamera2" in text
    rows = read_jsonl(cells)
    assert {r["frame"] for r in rows} == {0, 1} and all(r["label"] in ("all", "hem") for r in rows)
    n_cells = int(text.split("checked: 2 synthetic frame(s) through this configuration: ")[1].split()[0])
    assert n_cells == len(rows) > 0


def test_pi_refuses_an_int8_model_that_failed_its_gate(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(REFERENCE_BUNDLE, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["parity"]["int8"].update(passed=False, reasons=["label flips 3.0% > 1.0%"])
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    out = run_example("pi_picamera2_int8.py", "--dry-run", "--model", str(bundle), check=False)
    assert_clean_error(out, 4, "did not pass its acceptance gate", "label flips 3.0%", "--allow-ungated")
    ok = run_example(
        "pi_picamera2_int8.py", "--dry-run", "--model", str(bundle), "--allow-ungated", "--check-frames", "1"
    )
    assert "NOT passed (label flips 3.0% > 1.0%)" in ok.stdout


@pytest.mark.skipif(has("pycuda"), reason="pycuda is installed: the real run is the gpu test below")
def test_jetson_real_run_without_cuda_says_what_is_missing() -> None:
    out = run_example("jetson_csi_tensorrt.py", "--source", "synthetic://?frames=1", check=False)
    assert_clean_error(out, 6, "--preprocess cuda", "Hint:")


@pytest.mark.skipif(has("picamera2"), reason="picamera2 is installed: the real run is the camera test below")
def test_pi_real_run_without_picamera2_says_how_to_install_it() -> None:
    out = run_example("pi_picamera2_int8.py", "--duration", "1", check=False)
    assert_clean_error(out, 5, "picamera2", "sudo apt install python3-picamera2")


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_jetson_configuration_runs_on_a_gpu(tmp_path: Path) -> None:
    """TensorRT engine + CUDA LoG for real, with a synthetic camera (no CSI camera needed)."""
    cells = tmp_path / "cells.jsonl"
    out = run_example(
        "jetson_csi_tensorrt.py",
        "--source",
        "synthetic://?frames=10&width=1280&height=720",
        "--precision",
        "fp16",
        "--out",
        str(cells),
        timeout=900,
    )
    assert "screened 10 frame(s)" in out.stdout
    assert {r["frame"] for r in read_jsonl(cells)} == set(range(10))


@pytest.mark.camera
def test_camera_example_runs_for_real(tmp_path: Path) -> None:
    camera = os.environ["LEUKEDGE_CAMERA"]
    example = {"csi": "jetson_csi_tensorrt.py", "picamera2": "pi_picamera2_int8.py"}.get(camera.split("://")[0])
    if example is None:
        pytest.skip(f"LEUKEDGE_CAMERA={camera}: the examples are for csi:// and picamera2:// cameras")
    cells = tmp_path / "cells.jsonl"
    out = run_example(example, "--source", camera, "--duration", "5", "--out", str(cells), timeout=900)
    assert "screened" in out.stdout and cells.is_file()
