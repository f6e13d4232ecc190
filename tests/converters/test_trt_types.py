"""The TensorRT code type-checks against TensorRT's API (tensorrt-stubs 10.13), without TensorRT.

The stubs do not install as a typed package (no py.typed) and hold two spots
that are not valid Python (parameters named ``in``; ``channel_axis`` without a
default after defaults).  The test copies them into a temporary typings folder,
mends those spots and runs mypy with that folder as ``mypy_path``.  None of the
stub files is committed.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, skip_or_fail

STUB_PACKAGES = ("tensorrt", "tensorrt_bindings")
TRT_MODULES = [REPO / "converters" / "trt_build.py", REPO / "converters" / "trt_engine.py"]
INSTALL = "pip install --no-deps --target .typings/tensorrt-stubs 'tensorrt-stubs==10.13.0.35.1'"


def _stub_root() -> Path:
    """Where the stubs are: $LEUKEDGE_TRT_STUBS, the repo's ignored .typings/ (tools/test.sh puts them
    there, outside site-packages, where an importable stub-only 'tensorrt' would pass for TensorRT),
    or an installed tensorrt-stubs."""
    for folder in (os.environ.get("LEUKEDGE_TRT_STUBS"), REPO / ".typings" / "tensorrt-stubs"):
        if folder and (Path(folder) / "tensorrt" / "__init__.pyi").is_file():
            return Path(folder)
    try:
        dist = importlib.metadata.distribution("tensorrt-stubs")
    except importlib.metadata.PackageNotFoundError:
        skip_or_fail(f"tensorrt-stubs not found ({INSTALL})")
    for f in dist.files or []:
        if f.parts[0] == "tensorrt" and f.name == "__init__.pyi":
            return Path(str(dist.locate_file(f))).parents[1]
    skip_or_fail("tensorrt-stubs is installed but holds no tensorrt/__init__.pyi")
    raise AssertionError("unreachable")


def _patched_typings(dest: Path) -> Path:
    root = _stub_root()
    for pkg in STUB_PACKAGES:
        shutil.copytree(root / pkg, dest / pkg, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for pyi in dest.rglob("*.pyi"):
        text = pyi.read_text(encoding="utf-8")
        text = re.sub(r"(?<=[(,] )in(?=: )|(?<=\()in(?=: )", "in_", text)
        text = text.replace(
            "power: Weights = None, channel_axis: int)", "power: Weights = None, channel_axis: int = 0)"
        )
        pyi.write_text(text, encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def typings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _patched_typings(tmp_path_factory.mktemp("typings"))


def _mypy(typings: Path, files: list, tmp: Path) -> subprocess.CompletedProcess:
    config = tmp / "mypy.ini"
    config.write_text(
        "[mypy]\n"
        f"mypy_path = {typings}\n"
        "python_version = 3.11\n"
        "follow_imports = silent\n"
        "ignore_missing_imports = True\n"
        "warn_unused_ignores = False\n"
        "cache_dir = /dev/null\n"
        "[mypy-tensorrt_bindings.*]\nignore_errors = True\n"
        "[mypy-tensorrt.*]\nignore_errors = True\n"
    )
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-error-summary", *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)


@pytest.mark.slow
def test_tensorrt_code_type_checks_against_the_stubs(typings: Path, tmp_path: Path) -> None:
    out = _mypy(typings, TRT_MODULES, tmp_path)
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
    out = _mypy(typings, [bad], tmp_path)
    assert out.returncode != 0
    assert "INT8_FAST" in out.stdout
    assert "set_memory_pool_limit" in out.stdout
