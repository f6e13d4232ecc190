"""TensorRT's API as ``tensorrt-stubs`` (10.13) describes it, made usable by mypy, for tests.

The stubs do not install as a typed package (no ``py.typed``) and hold two
spots that are not valid Python (parameters named ``in``; ``channel_axis``
without a default after defaults).  ``patched_typings`` copies them into a
folder, mends those spots, and the tests run mypy with it as ``mypy_path``.
``tools/test.sh`` puts the stubs in the ignored ``.typings/`` folder, outside
site-packages, where a stub-only ``tensorrt`` would pass for TensorRT.
None of the stub files is committed.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, skip_or_fail

STUB_PACKAGES = ("tensorrt", "tensorrt_bindings")
INSTALL = "pip install --no-deps --target .typings/tensorrt-stubs 'tensorrt-stubs==10.13.0.35.1'"


def stub_root() -> Path:
    """$LEUKEDGE_TRT_STUBS, the repo's ``.typings/tensorrt-stubs``, or an installed tensorrt-stubs."""
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


def patched_typings(dest: Path) -> Path:
    root = stub_root()
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


def run_mypy(typings: Path, files: list, tmp: Path, extra_config: str = "") -> subprocess.CompletedProcess:
    """mypy over ``files`` with TensorRT's stubs; TensorRT's own stub errors are ignored."""
    config = tmp / "mypy.ini"
    config.write_text(
        "[mypy]\n"
        f"mypy_path = {typings}\n"
        "python_version = 3.11\n"
        "follow_imports = silent\n"
        "ignore_missing_imports = True\n"
        "warn_unused_ignores = False\n"
        f"cache_dir = {tmp / 'mypy-cache'}\n"
        "[mypy-tensorrt_bindings.*]\nignore_errors = True\n"
        "[mypy-tensorrt.*]\nignore_errors = True\n" + extra_config
    )
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(config), "--no-error-summary", *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
