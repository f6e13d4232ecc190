"""`leukedge score --cluster` on a real two-node Ray cluster started on this machine.

Both nodes do work; the results equal one machine's; a worker node killed mid-run and
a driver killed with SIGKILL lose nothing and duplicate nothing on resume; a node
that cannot see the bundle, GPUs asked of a cluster without any, an unreachable
address and another Ray version each stop the run with a clear error before work.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import List

import pytest

from leukedge.device.scoring import read_results, score_files
from leukedge.device.scoring.cluster import ClusterOptions
from leukedge.errors import ClusterError, MissingDependencyError
from leukedge.extras import has
from tests.conftest import REPO, SHARED_DATA
from tests.device.ray_cluster import RayTestCluster, can_hide_folders, free_port

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.slow,
    pytest.mark.skipif(not has("ray"), reason="needs the cluster extra: pip install 'leukedge[cluster]'"),
]

CNMC = SHARED_DATA / "cnmc_sample"
REFERENCE = REPO / "sdk" / "models" / "reference"


@pytest.fixture(scope="module")
def hidden(tmp_path_factory) -> Path:
    """A folder the worker node cannot see: a copy of the bundle and a few images."""
    root = tmp_path_factory.mktemp("driver_only")
    shutil.copytree(REFERENCE, root / "bundle")
    (root / "imgs").mkdir()
    for f in sorted((CNMC / "all").glob("*.png"))[:40]:
        shutil.copy(f, root / "imgs" / f.name)
    return root


@pytest.fixture(scope="module")
def cluster(hidden):
    c = RayTestCluster(hide_from_worker=hidden if can_hide_folders() else None)
    c.hides = can_hide_folders()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> List[str]:
    """The C-NMC sample (553 real cells) and one file that is not an image."""
    bad = tmp_path_factory.mktemp("bad") / "UID_9_9_9_all.png"
    bad.write_bytes(b"not a png")
    return [str(CNMC), str(bad)]


def _opts(cluster, **kw) -> ClusterOptions:
    return ClusterOptions(cluster.address, connect_timeout_s=60, start_timeout_s=120, chunk=8, **kw)


def _sources(path: Path) -> Counter:
    return Counter(r["source"] for r in read_results(path) if r["cell"] in (0, None))


def _assert_same_rows(a: Path, b: Path) -> None:
    rows_a, rows_b = list(read_results(a)), list(read_results(b))
    assert [r["source"] for r in rows_a] == [r["source"] for r in rows_b]  # same images, same order
    assert [r["label"] for r in rows_a] == [r["label"] for r in rows_b]
    for x, y in zip(rows_a, rows_b):
        assert abs(x["p_all"] - y["p_all"]) <= 1e-6, (x, y)
        assert {k: v for k, v in x.items() if k != "p_all"} == {k: v for k, v in y.items() if k != "p_all"}


@pytest.fixture(scope="module")
def one_machine(inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single") / "single.jsonl"
    s = score_files(inputs, out, model="reference", workers=1, mode="cells", progress=False)
    assert s.scored == 553 and len(s.failed) == 1
    return out


def test_both_nodes_score_and_results_equal_one_machine(cluster, inputs, one_machine, tmp_path) -> None:
    out = tmp_path / "cluster.jsonl"
    s = score_files(inputs, out, model="reference", mode="cells", progress=False, cluster=_opts(cluster, workers=2))
    assert s.scored == 553
    assert set(s.nodes) == set(cluster.node_ids.values()), s.nodes  # the head and node_b both scored
    assert all(n > 0 for n in s.nodes.values()) and sum(s.nodes.values()) == 554
    assert [Path(p).name for p, _ in s.failed] == ["UID_9_9_9_all.png"]  # a bad file is a recorded failure
    assert "not a readable image" in s.failed[0][1] and s.errors_path is not None and s.errors_path.exists()
    _assert_same_rows(out, one_machine)
    before = out.read_bytes()
    again = score_files([CNMC], out, mode="cells", resume=True, progress=False, cluster="127.0.0.1:1")
    assert (again.already_done, again.scored, out.read_bytes()) == (553, 0, before)  # nothing to do: no connection


def test_bundle_missing_on_a_worker_node_stops_before_work(cluster, inputs, hidden, tmp_path) -> None:
    if not cluster.hides:
        pytest.skip("hiding a folder from one node needs root and unshare")
    out = tmp_path / "r.csv"
    with pytest.raises(ClusterError) as err:
        score_files(inputs, out, model=hidden / "bundle", progress=False, cluster=_opts(cluster, workers=2))
    assert "cannot load the model" in err.value.message and str(hidden / "bundle") in err.value.message
    assert "same absolute path" in (err.value.hint or "")
    assert [r for r in read_results(out)] == []  # nothing was scored


def test_images_missing_on_a_worker_node_are_recorded_failures(cluster, hidden, tmp_path) -> None:
    if not cluster.hides:
        pytest.skip("hiding a folder from one node needs root and unshare")
    out = tmp_path / "r.jsonl"
    s = score_files([hidden / "imgs"], out, progress=False, mode="cells", cluster=_opts(cluster, workers=2))
    assert s.scored + len(s.failed) == 40 and s.scored > 0 and s.failed  # node_b could not read its share
    assert all(": no such file" in why for _, why in s.failed), s.failed[:2]
    assert len(_sources(out)) == s.scored


def test_gpus_asked_of_a_cluster_without_any(cluster, inputs, tmp_path) -> None:
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match="asks for GPUs, but no node of the cluster has one"):
        score_files(inputs, tmp_path / "r.csv", progress=False, cluster=_opts(cluster, gpus_per_worker=1))
    with pytest.raises(ClusterError, match="--workers 3 needs 3 CPU"):
        score_files(inputs, tmp_path / "r2.csv", progress=False, cluster=_opts(cluster, workers=3))
    assert time.monotonic() - t0 < 60


def _cli(*args: str) -> List[str]:
    return [sys.executable, "-m", "leukedge", "score", *args]


def _rows_written(out: Path) -> int:
    try:
        return max(0, out.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def _run_and_kill(cmd: List[str], out: Path, at_rows: int, kill) -> subprocess.CompletedProcess:
    """Start ``cmd``; once ``out`` holds ``at_rows`` rows call ``kill(proc)``; return how it ended.

    Its output goes to files, not pipes: Ray prints a dead raylet's last log lines to the driver's
    stdout, more than a pipe holds while nobody reads it.
    """
    logs = out.with_name(out.name + ".log")
    with open(logs, "w") as fh:
        proc = subprocess.Popen([cmd[0], "-X", "faulthandler", *cmd[1:]], stdout=fh, stderr=fh)
        t0 = time.monotonic()
        while _rows_written(out) < at_rows:
            assert proc.poll() is None, logs.read_text()[-3000:]
            assert time.monotonic() - t0 < 300, "the run made no progress"
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before the kill: too little work to kill it mid-run"
        kill(proc)
        try:
            proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGABRT)  # faulthandler prints where it hangs
            proc.wait(timeout=30)
    text = logs.read_text(errors="replace")
    return subprocess.CompletedProcess(cmd, proc.returncode, text, text)


def test_killed_worker_node_then_killed_driver_lose_and_duplicate_nothing(
    cluster, inputs, one_machine, tmp_path
) -> None:
    """Last in this module: it kills the worker node."""
    out = tmp_path / "r.csv"
    args = [*inputs, "--out", str(out), "--mode", "cells", "--cluster", cluster.address, "--no-progress"]
    first = [a for a in args if a != "--no-progress"] + ["--progress", "--workers", "2"]
    done = _run_and_kill(_cli(*first), out, 32, lambda p: cluster.worker.kill())
    # Progress in a log: where the run goes, then plain progress lines.
    assert f"cluster: Ray cluster {cluster.address}, 2 node(s), 2 CPU(s), 0 GPU(s); 2 scoring worker(s)" in done.stdout
    assert "score: 554/554 images (100%)" in done.stdout or done.returncode == 6
    # The head's worker carries on with the dead node's chunks; an error here would also be fair,
    # as long as the resume below completes.
    assert done.returncode in (0, 8, 6), done.stderr
    again = subprocess.run(_cli(*args, "--workers", "1", "--resume"), capture_output=True, text=True, timeout=600)
    assert again.returncode == 8, again.stderr  # the unreadable file, listed again
    assert "Traceback" not in done.stderr + again.stderr
    counts = _sources(out)
    assert len(counts) == 553 and set(counts.values()) == {1}
    _assert_same_rows(out, one_machine)

    # The driver killed with SIGKILL mid-run: the cluster (now the head alone) frees its worker,
    # and --resume completes the file.
    out2 = tmp_path / "r2.jsonl"
    args2 = [*inputs, "--out", str(out2), "--mode", "cells", "--cluster", cluster.address, "--no-progress"]
    killed = _run_and_kill(_cli(*args2, "--workers", "1"), out2, 24, lambda p: os.kill(p.pid, signal.SIGKILL))
    assert killed.returncode == -signal.SIGKILL
    again = subprocess.run(_cli(*args2, "--workers", "1", "--resume"), capture_output=True, text=True, timeout=600)
    assert again.returncode == 8, again.stderr
    counts = _sources(out2)
    assert len(counts) == 553 and set(counts.values()) == {1}
    _assert_same_rows(out2, one_machine)


def test_unreachable_address_is_a_clear_error_not_a_hang(tmp_path) -> None:
    """Run as the command: a connection given up on may go on waiting in a thread until the process ends."""
    import socket

    def score(address: str, *extra: str) -> subprocess.CompletedProcess:
        out = str(tmp_path / "r.csv")
        cmd = _cli(str(CNMC), "--out", out, "--overwrite", "--cluster", address, *extra)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    r = score(f"127.0.0.1:{free_port()}")  # nothing listens there
    assert r.returncode == 6 and "cannot reach a Ray head node" in r.stderr and "Traceback" not in r.stderr
    with socket.socket() as silent:  # something listens, but it is not Ray: the connect timeout ends it
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        t0 = time.monotonic()
        r = score(f"127.0.0.1:{silent.getsockname()[1]}", "--connect-timeout", "3")
        assert r.returncode == 6 and "did not connect within 3 s" in r.stderr, r.stderr[-2000:]
        assert time.monotonic() - t0 < 60


def test_another_ray_version_is_refused(cluster, tmp_path) -> None:
    code = (
        "import sys, ray; ray.__version__ = '0.0.1'; from leukedge.cli import main; "
        "sys.argv = ['leukedge', 'score'] + sys.argv[1:]; main()"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(CNMC), "--out", str(tmp_path / "r.csv"), "--cluster", cluster.address],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 6, r.stderr
    assert "another Ray or Python version" in r.stderr and "0.0.1" in r.stderr and "Traceback" not in r.stderr


def test_without_ray_the_option_names_the_extra(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependencyError) as err:
        score_files([CNMC], tmp_path / "r.csv", cluster="local")
    assert "leukedge[cluster]" in (err.value.hint or "")
