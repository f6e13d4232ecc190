#!/usr/bin/env python3
"""Write docs/api.md: the public Python API, from the docstrings and signatures.

    python tools/make_api_docs.py            # rewrite docs/api.md
    python tools/make_api_docs.py --check    # exit 1 if docs/api.md is out of date

The modules and names listed in ``MODULES`` are the API an application uses; everything else
is internal.  ``tests/docs/test_api_reference.py`` fails when the page is out of date.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "api.md"

# module -> the public names documented, in order (None: the module's __all__)
MODULES: dict[str, list[str] | None] = {
    "leukedge": ["Bundle", "Manifest", "BBox", "Cell", "FrameResult"],
    "leukedge.device.screener": ["Screener"],
    "leukedge.bundle": ["write_bundle", "sha256_file"],
    "leukedge.manifest": ["Preprocessing", "LogSpec", "CropSpec", "Decision", "ModelFile"],
    "leukedge.preprocess": ["preprocess", "stack_resized", "enhance", "log_sharpen", "gaussian_kernel_1d"],
    "leukedge.images": ["read_image", "as_rgb8", "iter_image_files"],
    "leukedge.segment": ["segment", "find_cells", "crop_for", "is_single_cell_image", "SegmentParams"],
    "leukedge.results": ["cell_records"],
    "leukedge.sinks": ["Sink", "SinkSet", "CallbackSink"],
    "leukedge.device.runtimes": ["open_runtime", "choose_precision"],
    "leukedge.device.classifier": ["Classifier"],
    "leukedge.device.scoring": ["score_files", "score_labelled", "read_results"],
    "leukedge.synthetic": ["make_cell_image", "make_smear_frame", "write_cell_dataset"],
    "leukedge.cnmc": ["parse_cnmc_name"],
    "leukedge.jsonl": ["JsonlWriter", "iter_jsonl"],
    "leukedge.errors": [
        "LeukedgeError",
        "InvalidInputError",
        "InvalidImageError",
        "BundleError",
        "ManifestError",
        "MissingDependencyError",
        "HardwareUnavailableError",
        "GateFailedError",
        "PartialFailure",
        "run_main",
    ],
}


def _doc(obj: object, *, first_paragraph: bool = False) -> str:
    doc = inspect.getdoc(obj) or ""
    if first_paragraph:
        doc = doc.split("\n\n", 1)[0]
    return doc.strip()


def _sig(obj: object) -> str:
    try:
        text = str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(…)"
    return text.replace(str(REPO), "<repo>")


def _class(name: str, cls: type) -> list[str]:
    init = cls.__dict__.get("__init__")
    sig = _sig(cls) if init is not None or hasattr(cls, "__dataclass_fields__") else "()"
    lines = [f"### class `{name}{sig}`", ""]
    doc = _doc(cls)
    if doc and not doc.startswith(f"{cls.__name__}("):  # skip the docstring dataclasses make up
        lines += [doc, ""]
    if issubclass(cls, BaseException):
        code = getattr(cls, "exit_code", None)
        bases = ", ".join(b.__name__ for b in cls.__bases__)
        lines += [f"Subclass of `{bases}`; CLI exit code {code}.", ""]
        return lines
    members = []
    for attr, value in cls.__dict__.items():
        if attr.startswith("_"):
            continue
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, property):
            members.append(f"- `{attr}` (property): {_doc(value, first_paragraph=True)}".rstrip(": "))
        elif inspect.isfunction(value):
            members.append(f"- `{attr}{_sig(value)}`: {_doc(value, first_paragraph=True)}".rstrip(": "))
    if members:
        lines += [*members, ""]
    return lines


def render() -> str:
    sys.path.insert(0, str(REPO))
    out = [
        "# Python API reference",
        "",
        "Generated from the docstrings by `python tools/make_api_docs.py`; do not edit by hand",
        "(`tests/docs/test_api_reference.py` fails when this page is out of date). The guides:",
        "[device.md](device.md) (`Screener`), [scoring.md](scoring.md) (`score_files`,",
        "`score_labelled`), [results.md](results.md) (sinks), [bundle.md](bundle.md),",
        "[preprocessing.md](preprocessing.md).",
        "",
    ]
    for module_name, names in MODULES.items():
        module = importlib.import_module(module_name)
        out += [f"## `{module_name}`", ""]
        if _doc(module):
            out += [_doc(module, first_paragraph=True), ""]
        for name in names or list(getattr(module, "__all__", [])):
            obj = getattr(module, name)
            if inspect.isclass(obj):
                out += _class(name, obj)
            else:
                out += [f"### `{name}{_sig(obj)}`", ""]
                if _doc(obj):
                    out += [_doc(obj), ""]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check that docs/api.md is up to date")
    args = ap.parse_args()
    text = render()
    if args.check:
        if OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT} is out of date: run python tools/make_api_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
