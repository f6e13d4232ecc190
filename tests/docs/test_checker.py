"""The docs check itself: it must catch what it is there to catch."""

from __future__ import annotations

from tests.docs import cliparse
from tests.docs.mdblocks import REPO, commands, parse

PAGE = REPO / "docs" / "example-page.md"


def _problems(text: str) -> list[str]:
    return parse(PAGE, text)[1]


def test_a_well_marked_page_has_no_problems() -> None:
    text = (
        "Run it:\n\n```bash\nleukedge demo\n```\n\n"
        "<!-- docs-check: hardware (a Jetson) -->\n```bash\nleukedge screen csi://0\n```\n\n"
        "<!-- docs-check: synopsis -->\n```text\nleukedge demo [--seconds S]\n```\n"
    )
    blocks, problems = parse(PAGE, text)
    assert problems == []
    assert [(b.lang, b.marker) for b in blocks] == [("bash", None), ("bash", "hardware"), ("text", "synopsis")]


def test_marker_mistakes_are_caught() -> None:
    assert any(
        "unknown docs-check marker 'skip'" in p for p in _problems("<!-- docs-check: skip (x) -->\n```bash\nls\n```\n")
    )
    assert any("needs a reason" in p for p in _problems("<!-- docs-check: hardware -->\n```bash\nls\n```\n"))
    assert any("not directly above" in p for p in _problems("<!-- docs-check: long (x) -->\n\n```bash\nls\n```\n"))
    assert any("malformed" in p for p in _problems("<!-- docs-check hardware (x) -->\n```bash\nls\n```\n"))
    assert any(
        "misspelt" in p or "malformed" in p for p in _problems("<!-- doc-check: hardware (x) -->\n```bash\nls\n```\n")
    )
    assert any("installation commands" in p for p in _problems("<!-- docs-check: setup (x) -->\n```bash\nls\n```\n"))
    assert any("never closed" in p for p in _problems("```bash\nleukedge demo\n"))


def test_commands_outside_bash_fences_are_caught() -> None:
    assert any("tag it ```bash" in p for p in _problems("```\nleukedge demo\n```\n"))
    assert any("tag it ```bash" in p for p in _problems("```text\nnice -n 10 python benchmarks/x.py\n```\n"))
    assert any("tag shell commands ```bash" in p for p in _problems("```console\n$ leukedge demo\n```\n"))
    assert _problems("```\nleukedge.preprocess.preprocess (a module, not a command)\n```\n") == []


def test_commands_join_continuations_keep_heredocs_and_drop_comments() -> None:
    body = "# comment\nleukedge convert m.h5 \\\n    --out b/\n\npython - <<'EOF'\nprint(1)\n\nprint(2)\nEOF\nleukedge demo"
    assert commands(body) == [
        (1, "leukedge convert m.h5 --out b/"),
        (4, "python - <<'EOF'\nprint(1)\n\nprint(2)\nEOF"),
        (9, "leukedge demo"),
    ]


def _check(command: str, **kw: bool) -> list[str]:
    return [m for args in cliparse.leukedge_invocations(command) for m in cliparse.check_args(args, **kw)]


def test_cli_lines_are_checked_against_the_real_cli() -> None:
    assert _check("leukedge screen csi://0 --model bundle/ --backend tensorrt --precision int8 --out c.jsonl") == []
    assert _check("nice -n 10 leukedge score a/ b/ --model reference --out r.csv --resume && leukedge doctor") == []
    assert "no such command" in _check("leukedge scren x")[0]
    assert "no option --epoch" in _check("leukedge train d --out m.h5 --epoch 3")[0]
    assert "is not one of" in _check("leukedge screen x --precision int4")[0]
    assert "required option --out" in _check("leukedge train d")[0]
    assert "positional" in _check("leukedge bench extra")[0]
    assert _check("leukedge score INPUT... [--model BUNDLE] [--resume | --overwrite]", synopsis=True) == []
    assert "--frobnicate" in _check("leukedge score INPUT [--frobnicate]", synopsis=True)[0]
    assert cliparse.leukedge_invocations("echo leukedge train; cd leukedge") == []
    assert cliparse.placeholder_tokens(["convert", "m.h5", "--calib-data", "…"]) == ["…"]
