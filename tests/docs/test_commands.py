"""The docs check: every command shown in README.md, docs/*.md and examples/README.md either
runs here (in CI, on the real sample data in ../shared/data and generated data) or is marked,
on the line above its fence, as needing hardware or as a long job; marked commands are still
checked against the real CLI.

* ``test_markers_and_fences``: markers are known and well placed; shell commands are in
  ```bash fences (so nothing is skipped by a missing tag).
* ``test_leukedge_lines_parse``: every ``leukedge …`` line in every ```bash block (marked or
  not) and every synopsis names a real subcommand and real options with valid choices.
* ``test_scripts_and_their_options_exist``: ``python path/script.py --opt`` lines name a script
  in the repository that defines those options.
* ``test_python_blocks_compile``: every ```python block is valid Python.
* ``test_page_commands_run[page]``: the page's unmarked ```bash blocks run in order, each
  command in its own ``bash`` from a scratch copy of the repository root (top-level entries
  linked, ``../shared/data`` reachable, the test's Python environment first on PATH), so a
  command may use what an earlier one on the page wrote.  ``CI_OVERRIDES`` below is the only
  place a command is changed for CI, and each entry must still match a command.
* ``test_readme_test_command_is_what_ci_runs``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import IN_CI, SHARED_DATA
from tests.docs import cliparse
from tests.docs.mdblocks import REPO, Block, commands, pages, parse

# Placeholders for a user's own data, and what stands in for them in CI (any page; whole paths only).
# HELDOUT is built in the scratch folder: links to the cnmc_sample cells of 7 subjects (66 cells) that
# stand in for a user's held-out data.  They were the earlier reference model's test subjects; the
# current reference model trains on every subject of the pool (docs/accuracy.md), so none is unseen by it.
HELDOUT = "cnmc-test-subjects"
PATH_STANDINS = {
    "path/to/C-NMC": "../shared/data/cnmc_sample",
    "path/to/heldout": HELDOUT,
    "path/to/cells": "../shared/data/cnmc_sample",
    "slides/": "../shared/data/smear_frames/JPEGImages",
    "smears/": "../shared/data/smear_frames/JPEGImages",
}
# The only other changes made to documented commands for CI, each with its reason.
# (page, regex, replacement, why)
CI_OVERRIDES: list[tuple[str, str, str, str]] = [
    ("README.md", r"--epochs 30\b", "--epochs 1 --width 0.0625", "CI time: one epoch of a narrow model"),
    ("README.md", r"(leukedge convert .*--calib-data \S+)", r"\1 --calib-size 64", "CI time: two calibration batches"),
    ("README.md", r"--max-frames 100\b", "--max-frames 3", "CI time: a synthetic 1080p frame takes ~1 s here"),
    (
        "docs/training.md",
        r"(leukedge train \S+ --out model\.h5)",
        r"\1 --epochs 1 --width 0.0625",
        "CI time: one epoch of a narrow model",
    ),
    (
        "docs/device.md",
        r"--seconds 10 --repeat 5\b",
        "--seconds 2 --repeat 1",
        "CI time: one short repeat checks the benchmark runs; the figures need a calm machine",
    ),
]

COMMAND_TIMEOUT_S = 240

ALL_PAGES = pages()


def _blocks(page: Path) -> list[Block]:
    return parse(page)[0]


def _all_blocks() -> list[Block]:
    return [b for p in ALL_PAGES for b in _blocks(p)]


def _runnable(page: Path) -> list[Block]:
    return [b for b in _blocks(page) if b.lang == "bash" and b.marker is None]


def _rel(p: Path) -> str:
    return str(p.relative_to(REPO))


RUN_PAGES = [p for p in ALL_PAGES if _runnable(p)]


def test_markers_and_fences() -> None:
    problems = [msg for p in ALL_PAGES for msg in parse(p)[1]]
    assert not problems, "\n".join(problems)


def test_leukedge_lines_parse() -> None:
    problems = []
    checked = 0
    for b in _all_blocks():
        if b.lang == "bash":
            for off, cmd in commands(b.body):
                for args in cliparse.leukedge_invocations(cmd):
                    checked += 1
                    for msg in cliparse.check_args(args):
                        problems.append(f"{_rel(b.page)}:{b.line + 1 + off}: {msg}\n    {cmd}")
                    if b.marker is None and cliparse.placeholder_tokens(args):
                        problems.append(
                            f"{_rel(b.page)}:{b.line + 1 + off}: placeholder {cliparse.placeholder_tokens(args)} "
                            f"in a command that runs in CI; give a real value or mark the block\n    {cmd}"
                        )
        elif b.marker == "synopsis":
            for off, cmd in commands(b.body):
                for args in cliparse.leukedge_invocations(re.sub(r"[\[\]|]", " ", cmd)):
                    checked += 1
                    problems += [
                        f"{_rel(b.page)}:{b.line + 1 + off}: {m}" for m in cliparse.check_args(args, synopsis=True)
                    ]
    assert checked > 20, f"only {checked} leukedge command lines found: is the parser broken?"
    assert not problems, "\n".join(problems)


SCRIPT_RE = re.compile(r"(?:^|\s)(?:\S*/)?python3?\s+(?P<script>[\w./-]+\.py)(?P<args>[^|;&>]*)")


def test_scripts_and_their_options_exist() -> None:
    problems = []
    for b in _all_blocks():
        if b.lang != "bash":
            continue
        for off, cmd in commands(b.body):
            for m in SCRIPT_RE.finditer(cmd):
                script = REPO / m["script"]
                where = f"{_rel(b.page)}:{b.line + 1 + off}"
                if not script.is_file():
                    problems.append(f"{where}: {m['script']} does not exist in the repository")
                    continue
                source = script.read_text(encoding="utf-8")
                for opt in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", m["args"]):
                    if f'"{opt}"' not in source and f"'{opt}'" not in source:
                        problems.append(f"{where}: {m['script']} has no option {opt}")
    assert not problems, "\n".join(problems)


REPO_PATH_RE = re.compile(r"(?:^|[\s=])(?:\./)?((?:tools|benchmarks|examples|sdk|\.ci)/[\w./-]*\w)")


def test_repository_paths_named_in_commands_exist() -> None:
    problems = []
    named = 0
    for b in _all_blocks():
        if b.lang != "bash":
            continue
        for off, cmd in commands(b.body):
            for path in REPO_PATH_RE.findall(cmd):
                named += 1
                if not (REPO / path).exists():
                    problems.append(f"{_rel(b.page)}:{b.line + 1 + off}: {path} does not exist in the repository")
    assert named >= 5, f"only {named} repository paths found in commands: is the pattern broken?"
    assert not problems, "\n".join(problems)


def test_python_blocks_compile() -> None:
    problems = []
    for b in _all_blocks():
        if b.lang == "python":
            try:
                compile(b.body, b.where, "exec")
            except SyntaxError as exc:
                problems.append(f"{b.where}: {exc}")
    assert not problems, "\n".join(problems)


def test_every_ci_override_matches_a_command() -> None:
    for page, pattern, _, why in CI_OVERRIDES:
        cmds = [c for b in _runnable(REPO / page) for _, c in commands(b.body)]
        assert any(re.search(pattern, c) for c in cmds), f"CI override {pattern!r} ({why}) matches nothing in {page}"


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    execs = [line.split(None, 1)[1].strip() for line in ci.splitlines() if line.startswith("exec ")]
    assert len(execs) == 1, ".ci/run should end in one 'exec <the README's test command>'"
    setup = [b for b in _blocks(REPO / "README.md") if b.marker == "setup"]
    assert len(setup) == 2, "README.md: expected two set-up blocks (install + demo, and the test command)"
    shown = [c for b in setup for _, c in commands(b.body)]
    assert execs[0] in shown, f"README's test command {shown} differs from what .ci/run runs ({execs[0]!r})"
    install = " ".join(shown)
    assert "pip install -e ." in install and "leukedge demo" in install


def _standin_re(placeholder: str) -> str:
    return r"(?<![\w/.-])" + re.escape(placeholder) + r"(?![\w.-]|/\w)"


def test_every_path_standin_is_used() -> None:
    cmds = [c for p in RUN_PAGES for b in _runnable(p) for _, c in commands(b.body)]
    for placeholder in PATH_STANDINS:
        assert any(re.search(_standin_re(placeholder), c) for c in cmds), f"stand-in for {placeholder!r} is unused"


def _override(page: Path, cmd: str) -> str:
    for placeholder, real in PATH_STANDINS.items():
        cmd = re.sub(_standin_re(placeholder), real, cmd)
    for p, pattern, repl, _ in CI_OVERRIDES:
        if REPO / p == page:
            cmd = re.sub(pattern, repl, cmd)
    return cmd


def _workspace(tmp: Path) -> Path:
    """A scratch repository root: top-level entries linked, outputs land here, ../shared/data reachable."""
    ws = tmp / "repo"
    ws.mkdir()
    for entry in REPO.iterdir():
        if entry.name not in (".git",):
            (ws / entry.name).symlink_to(entry)
    if SHARED_DATA.is_dir():
        (tmp / "shared").mkdir()
        (tmp / "shared" / "data").symlink_to(SHARED_DATA)
        _link_heldout(ws / HELDOUT)
    return ws


HELDOUT_SUBJECTS = ("16", "3", "11", "21", "H2", "H7", "H15")


def _link_heldout(dest: Path) -> None:
    """HELDOUT: the cnmc_sample cells of HELDOUT_SUBJECTS, as all/ and hem/ links."""
    from leukedge.cnmc import parse_cnmc_name

    test = set(HELDOUT_SUBJECTS)
    for label in ("all", "hem"):
        (dest / label).mkdir(parents=True)
        for f in sorted((SHARED_DATA / "cnmc_sample" / label).iterdir()):
            name = parse_cnmc_name(f.name)
            if name is not None and name.subject in test:
                (dest / label / f.name).symlink_to(f)


def _env(tmp: Path) -> dict[str, str]:
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CACHE_HOME"] = str(tmp / "cache")
    env["MPLBACKEND"] = "Agg"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.pop("LEUKEDGE_TOKEN", None)
    return env


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("page", RUN_PAGES, ids=[_rel(p) for p in RUN_PAGES])
def test_page_commands_run(page: Path, tmp_path: Path) -> None:
    if not (Path(sys.executable).parent / "leukedge").exists():
        pytest.fail(f"no leukedge console script beside {sys.executable}: install the repository into this environment")
    if not SHARED_DATA.is_dir() and not IN_CI:
        pytest.skip(f"{SHARED_DATA} is absent; the documented commands use the real sample data")
    ws = _workspace(tmp_path)
    env = _env(tmp_path)
    timings = []
    for b in _runnable(page):
        for off, shown in commands(b.body):
            cmd = _override(page, shown)
            t0 = time.monotonic()
            try:
                proc = subprocess.run(
                    ["bash", "-o", "pipefail", "-c", cmd],
                    cwd=ws,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=COMMAND_TIMEOUT_S,
                )
            except subprocess.TimeoutExpired as exc:
                out = (
                    (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
                )
                pytest.fail(
                    f"{_rel(page)}:{b.line + 1 + off}: timed out after {COMMAND_TIMEOUT_S} s: {cmd}\n{out[-3000:]}"
                )
            timings.append((round(time.monotonic() - t0, 1), shlex.split(cmd)[0:3]))
            if proc.returncode != 0:
                note = f" (run as: {cmd})" if cmd != shown else ""
                pytest.fail(
                    f"{_rel(page)}:{b.line + 1 + off}: exit {proc.returncode}: {shown}{note}\n"
                    f"--- output (last 4000 characters) ---\n{proc.stdout[-4000:]}"
                )
    print(f"{_rel(page)}: {timings}")
