"""Build the packaged reference bundle ``sdk/models/reference/`` from the trainer's reference model.

    .venv/bin/python tools/make_reference_bundle.py \\
        --model ../trainer/artifacts/reference/model.h5 [--split SPLIT.json] [--data ../shared/data/cnmc_sample]

The split JSON (written by ``leukedge train`` next to the model) names the
subjects of each part.  Calibration uses subjects the training did not fit
(the validation subjects); the acceptance gate uses subjects never used in
training or model selection (the test subjects).  Cells are linked, not copied,
into two temporary folders, and ``leukedge convert`` runs on them.  Every
bundle file must stay at or under 20 MB (the package ships them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Set

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "sdk" / "models" / "reference"
MAX_FILE = 20 * 1024 * 1024
CALIB_ENOUGH = 300  # below this many validation cells, auto adds the training subjects
PARTS = {"train": ("train", "training"), "val": ("val", "valid", "validation"), "test": ("test", "heldout", "held_out")}


def split_subjects(split: dict) -> Dict[str, Set[str]]:
    """{"train"|"val"|"test": subjects} from the trainer's split JSON (top level or under "subjects")."""
    table = split.get("subjects", split) if isinstance(split.get("subjects"), dict) else split
    found: Dict[str, Set[str]] = {}
    for part, names in PARTS.items():
        for key, value in table.items():
            if key.lower() in names or key.lower() in (f"{n}_subjects" for n in names):
                found[part] = {str(s).upper() for s in value}
    return found


def find_split(model: Path) -> Optional[Path]:
    """``<model>.split.json``, else ``split.json``, else any JSON beside the model that names subjects."""
    candidates = [model.with_suffix(".split.json"), model.parent / "split.json", *sorted(model.parent.glob("*.json"))]
    for p in candidates:
        if p.is_file():
            data = json.loads(p.read_text())
            if isinstance(data, dict) and split_subjects(data):
                return p
    return None


def link_cells(data: Path, subjects: Set[str], dest: Path) -> int:
    from leukedge.cnmc import parse_cnmc_name
    from leukedge.images import iter_image_files

    n = 0
    for p in iter_image_files([data]):
        name = parse_cnmc_name(p.name)
        if name is not None and name.subject in subjects:
            (dest / name.label).mkdir(parents=True, exist_ok=True)
            (dest / name.label / p.name).symlink_to(p.resolve())
            n += 1
    return n


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=REPO.parent / "trainer" / "artifacts" / "reference" / "model.h5")
    ap.add_argument("--split", type=Path, help="the split JSON [the one .json beside the model that names subjects]")
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("LEUKEDGE_SHARED_DATA", REPO.parent / "shared" / "data")) / "cnmc_sample",
    )
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--calib-method", default="minmax")
    ap.add_argument(
        "--calib-from",
        choices=["auto", "val", "val+train"],
        default="auto",
        help="subjects to calibrate on; auto: the validation subjects, plus the training subjects when the "
        "validation subjects have fewer than 300 cells (calibration fits no weight, so the gate stays honest)",
    )
    args = ap.parse_args(argv)

    split_path = args.split or find_split(args.model)
    if split_path is None:
        sys.exit(f"no split JSON naming train/val/test subjects beside {args.model}; pass --split")
    parts = split_subjects(json.loads(split_path.read_text()))
    if not parts.get("val") or not parts.get("test"):
        sys.exit(f"{split_path}: needs validation and test subjects, found {sorted(parts)}")
    overlap = (parts.get("train", set()) | parts["val"]) & parts["test"]
    if overlap:
        sys.exit(f"{split_path}: test subjects {sorted(overlap)} were also used for training or selection")

    from leukedge.bundle import Bundle
    from leukedge.converters.convert import ConvertOptions, convert_model
    from leukedge.converters.gate import gate_table
    from leukedge.errors import LeukedgeError

    with tempfile.TemporaryDirectory() as tmp:
        # The folder names are what the manifest records as the data's origin.
        calib = Path(tmp) / f"{args.data.name}-calibration-subjects"
        val = Path(tmp) / f"{args.data.name}-test-subjects"
        calib_subjects = set(parts["val"])
        n_calib = link_cells(args.data, calib_subjects, calib)
        if args.calib_from == "val+train" or (args.calib_from == "auto" and n_calib < CALIB_ENOUGH):
            more = parts.get("train", set()) - calib_subjects
            n_calib += link_cells(args.data, more, calib)
            calib_subjects |= more
            print(
                f"calibration: adding the training subjects {sorted(more)} to the validation subjects "
                f"(--calib-from {args.calib_from}; the validation subjects alone hold too few cells)",
                file=sys.stderr,
            )
        n_val = link_cells(args.data, parts["test"], val)
        print(
            f"calibration: {n_calib} cells of subjects {sorted(calib_subjects)}; "
            f"gate: {n_val} cells of subjects {sorted(parts['test'])}",
            file=sys.stderr,
        )
        if args.out.exists():
            shutil.rmtree(args.out)
        options = ConvertOptions(
            out=args.out, calib_data=calib, validate=val, calib_size=max(n_calib, 32), calib_method=args.calib_method
        )
        try:
            result = convert_model(args.model, options, echo=lambda m: print(m, file=sys.stderr))
        except LeukedgeError as err:
            if args.out.is_dir() and (args.out / "manifest.json").is_file():
                print(gate_table(Bundle.load(args.out, verify=False).manifest.parity))
            print(f"Error: {err.message}" + (f"\nHint: {err.hint}" if err.hint else ""), file=sys.stderr)
            return err.exit_code
    big = {p.name: p.stat().st_size for p in args.out.iterdir() if p.stat().st_size > MAX_FILE}
    if big:
        sys.exit(f"bundle files over 20 MB: {big}; the reference must be a smaller model")
    print(gate_table(result.bundle.manifest.parity))
    print(
        f"\nwrote {args.out} ({', '.join(sorted(p.name for p in args.out.iterdir()))}) from {args.model} "
        f"and {split_path.name}; conversion {result.seconds['total']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
