"""mypy over the core and the device runtime (TensorRT code has its own stub-based check)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_core_and_device() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "setup.cfg", "sdk", "device"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
