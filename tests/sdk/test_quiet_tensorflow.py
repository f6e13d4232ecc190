"""doctor and bench show no TensorFlow/absl start-up noise (I0000/E0000 … cuInit lines) on stderr."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")

NOISE = ("I0000", "E0000", "W0000", "absl::InitializeLog", "cuInit", "oneDNN")


def _stderr(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "leukedge", *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [("doctor",), ("bench", "--backend", "keras", "--batch-size", "1", "--seconds", "0.1", "--warmup", "0.05")],
    ids=["doctor", "bench-keras"],
)
def test_no_native_start_up_noise(args) -> None:
    err = _stderr(*args)
    assert not [line for line in err.splitlines() if any(n in line for n in NOISE)], err[-2000:]


def test_python_errors_still_show_after_a_quiet_block(capfd) -> None:
    import os

    from leukedge.extras import quiet_native_logs

    with quiet_native_logs():
        os.write(2, b"hidden\n")  # as a C++ library writes: straight to file descriptor 2
    os.write(2, b"shown\n")
    err = capfd.readouterr().err
    assert "shown" in err and "hidden" not in err
    with pytest.raises(ZeroDivisionError), quiet_native_logs():
        1 / 0
