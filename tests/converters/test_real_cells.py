"""Conversion on real C-NMC cells: calibration and gate on disjoint subjects of ../shared/data/cnmc_sample."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from leukedge.bundle import Bundle
from leukedge.cnmc import parse_cnmc_name
from leukedge.converters.convert import ConvertOptions, convert_model
from leukedge.errors import GateFailedError
from tests.converters.tinymodels import trained_tiny


def _link_subjects(cnmc: Path, dest: Path, subjects: set, per_class: int) -> Path:
    taken = {"all": 0, "hem": 0}
    for p in sorted(cnmc.rglob("*.png")):
        name = parse_cnmc_name(p.name)
        if name is None or name.subject not in subjects or taken[name.label] >= per_class:
            continue
        (dest / name.label).mkdir(parents=True, exist_ok=True)
        (dest / name.label / p.name).symlink_to(p)
        taken[name.label] += 1
    return dest


@pytest.mark.shared_data
@pytest.mark.slow
def test_gate_runs_on_real_cells_of_unseen_subjects(cnmc_dir: Path, tmp_path_factory) -> None:
    root = tmp_path_factory.getbasetemp() / "tiny"
    root.mkdir(exist_ok=True)
    work = tmp_path_factory.mktemp("real")
    calib = _link_subjects(cnmc_dir, work / "calib", {"2", "16", "H22"}, per_class=40)
    val = _link_subjects(cnmc_dir, work / "val", {"23", "H1", "H2", "H4", "H5", "H6", "H7", "H11", "H12", "H15"}, 60)
    options = ConvertOptions(out=work / "bundle", calib_data=calib, validate=val, calib_size=64, max_excluded=1)
    with contextlib.suppress(GateFailedError):  # the tiny model never saw real cells: either INT8 verdict
        convert_model(trained_tiny(root), options, echo=lambda _m: None)
    manifest = Bundle.load(work / "bundle").manifest
    parity, prov = manifest.parity, manifest.provenance["conversion"]
    assert parity["fp32"]["passed"] and parity["fp32"]["cells"] == 78  # 60 ALL + the 18 hem cells there are
    assert parity["fp32"]["source"].startswith("validate")
    m = parity["int8"]["metrics"]
    assert m["cells"] == 78 and m["positives"] == 60
    assert parity["int8"]["passed"] in (True, False)
    calib_subjects, val_subjects = set(prov["calibration_data"]["subjects"]), set(prov["validation_data"]["subjects"])
    assert calib_subjects and val_subjects and not calib_subjects & val_subjects
