"""Which package may import which (docs/design.md, "Which package imports which"), read from the sources.

The core (``sdk/`` → ``leukedge``) never imports the trainer, the converters or
the device at module level (the CLI and ``leukedge.Screener`` reach them lazily);
among those three, lazy imports included, the imports point one way: trainer →
device, converters → device; the device imports neither.  Inside the core, the
sinks do not import the report (the report reads what the sinks wrote).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {
    "sdk": "leukedge",
    "trainer": "leukedge.trainer",
    "converters": "leukedge.converters",
    "device": "leukedge.device",
}
OUTER = ("trainer", "converters", "device")
ALLOWED = {("trainer", "device"), ("converters", "device")}  # between the outer packages, lazy imports included


def package_of(module: str) -> str:
    """``sdk``, ``trainer``, ``converters``, ``device`` or "" (not leukedge) for an imported module name."""
    for folder in OUTER:
        name = FOLDERS[folder]
        if module == name or module.startswith(name + "."):
            return folder
    return "sdk" if module == "leukedge" or module.startswith("leukedge.") else ""


def _type_checking_only(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def imports(tree: ast.Module) -> Iterator[Tuple[str, bool]]:
    """(module, at module level) for every import in a module; ``if TYPE_CHECKING:`` blocks are left out."""

    def walk(nodes: List[ast.stmt], top: bool) -> Iterator[Tuple[str, bool]]:
        for node in nodes:
            if isinstance(node, ast.If) and _type_checking_only(node):
                continue
            if isinstance(node, ast.Import):
                yield from ((alias.name, top) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                yield node.module, top
            inner_top = top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            for field in ("body", "orelse", "finalbody", "handlers"):
                children = getattr(node, field, None)
                if isinstance(children, list):
                    yield from walk([c for c in children if isinstance(c, ast.AST)], inner_top)  # type: ignore[misc]

    yield from walk(tree.body, True)


def edges() -> Dict[Tuple[str, str], Set[str]]:
    """(from folder, to folder) → the files that make that import, lazy ones included."""
    found: Dict[Tuple[str, str], Set[str]] = {}
    for folder in FOLDERS:
        for path in (REPO / folder).rglob("*.py"):
            for module, _top in imports(ast.parse(path.read_text(encoding="utf-8"))):
                target = package_of(module)
                if target and target != folder:
                    found.setdefault((folder, target), set()).add(str(path.relative_to(REPO)))
    return found


def test_the_core_imports_no_outer_package_at_module_level() -> None:
    bad = []
    for path in (REPO / "sdk").rglob("*.py"):
        for module, top in imports(ast.parse(path.read_text(encoding="utf-8"))):
            if top and package_of(module) in OUTER:
                bad.append(f"{path.relative_to(REPO)} imports {module}")
    assert not bad, "the core must reach trainer/converters/device lazily (inside functions):\n" + "\n".join(bad)


def test_trainer_converters_and_device_import_each_other_one_way_only() -> None:
    between = {k: v for k, v in edges().items() if k[0] in OUTER and k[1] in OUTER}
    forbidden = {f"{a} → {b}: {sorted(files)}" for (a, b), files in between.items() if (a, b) not in ALLOWED}
    assert not forbidden, "imports against the direction in docs/design.md:\n" + "\n".join(sorted(forbidden))


def test_the_sinks_do_not_import_the_report() -> None:
    bad = []
    for path in (REPO / "sdk" / "sinks").rglob("*.py"):
        for module, _top in imports(ast.parse(path.read_text(encoding="utf-8"))):
            if module == "leukedge.report" or module.startswith("leukedge.report."):
                bad.append(f"{path.relative_to(REPO)} imports {module}")
    assert not bad, "what sinks and report share lives in leukedge.tally:\n" + "\n".join(bad)


def test_the_checks_see_an_import_that_breaks_the_rules() -> None:
    """The scanner itself: a lazy device → converters import and a module-level core import are seen."""
    lazy = ast.parse("def f():\n    from leukedge.converters.trt_engine import x\n")
    assert [(package_of(m), top) for m, top in imports(lazy)] == [("converters", False)]
    top = ast.parse("import leukedge.device.pipeline\nif TYPE_CHECKING:\n    import leukedge.trainer\n")
    assert [(package_of(m), t) for m, t in imports(top)] == [("device", True)]
