"""The code that runs on devices stays importable on Python 3.8, which JetPack 5 ships."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from tests.conftest import vermin_command

REPO = Path(__file__).resolve().parents[1]
DEVICE_SIDE = ["sdk", "device", "converters"]


def test_vermin_finds_nothing_newer_than_38() -> None:
    vermin = vermin_command()
    out = subprocess.run(
        [*vermin, "-t=3.8-", "--no-tips", "--violations", "--backport", "typing", "--no-parse-comments", *DEVICE_SIDE],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stdout[-4000:]


@pytest.mark.parametrize("folder", DEVICE_SIDE)
def test_every_module_defers_annotations(folder: str) -> None:
    """`X | None` and `list[int]` in annotations are fine on 3.8 only when annotations are not evaluated."""
    missing = []
    for path in sorted((REPO / folder).rglob("*.py")):
        tree = ast.parse(path.read_text())
        annotated = any(
            isinstance(n, ast.AnnAssign)
            or (
                isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                and (n.returns or any(a.annotation for a in n.args.args))
            )
            for n in ast.walk(tree)
        )
        future = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body)
        if annotated and not future:
            missing.append(str(path.relative_to(REPO)))
    assert missing == [], f"add 'from __future__ import annotations' to: {missing}"
