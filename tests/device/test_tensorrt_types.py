"""Type-check the TensorRT runtime against NVIDIA's API as described by ``tensorrt-stubs`` (TensorRT 10).

TensorRT cannot be installed here, so mypy checks every TensorRT call the
named-tensor path makes (the bindings path for TensorRT 8 is typed ``Any``
on purpose: those methods are gone from TensorRT 10 and from the stubs).
``tests/trt_stubs.py`` makes the stubs usable by mypy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.trt_stubs import patched_typings, run_mypy

RUNTIME = REPO / "device" / "runtimes" / "tensorrt_runtime.py"
STRICT = "[mypy-leukedge.device.runtimes.tensorrt_runtime]\ncheck_untyped_defs = True\n"


@pytest.fixture(scope="module")
def typings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mypy")
    return patched_typings(tmp_path_factory.mktemp("typings"))


@pytest.mark.slow
def test_tensorrt_runtime_type_checks_against_tensorrt_stubs(typings: Path, tmp_path: Path) -> None:
    out = run_mypy(typings, [RUNTIME], tmp_path, STRICT)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


@pytest.mark.slow
def test_the_check_sees_a_wrong_tensorrt_call(typings: Path, tmp_path: Path) -> None:
    """The check has teeth: a misspelt TensorRT method fails it."""
    bad = tmp_path / "bad_runtime.py"
    bad.write_text(RUNTIME.read_text().replace("execute_async_v3(", "execute_async_v4("))
    out = run_mypy(typings, [bad], tmp_path, STRICT.replace("leukedge.device.runtimes.tensorrt_runtime", "bad_runtime"))
    assert out.returncode != 0 and "execute_async_v4" in out.stdout
