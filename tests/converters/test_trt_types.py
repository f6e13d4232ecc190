"""The TensorRT code type-checks against TensorRT's API (tensorrt-stubs 10.13), without TensorRT.

``tests/trt_stubs.py`` makes the stubs usable by mypy (see there).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.trt_stubs import patched_typings, run_mypy

TRT_MODULES = [REPO / "device" / "trt_build.py", REPO / "device" / "trt_engine.py"]


@pytest.fixture(scope="module")
def typings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return patched_typings(tmp_path_factory.mktemp("typings"))


@pytest.mark.slow
def test_tensorrt_code_type_checks_against_the_stubs(typings: Path, tmp_path: Path) -> None:
    out = run_mypy(typings, TRT_MODULES, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_the_check_catches_a_misspelt_tensorrt_attribute(typings: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad_trt.py"
    bad.write_text(
        "from __future__ import annotations\n"
        "def f() -> None:\n"
        "    import tensorrt as trt\n"
        "    config = trt.Builder(trt.Logger(trt.Logger.WARNING)).create_builder_config()\n"
        "    config.set_flag(trt.BuilderFlag.INT8_FAST)\n"
        "    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 'lots')\n"
    )
    out = run_mypy(typings, [bad], tmp_path)
    assert out.returncode != 0
    assert "INT8_FAST" in out.stdout
    assert "set_memory_pool_limit" in out.stdout
