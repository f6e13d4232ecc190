"""Type-check the TensorRT runtime against NVIDIA's API as described by ``tensorrt-stubs`` (TensorRT 10).

TensorRT cannot be installed here, so mypy checks every TensorRT call the
named-tensor path makes (the bindings path for TensorRT 8 is typed ``Any``
on purpose: those methods are gone from TensorRT 10 and from the stubs).

The stubs are read from their wheel, never installed: installed, they leave a
bare ``tensorrt/`` folder that imports as an empty namespace package.  The
wheel is looked for in $LEUKEDGE_TRT_STUBS (a wheel or a folder of wheels),
``.whl/``, ``../shared/wheels`` and an installed ``tensorrt-stubs``
distribution.  As found, mypy rejects them (no ``py.typed``) and two spots
are not valid Python (parameters named ``in``; in ``add_scale_nd`` a
parameter without default after defaults); a patched copy is made here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, skip_or_fail

RUNTIME = REPO / "device" / "runtimes" / "tensorrt_runtime.py"
# leukedge is installed through a package_dir mapping mypy cannot follow; the point here is TensorRT's API.
IGNORES = (
    "[mypy-tensorrt_bindings.*]\nignore_errors = True\n"
    "[mypy-tensorrt_libs,tensorrt_libs.*,pycuda,pycuda.*,leukedge,leukedge.*]\nignore_missing_imports = True\n"
)


def find_stub_wheel() -> Path | None:
    candidates = []
    env = os.environ.get("LEUKEDGE_TRT_STUBS")
    if env:
        p = Path(env)
        candidates += [p] if p.is_file() else sorted(p.glob("tensorrt_stubs-*.whl"))
    for folder in (REPO / ".whl", REPO.parent / "shared" / "wheels"):
        candidates += sorted(folder.glob("tensorrt_stubs-*.whl"))
    return candidates[-1] if candidates else None


def patched_stubs(wheel: Path, out: Path) -> Path:
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(("tensorrt/", "tensorrt_bindings/")) and name.endswith(".pyi"):
                target = out / name
                target.parent.mkdir(parents=True, exist_ok=True)
                text = z.read(name).decode("utf-8")
                text = re.sub(r"\bin: ", "in_: ", text)  # 'in' is a keyword
                text = text.replace("channel_axis: int)", "channel_axis: int = ...)")
                target.write_text(text, encoding="utf-8")
    return out


def test_tensorrt_runtime_type_checks_against_tensorrt_stubs(tmp_path) -> None:
    pytest.importorskip("mypy")
    wheel = find_stub_wheel()
    if wheel is None:
        skip_or_fail(
            "tensorrt-stubs wheel not found: pip download --no-deps tensorrt-stubs -d .whl (or set LEUKEDGE_TRT_STUBS)"
        )
    typings = patched_stubs(wheel, tmp_path / "typings")
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\n"
        f"mypy_path = {typings}\n"
        "follow_imports = silent\n"
        "warn_unused_ignores = False\n"
        "check_untyped_defs = True\n"
        f"cache_dir = {tmp_path / 'cache'}\n" + IGNORES
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), str(RUNTIME)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_the_check_sees_a_wrong_tensorrt_call(tmp_path) -> None:
    """The check has teeth: a misspelt TensorRT method fails it."""
    pytest.importorskip("mypy")
    wheel = find_stub_wheel()
    if wheel is None:
        skip_or_fail("tensorrt-stubs wheel not found (see the test above)")
    typings = patched_stubs(wheel, tmp_path / "typings")
    bad = tmp_path / "bad_runtime.py"
    bad.write_text(RUNTIME.read_text().replace("execute_async_v3(", "execute_async_v4("))
    config = tmp_path / "mypy.ini"
    config.write_text(
        f"[mypy]\nmypy_path = {typings}\nfollow_imports = silent\ncache_dir = {tmp_path / 'cache'}\n" + IGNORES
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), str(bad)], capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode != 0 and "execute_async_v4" in out.stdout
