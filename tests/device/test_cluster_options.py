"""`--cluster` option values and worker planning, checked without starting Ray."""

from __future__ import annotations

import pytest

from leukedge.device.scoring.cluster import ClusterEngine, ClusterOptions
from leukedge.device.scoring.cluster_connect import ClusterInfo, parse_address
from leukedge.errors import ClusterError, InvalidInputError
from leukedge.extras import has


def test_addresses() -> None:
    assert parse_address("10.0.0.5:6380") == ("10.0.0.5", 6380)
    assert parse_address("head-node") == ("head-node", 6379)
    for bad in ("ray://head:10001", "http://head:8265", "head:port", "head:0", ":6379"):
        with pytest.raises(InvalidInputError, match="--cluster"):
            parse_address(bad)


def _planned(info: ClusterInfo, **kw) -> int:
    engine = ClusterEngine.__new__(ClusterEngine)  # planning needs only the options
    engine.options = ClusterOptions("x:1", **kw)
    return engine._plan_workers(info)


def test_workers_fit_the_cluster_or_are_refused_before_work() -> None:
    two_nodes = ClusterInfo("x:1", owned=True, nodes=[{}, {}], cpus=12.0, gpus=2.0)
    assert _planned(two_nodes) == 12
    assert _planned(two_nodes, gpus_per_worker=1) == 2
    assert _planned(two_nodes, gpus_per_worker=0.5, workers=4) == 4
    with pytest.raises(ClusterError, match="--workers 13 needs 13 CPU"):
        _planned(two_nodes, workers=13)
    with pytest.raises(ClusterError, match="and 3 GPU"):
        _planned(two_nodes, gpus_per_worker=1, workers=3)
    cpus_only = ClusterInfo("x:1", owned=True, nodes=[{}], cpus=4.0)
    with pytest.raises(ClusterError, match="asks for GPUs, but no node of the cluster has one"):
        _planned(cpus_only, gpus_per_worker=1)


@pytest.mark.skipif(not has("ray"), reason="needs the cluster extra")
def test_zero_workers_on_a_cluster_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="at least 1 worker"):
        ClusterEngine(ClusterOptions("local", workers=0), "reference", "auto", "auto")
