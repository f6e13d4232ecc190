"""examples/mqtt_fleet.py + mqtt_aggregate.py against a real Mosquitto broker started on a free port."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.examples.helpers import EXAMPLES, REPO, assert_clean_error, run_example

try:
    import paho.mqtt.client  # noqa: F401
except ImportError:
    if IN_CI:
        raise
    pytest.skip("paho-mqtt is not installed: pip install 'leukedge[serve]'", allow_module_level=True)

from tests.sdk.test_mqtt import Broker  # the sink tests' Mosquitto helper (free port, own config)


@pytest.fixture
def broker(tmp_path: Path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


def start_aggregator(port: int, out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "mqtt_aggregate.py"),
            "--broker",
            f"mqtt://127.0.0.1:{port}",
            "--until-offline",
            "3",
            "--duration",
            "60",
            "--json",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "subscribed": from now on nothing published is missed
    assert line.strip() == "subscribed", line + proc.stderr.read()
    return proc


def test_aggregates_equal_what_each_device_sent(broker: Broker, tmp_path: Path) -> None:
    agg = start_aggregator(broker.port, tmp_path / "agg.json")
    sent_file = tmp_path / "sent.json"
    t0 = time.time()
    fleet = run_example(
        "mqtt_fleet.py",
        "--broker",
        f"mqtt://127.0.0.1:{broker.port}",
        "--devices",
        "3",
        "--frames",
        "3",
        "--json",
        str(sent_file),
    )
    table, err = agg.communicate(timeout=60)
    assert agg.returncode == 0, err
    sent = json.loads(sent_file.read_text())
    got = json.loads((tmp_path / "agg.json").read_text())
    assert sorted(sent) == sorted(got) == ["scope-01", "scope-02", "scope-03"]
    for dev, s in sent.items():
        g = got[dev]
        assert s["frames"] == 3 and s["mqtt"]["dropped"] == 0 and s["mqtt"]["unacked"] == 0
        assert (g["frames"], g["cells"], g["all"]) == (s["frames"], s["cells"], s["all"]), dev
        assert g["summary"]["cells"] == s["cells"] and g["summary"]["all"] == s["all"]  # the device's own totals
        assert g["status"] == "offline"  # each device said goodbye when it closed
        assert t0 - 1 <= g["last_seen"] <= time.time()
    assert sum(s["cells"] for s in sent.values()) > 0
    for dev in sent:
        assert any(line.startswith(dev) and line.rstrip().endswith("agrees") for line in table.splitlines()), table
    assert "scope-01" in fleet.stdout


def test_a_bad_broker_url_is_a_clear_error() -> None:
    out = run_example("mqtt_fleet.py", "--broker", "mqtt://user:pw@host", "--devices", "1", check=False)
    assert_clean_error(out, 3, "--mqtt-user")
