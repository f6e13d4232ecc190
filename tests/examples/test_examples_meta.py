"""Every example: a header that says what it shows, needs and how to run it; listed in the README;
imports and parses its arguments cleanly; Python 3.8 syntax (JetPack 5); small; typed use of the API."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import vermin_command
from tests.examples.helpers import EXAMPLES, REPO, run_example

SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_the_six_uses_are_covered() -> None:
    assert set(SCRIPTS) == {
        "embed_viewer.py",
        "jetson_csi_tensorrt.py",
        "pi_picamera2_int8.py",
        "train_and_convert.py",
        "score_slide_report.py",
        "mqtt_fleet.py",
        "mqtt_aggregate.py",
    }


@pytest.mark.parametrize("name", SCRIPTS)
def test_header_and_readme_entry(name: str) -> None:
    source = (EXAMPLES / name).read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source)) or ""
    for section in ("What it shows", "What it needs", "How to run"):
        assert f"\n{section}" in doc, f"{name}: the header has no '{section}' section"
    assert f"python examples/{name}" in doc, f"{name}: the header shows no command that runs it"
    assert f"({name})" in (EXAMPLES / "README.md").read_text(encoding="utf-8"), f"{name} is not in examples/README.md"
    assert len(source.splitlines()) <= 200, f"{name} is longer than an example should be"
    assert "from __future__ import annotations" in source


@pytest.mark.parametrize("name", SCRIPTS)
def test_imports_and_parses_arguments_cleanly(name: str) -> None:
    out = run_example(name, "--help", timeout=60)
    assert out.stdout.startswith("usage:") and out.stderr == ""


def test_python_38_syntax() -> None:
    vermin = vermin_command()
    out = subprocess.run(
        [*vermin, "-t=3.8-", "--no-tips", "--violations", "--backport", "typing", "--no-parse-comments", "examples"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stdout[-4000:]


def test_mypy_finds_nothing(tmp_path: Path) -> None:
    """The examples use the API as typed: a renamed or retyped public name breaks them here first."""
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "setup.cfg", "--cache-dir", str(tmp_path), "examples"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
