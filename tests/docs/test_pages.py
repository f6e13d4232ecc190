"""The reference pages stay in step with the code they describe.

* every field of the manifest dataclasses is described in docs/bundle.md;
* the per-cell results fields in docs/results.md are exactly ``leukedge.results.CELL_FIELDS``
  (and what ``cell_records`` emits, for frames with and without cells);
* the exit-code table in docs/troubleshooting.md matches ``leukedge.errors``, and every
  ``Error: …`` message it quotes still exists in the source;
* every page in docs/ is listed in docs/README.md, and relative links resolve.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re

import leukedge.errors as errors
from leukedge import manifest as mf
from leukedge.results import CELL_FIELDS, cell_records
from leukedge.types import BBox, Cell, FrameResult
from tests.docs.mdblocks import REPO, pages

DOCS = REPO / "docs"


def _text(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _dotted_fields(cls: type, prefix: str) -> list[str]:
    out = []
    hints = {f.name: f for f in dataclasses.fields(cls)}
    for name, f in hints.items():
        path = f"{prefix}{name}"
        out.append(path)
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out += _dotted_fields(type(default), path + ".")
    return out


def test_bundle_page_describes_every_manifest_field() -> None:
    page = _text("bundle.md")
    fields = _dotted_fields(mf.Manifest, "")
    fields += [f"files.<key>.{f.name}" for f in dataclasses.fields(mf.ModelFile)]
    assert "preprocessing.log.alpha" in fields and "decision.indeterminate" in fields
    missing = [f for f in fields if f"`{f}`" not in page]
    assert not missing, f"docs/bundle.md does not describe manifest field(s): {missing}"


def test_bundle_page_names_every_file_key_of_the_reference_bundle() -> None:
    from leukedge.bundle import Bundle

    page = _text("bundle.md")
    keys = Bundle.load("reference", verify=False).manifest.files
    missing = [k for k in keys if f"`files.{k}`" not in page]
    assert not missing, f"docs/bundle.md does not name file key(s) {missing}"


def _documented_cell_fields() -> list[str]:
    """The field names of the first table under 'The results schema' in docs/results.md."""
    text = _text("results.md")
    section = text.split("## The results schema", 1)[1]
    rows = []
    for line in section.splitlines():
        m = re.match(r"^\| `([a-z_]+)` \|", line)
        if m:
            rows.append(m.group(1))
        elif rows and not line.startswith("|"):
            break
    return rows


def test_results_page_lists_exactly_the_emitted_fields() -> None:
    documented = _documented_cell_fields()
    # `crop` is added by the crop store with --save-crops; everything else comes from cell_records.
    assert [f for f in documented if f != "crop"] == list(CELL_FIELDS)
    cell = Cell(index=0, bbox=BBox(1, 2, 3, 4), area=9, p_all=0.7, label="all")
    with_cells = FrameResult(index=3, source="s", t_capture=1.0, t_result=2.0, cells=[cell], width=8, height=8)
    without = FrameResult(index=4, source="s", t_capture=1.0, t_result=2.0, cells=[], width=8, height=8)
    for result in (with_cells, without):
        for record in cell_records(result, "0123456789ab"):
            assert list(record) == list(CELL_FIELDS)
    assert "frame without cells" in _text("results.md") or "no cell was found" in _text("results.md")


def _backticked_names(table_start: str) -> set[str]:
    """Every `name` in the first column of the table whose header starts with ``table_start``."""
    text = _text("results.md")
    rows = text.split(table_start, 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return {n for row in rows for n in re.findall(r"`([a-z_0-9]+)`", row.split("|")[1])}


def test_results_page_lists_the_mqtt_payload_fields() -> None:
    from leukedge.report.counts import CellTally
    from leukedge.sinks.mqtt import frame_payload
    from leukedge.sinks.summary import RunningSummary

    cell = Cell(index=0, bbox=BBox(1, 2, 3, 4), area=9, p_all=0.7, label="all")
    frame = FrameResult(index=3, source="s", t_capture=1.0, t_result=2.0, cells=[cell], width=8, height=8)
    cells_fields = set(frame_payload(frame, device_id="d", model="m"))
    assert _backticked_names("| `cells` payload field") == cells_fields
    cell_keys = set(cell.to_dict())
    cells_row = next(r for r in _text("results.md").splitlines() if r.startswith("| `cells` | list |"))
    assert cell_keys <= set(re.findall(r"`([a-z_]+)`", cells_row))
    summary_fields = {"schema", "device", "t", "mqtt"} | set(RunningSummary(model="m").to_dict())
    assert set(CellTally().summary()) <= summary_fields
    assert _backticked_names("| `summary` payload field") == summary_fields


def test_troubleshooting_exit_codes_match_the_error_classes() -> None:
    page = _text("troubleshooting.md")
    documented = {cls: int(code) for code, cls in re.findall(r"^\| (\d+) \| `(\w+)` \|", page, re.M)}
    classes: dict[str, int] = {}
    for name, obj in vars(errors).items():
        if isinstance(obj, type) and issubclass(obj, errors.LeukedgeError):
            error_class: type[errors.LeukedgeError] = obj
            classes[name] = error_class.exit_code
    assert documented, "no exit-code table found in docs/troubleshooting.md"
    assert documented == classes


ERROR_CLASSES = {
    name for name, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, errors.LeukedgeError)
}


def _argument(node: ast.expr) -> str:
    """``{arg('preprocess', 'cuda')}`` as the CLI prints it (``--preprocess cuda``); anything else: ".*?"."""
    from leukedge.arguments import arg, flag, for_cli

    call = getattr(node, "value", None)
    if not (isinstance(call, ast.Call) and getattr(call.func, "id", "") == "arg" and len(call.args) == 2):
        return ".*?"
    name, value = call.args
    if not isinstance(name, ast.Constant):
        return ".*?"
    if isinstance(value, ast.Constant):
        return re.escape(for_cli(arg(name.value, value.value)))
    return re.escape(flag(name.value) + " ") + ".*?"


def _pattern(node: ast.expr) -> str:
    """A regex for the text an expression makes: literal parts exact, computed parts anything."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        return "".join(_pattern(v) if isinstance(v, ast.Constant) else _argument(v) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _pattern(node.left) + _pattern(node.right)
    if isinstance(node, ast.IfExp):
        return f"(?:{_pattern(node.body)}|{_pattern(node.orelse)})"
    return ".*?"


def _message_patterns() -> list[re.Pattern[str]]:
    """Every message given to a leukedge error class in the package sources, as a regex."""
    out = []
    for folder in ("sdk", "trainer", "converters", "device"):
        for f in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and node.args:
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    pattern = _pattern(node.args[0]) if name in ERROR_CLASSES else ""
                    # messages made wholly elsewhere (e.g. exc.message) would match anything: skip them
                    if len(re.sub(r"\.\*\?|\\|\(\?:|[|)]", "", pattern)) >= 8:
                        out.append(re.compile(pattern, re.S))
    return out


def test_troubleshooting_messages_exist_in_the_source() -> None:
    page = _text("troubleshooting.md")
    patterns = _message_patterns()
    assert len(patterns) > 150, f"only {len(patterns)} error messages found in the source: is the scan broken?"
    quoted = [" ".join(m.split()) for m in re.findall(r"\*\*`Error: (.+?)`\*\*", page, re.S)]
    assert len(quoted) >= 60, f"only {len(quoted)} quoted errors found: is the page's format intact?"
    stale = [msg for msg in quoted if not any(p.fullmatch(msg) for p in patterns)]
    assert not stale, "docs/troubleshooting.md quotes message(s) no error in the source can print:\n" + "\n".join(stale)


def test_index_lists_every_page() -> None:
    index = _text("README.md")
    missing = [p.name for p in DOCS.glob("*.md") if p.name != "README.md" and f"]({p.name})" not in index]
    assert not missing, f"docs/README.md does not link {missing}"


LINK_RE = re.compile(r"\]\(([^)\s]+)\)")


def test_relative_links_resolve() -> None:
    broken = []
    for page in pages():
        for target in LINK_RE.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def test_anchors_resolve() -> None:
    broken = []
    for page in pages():
        for target in LINK_RE.findall(page.read_text(encoding="utf-8")):
            if "#" not in target or re.match(r"^[a-z]+:", target):
                continue
            path, anchor = target.split("#", 1)
            dest = (page.parent / path) if path else page
            if not dest.is_file() or dest.suffix != ".md":
                continue
            heads = {_anchor(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(encoding="utf-8"), re.M)}
            if anchor not in heads:
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, "links to missing headings:\n" + "\n".join(broken)
