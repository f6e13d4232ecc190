"""'leukedge report' reads every results file 'leukedge score' and 'leukedge screen' write."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from leukedge.cli import main
from leukedge.report.build import build_report
from leukedge.synthetic import make_cell_image
from tests.device.device_helpers import SMALL_SYNTHETIC, tiny_bundle

pytest.importorskip("onnx", reason="the test bundle is written with onnx")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cells")
    for i in range(5):
        Image.fromarray(make_cell_image(i, "all" if i % 2 else "hem", size=128)).save(folder / f"c{i}.png")
    return folder


def _run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_score_then_report(tmp_path, bundle, cells, suffix) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"r{suffix}"
    r = _run("score", cells, "--model", bundle.root, "--out", out, "--workers", "0", "--no-progress")
    assert r.exit_code == 0, r.output
    r = _run("report", out, "--model", bundle.root, "--out", tmp_path / "report.html")
    assert r.exit_code == 0, r.output
    report = build_report(out, model=bundle.root)
    assert report.summary["cells"] == 5 and len(report.fields) == 5 and not report.results.problems


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_screen_then_report(tmp_path, bundle, suffix) -> None:
    out = tmp_path / f"cells{suffix}"
    r = _run("screen", "--model", bundle.root, "--source", SMALL_SYNTHETIC, "--out", out, "--max-frames", "2")
    assert r.exit_code == 0, r.output
    r = _run("report", out, "--model", bundle.root, "--out", tmp_path / "report.html")
    assert r.exit_code == 0, r.output
    assert len(build_report(out, model=bundle.root).fields) == 2
