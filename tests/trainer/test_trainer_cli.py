"""``leukedge train`` / ``leukedge evaluate`` through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from leukedge.cli import main


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_help_is_fast_and_loads_no_tensorflow() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from leukedge.cli import main\n"
        "for cmd in ('train', 'evaluate'):\n"
        "    r = CliRunner().invoke(main, [cmd, '--help']); assert r.exit_code == 0, r.output\n"
        "    assert '--out' in r.output or '--report' in r.output\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'sklearn', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_train_then_evaluate_end_to_end(cells6: Path, tmp_path: Path) -> None:
    model = tmp_path / "m.h5"
    r = run(
        "train", cells6, "--out", model, "--epochs", "2", "--width", "0.0625", "--dense", "16",
        "--batch-size", "16", "--val-fraction", "0.34", "--test-fraction", "0.17",
        "--log-ksize", "3", "--log-alpha", "0.5",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "epoch   2/2" in r.output and "saved" in r.output and "test subjects held out: 1, H3" in r.output
    from leukedge.trainer.modelio import read_manifest

    m = read_manifest(model)
    assert m.preprocessing.log.gaussian_ksize == 3 and m.preprocessing.log.alpha == 0.5
    r = run("evaluate", model, cells6, "--bootstrap", "20", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert set(doc["cnn"]["subjects_all"] + doc["cnn"]["subjects_hem"]) == {"1", "H3"}
    r = run("evaluate", model, cells6, "--bootstrap", "20", "--report", tmp_path / "rep")
    assert r.exit_code == 0, r.output
    assert "sensitivity" in r.output and (tmp_path / "rep" / "report.html").is_file()


def test_user_mistakes_exit_with_a_message_not_a_traceback(tmp_path: Path, cells6: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = run("train", tmp_path / "empty", "--out", tmp_path / "m.h5")
    assert r.exit_code == 3 and "Error:" in r.output and "Hint:" in r.output
    assert "Traceback" not in r.output
    r = run("train", cells6, "--out", tmp_path / "m.h5", "--val-subjects", "99")
    assert r.exit_code == 3 and "99" in r.output
    r = run("train", cells6, "--out", tmp_path / "m.h5", "--log-ksize", "4")
    assert r.exit_code == 3 and "--log-ksize is 4" in r.output
    not_ours = tmp_path / "other.h5"
    import h5py

    with h5py.File(not_ours, "w") as f:
        f.attrs["model_config"] = "{}"
    r = run("evaluate", not_ours, cells6)
    assert r.exit_code == 4 and "not a leukedge model" in r.output and "Traceback" not in r.output


def test_evaluate_accepts_reference_like_every_other_command(cells6: Path) -> None:
    r = run("evaluate", "reference", cells6, "--bootstrap", "10", "--subjects", "all", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output[r.output.index("{") :])
    assert doc["model"]["path"] == "reference" and doc["cnn"]["cells"] > 0
