"""A run killed with SIGKILL at random moments, then resumed, scores every input exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from leukedge.device.scoring import read_results, score_files
from leukedge.synthetic import make_cell_image, make_smear_frame
from tests.device.device_helpers import score_bundles

pytest.importorskip("onnx", reason="the test bundle is written with onnx")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return score_bundles().build_onnx_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """300 cells and 8 smear frames (several cells each, so images span batches)."""
    root = tmp_path_factory.mktemp("crash_in")
    for i in range(300):
        label = "all" if i % 2 else "hem"
        subject = str(i % 4 + 1) if label == "all" else f"H{i % 4 + 1}"
        Image.fromarray(make_cell_image(i, label, size=160)).save(root / f"UID_{subject}_{i}_1_{label}.png")
    for i in range(8):
        frame, _ = make_smear_frame(50 + i, width=900, height=700, cells=4)
        Image.fromarray(frame).save(root / f"smear_{i}.png")
    return root


def _children(pid: int) -> list:
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(d.name))
    return found


def _marker(out: Path) -> int:
    """How far a run has got: bytes of results (of the part files, for Parquet)."""
    parts = out.with_name(out.name + ".parts")
    if out.suffix == ".parquet":
        return sum(p.stat().st_size for p in parts.glob("part-*.parquet")) if parts.exists() else 0
    return out.stat().st_size if out.exists() else 0


def _wait_for_progress(out: Path, proc: subprocess.Popen, timeout: float) -> None:
    """Until the run has written something new, or ``timeout`` seconds."""
    start = _marker(out)
    deadline = time.monotonic() + timeout
    while _marker(out) <= start + 200 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


def _wait_for_first_output(out: Path, proc: subprocess.Popen, timeout: float) -> None:
    """Until the run has written its first results, or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while _marker(out) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.parametrize("suffix, kills", [(".jsonl", 5), (".csv", 3), (".parquet", 3)])
def test_sigkill_then_resume_yields_every_input_exactly_once(inputs, bundle, tmp_path, suffix, kills) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs Linux /proc to find worker processes")
    reference = tmp_path / "reference.jsonl"
    score_files([inputs], reference, model=bundle.root, workers=0, batch_size=3, progress=False)
    expected = {r["source"]: r for r in read_results(reference) if r["cell"] in (0, None)}
    out = tmp_path / f"r{suffix}"
    cmd = [sys.executable, "-m", "leukedge", "score", str(inputs), "--model", str(bundle.root), "--out", str(out)]
    cmd += ["--resume", "--batch-size", "3", "--workers", "2", "--no-progress"]
    rng = np.random.default_rng(int.from_bytes(suffix.encode(), "little"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed_mid_run = 0
    logs: list = []
    for k in range(kills):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        if k == 0:  # during start-up, or as the first results land (a calm machine scores 300 cells in < 1 s)
            _wait_for_first_output(out, proc, float(rng.uniform(0.05, 0.8)))
        else:
            _wait_for_progress(out, proc, float(rng.uniform(0.8, 3.0)))  # then kill at a random moment
            time.sleep(float(rng.uniform(0.0, 0.05)))
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        output, _ = proc.communicate()
        logs.append(f"run {k}: exit {proc.returncode}: {output.decode(errors='replace')[-600:]}")
        killed_mid_run += proc.returncode == -signal.SIGKILL and k > 0
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = [w for w in workers if _alive(w)]
        for w in orphans:
            os.kill(w, signal.SIGKILL)
        assert not orphans, "worker processes outlived the killed run"
    assert killed_mid_run >= 1, "the runs finished before they could be killed:\n" + "\n".join(logs)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = list(read_results(out))
    per_image = Counter(r["source"] for r in rows)
    assert set(per_image) == set(expected), "an input is missing or extra"
    for source, n in per_image.items():
        assert n == max(1, expected[source]["n_cells"]), f"{source}: {n} rows"
    first = {r["source"]: r for r in rows if r["cell"] in (0, None)}
    for source, row in first.items():
        assert row["p_all"] == expected[source]["p_all"] and row["bbox"] == expected[source]["bbox"]
