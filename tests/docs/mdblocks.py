"""Fenced code blocks of the Markdown pages, with the docs-check marker above each.

The convention the docs check enforces (docs/README.md explains it to writers):

* shell commands live in fences tagged ```bash;
* a ```bash block runs in CI unless the line just above its fence is a marker
  ``<!-- docs-check: KIND (why) -->`` with KIND one of ``MARKERS``;
* a ```text block that shows a command's synopsis (``leukedge score INPUT... [--opt]``)
  carries ``<!-- docs-check: synopsis -->``, and its options are checked against the CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# kind -> (needs a reason in parentheses, what it means)
MARKERS = {
    "hardware": (True, "needs hardware CI does not have; leukedge lines are parse-checked, not run"),
    "long": (True, "a measurement or maintenance job of minutes or more; parse-checked, not run"),
    "setup": (True, "installation commands, run by hand from a clean clone (the test command: by .ci/run)"),
    "synopsis": (False, "a ```text block with a command's synopsis; its options are checked"),
}
SETUP_PAGES = (REPO / "README.md", REPO / "docs" / "install.md")
MARKER_RE = re.compile(r"^<!--\s*docs-check:\s*(?P<kind>[a-z-]+)\s*(?:\((?P<why>[^)]*)\))?\s*-->\s*$")
ANY_MARKER_RE = re.compile(r"^\s*<!--.*docs?[-_ ]?check", re.IGNORECASE)  # also catches misspelt markers
HEREDOC_RE = re.compile(r"<<-?\s*['\"]?(?P<tag>[A-Za-z_]+)['\"]?")
FENCE_RE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
# Words that start a shell command: a fence holding such a line must be tagged bash (or be a synopsis).
COMMAND_START = re.compile(
    r"^(\$ )?(leukedge(?:\s|$)|\.venv/bin/|python3? |nice |pip3? |sudo |\./tools/|tools/|cd |export )"
)


@dataclass
class Block:
    page: Path  # absolute
    line: int  # 1-based line of the opening fence
    info: str  # the fence's info string ("bash", "", "python", ...)
    body: str
    marker: str | None  # marker kind, or None
    marker_why: str | None

    @property
    def where(self) -> str:
        return f"{_rel(self.page)}:{self.line}"

    @property
    def lang(self) -> str:
        return self.info.split()[0] if self.info.strip() else ""


class MarkdownProblem(Exception):
    pass


def pages() -> list[Path]:
    """Every page the docs check covers: README.md, docs/*.md, examples/README.md."""
    found = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    ex = REPO / "examples" / "README.md"
    if ex.is_file():
        found.append(ex)
    return found


def _rel(page: Path) -> str:
    try:
        return str(page.relative_to(REPO))
    except ValueError:
        return page.name


def parse(page: Path, text: str | None = None) -> tuple[list[Block], list[str]]:
    """The page's fenced blocks, and the problems found in its markers and fences."""
    lines = (page.read_text(encoding="utf-8") if text is None else text).splitlines()
    rel = _rel(page)
    blocks: list[Block] = []
    problems: list[str] = []
    i = 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        text = lines[i]
        if ANY_MARKER_RE.search(text) and not m:
            mm = MARKER_RE.match(text.strip())
            if not mm:
                problems.append(f"{rel}:{i + 1}: malformed docs-check marker {text.strip()!r}")
            elif mm["kind"] not in MARKERS:
                problems.append(
                    f"{rel}:{i + 1}: unknown docs-check marker {mm['kind']!r} (known: {', '.join(MARKERS)})"
                )
            else:
                needs_why = MARKERS[mm["kind"]][0]
                if needs_why and not (mm["why"] or "").strip():
                    problems.append(
                        f"{rel}:{i + 1}: marker '{mm['kind']}' needs a reason: docs-check: {mm['kind']} (why)"
                    )
                nxt = FENCE_RE.match(lines[i + 1]) if i + 1 < len(lines) else None
                if not nxt:
                    problems.append(f"{rel}:{i + 1}: docs-check marker not directly above a code fence")
        if not m:
            i += 1
            continue
        fence, info = m["fence"], m["info"].strip()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence[0] * len(fence)):
            body.append(lines[i][len(m["indent"]) :] if lines[i].startswith(m["indent"]) else lines[i])
            i += 1
        if i >= len(lines):
            problems.append(f"{rel}:{start + 1}: code fence never closed")
        i += 1
        kind = why = None
        if start > 0:
            mm = MARKER_RE.match(lines[start - 1].strip())
            if mm and mm["kind"] in MARKERS:
                kind, why = mm["kind"], mm["why"]
        blocks.append(Block(page, start + 1, info, "\n".join(body), kind, why))
    for b in blocks:
        problems.extend(_block_problems(b))
    return blocks, problems


def _block_problems(b: Block) -> list[str]:
    out = []
    if b.lang in ("sh", "shell", "console", "zsh", "shell-session"):
        out.append(f"{b.where}: fence tagged {b.lang!r}: tag shell commands ```bash so the docs check sees them")
    if b.marker == "synopsis" and b.lang != "text":
        out.append(f"{b.where}: a synopsis marker goes on a ```text block")
    if b.marker in ("hardware", "long", "setup") and b.lang != "bash":
        out.append(f"{b.where}: marker '{b.marker}' on a ```{b.lang} block; it applies to ```bash blocks")
    if b.marker == "setup" and b.page not in SETUP_PAGES:
        out.append(f"{b.where}: the 'setup' marker is for installation commands (README.md, docs/install.md) only")
    if b.lang != "bash" and b.marker != "synopsis":
        for n, line in enumerate(b.body.splitlines(), start=1):
            if COMMAND_START.match(line.strip()) and b.lang not in ("python", "jsonc", "json"):
                out.append(
                    f"{b.where}: line {b.line + n} looks like a shell command ({line.strip()[:50]!r}) in a "
                    f"```{b.lang or '(untagged)'} block: tag it ```bash (or mark a synopsis)"
                )
                break
    return out


def commands(body: str) -> list[tuple[int, str]]:
    """Logical command lines of a bash block: (0-based line offset, text); comments dropped,
    backslash continuations joined."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    first = 0
    lines = body.splitlines()
    n = -1
    while n + 1 < len(lines):
        n += 1
        line = lines[n].rstrip()
        here = HEREDOC_RE.search(line)
        if here and not pending and not line.lstrip().startswith("#"):
            # a here-document: the command runs to its terminator line, newlines kept
            end = n + 1
            while end < len(lines) and lines[end].strip() != here["tag"]:
                end += 1
            out.append((n, "\n".join(lines[n : end + 1])))
            n = end
            continue
        if not pending:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            first = n
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        out.append((first, " ".join(p.strip() for p in pending)))
        pending = []
    if pending:
        out.append((first, " ".join(p.strip() for p in pending)))
    return out
