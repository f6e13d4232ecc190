"""docs/api.md is generated from the docstrings; it must be regenerated when they change."""

from __future__ import annotations

import importlib.util

from tests.docs.mdblocks import REPO


def test_api_reference_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("make_api_docs", REPO / "tools" / "make_api_docs.py")
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    expected = tool.render()
    current = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    assert current == expected, "docs/api.md is out of date: run python tools/make_api_docs.py"
