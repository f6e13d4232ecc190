"""The MQTT sink against a real Mosquitto broker that each test starts on a free loopback port."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
import pytest

from leukedge.sinks.mqtt import MqttSettings, MqttSink
from leukedge.sinks.synthetic import random_cells
from leukedge.types import FrameResult
from tests.conftest import IN_CI, require_program

try:
    import paho.mqtt.client as mqtt
except ImportError:
    if IN_CI:
        raise
    pytest.skip("paho-mqtt is not installed: pip install 'leukedge[serve]'", allow_module_level=True)
DEVICE = "scope-7"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """Mosquitto on 127.0.0.1:port with persistence, so durable sessions survive a restart."""

    def __init__(self, folder: Path, *, extra: str = "", anonymous: bool = True) -> None:
        self.exe = require_program("mosquitto", "/usr/sbin/mosquitto")
        self.folder = folder
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if anonymous else 'false'}",
            "persistence true",
            f"persistence_location {folder}/",
            extra,
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # as root, mosquitto would switch to a user that cannot read tmp files
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=open(self.folder / "log", "a")
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError((self.folder / "log").read_text()) from None
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: mosquitto saves its persistence file
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def broker_dir(tmp_path):
    brokers: List[Broker] = []

    def make(**kw) -> Broker:
        b = Broker(tmp_path, **kw)
        brokers.append(b)
        return b

    yield make
    for b in brokers:
        b.stop()


class Subscriber:
    """A durable (clean_session=False) QoS 1 subscriber to leukedge/<device>/#."""

    def __init__(self, port: int, *, client_id: str = "test-sub", **auth) -> None:
        self.messages: List[tuple] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        if auth:
            self.c.username_pw_set(auth["user"], auth["password"])
        subscribed = threading.Event()
        self.c.on_connect = lambda c, u, f, rc, p: c.subscribe(f"leukedge/{DEVICE}/#", qos=1)
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert subscribed.wait(5), "subscriber could not subscribe"

    def _on_message(self, c, u, msg) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, msg.retain))

    def frames(self) -> List[int]:
        with self.lock:
            return [json.loads(p)["frame"] for t, p, _ in self.messages if t.endswith("/cells")]

    def last(self, leaf: str) -> Optional[bytes]:
        with self.lock:
            found = [p for t, p, _ in self.messages if t.endswith("/" + leaf)]
        return found[-1] if found else None

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def results(start: int, n: int, rng: np.random.Generator) -> List[FrameResult]:
    t = time.time()
    return [
        FrameResult(i, "synthetic://", t, t + 0.04, random_cells(rng, i % 4, width=640, height=480), 640, 480)
        for i in range(start, start + n)
    ]


def sink_for(port: int, **kw) -> MqttSink:
    return MqttSink(MqttSettings(host="127.0.0.1", port=port, device_id=DEVICE, **kw), model="0123456789ab")


def test_each_frame_and_a_retained_summary_reach_subscribers(broker_dir, rng) -> None:
    b = broker_dir().start()
    sub = Subscriber(b.port)
    sink = sink_for(b.port)
    sent = results(0, 20, rng)
    with sink:
        for r in sent:
            sink.write(r)
        assert wait_for(lambda: len(sub.frames()) == 20)
    assert sub.frames() == list(range(20))  # QoS 1, in order
    first = json.loads(next(p for t, p, _ in sub.messages if t == f"leukedge/{DEVICE}/cells"))
    assert first["schema"] == "leukedge.mqtt.cells/1" and first["device"] == DEVICE and first["model"] == "0123456789ab"
    assert first["cells"] == []  # frame 0 has no cell
    third = json.loads([p for t, p, _ in sub.messages if t.endswith("/cells")][3])
    assert third["cells"] == [c.to_dict() for c in sent[3].cells]
    st = sink.stats()
    assert (st["frames"], st["dropped"], st["buffered"], st["unacked"]) == (20, 0, 0, 0)
    assert st["acked"] == st["sent"] >= 20 + 1  # the frames and at least the closing summary
    sub.close()
    late = Subscriber(b.port, client_id="late")  # retained messages greet a subscriber that comes later
    assert wait_for(lambda: late.last("summary") is not None and late.last("status") is not None, 5)
    summary = json.loads(late.last("summary"))
    expected_cells = sum(len(r.cells) for r in sent)
    assert summary["schema"] == "leukedge.mqtt.summary/1"
    assert (summary["frames"], summary["cells"]) == (20, expected_cells)
    assert summary["all"] == sum(r.n_all for r in sent)
    assert late.last("status") == b"offline"
    late.close()


def test_broker_unreachable_at_start_buffers_drops_oldest_and_delivers_later(broker_dir, rng, caplog) -> None:
    b = broker_dir()
    b.start()
    Subscriber(b.port).close()  # a durable subscription, kept across the broker's restart
    b.stop()
    sink = sink_for(b.port, buffer=5)
    caplog.set_level(logging.WARNING, logger="leukedge.sinks.mqtt")
    t0 = time.perf_counter()
    sink.open()  # must not raise, must not wait long
    assert time.perf_counter() - t0 < 2.0
    for r in results(0, 12, rng):
        sink.write(r)
    st = sink.stats()
    assert st["connected"] is False and st["buffered"] == 5 and st["dropped"] == 7
    assert "cannot connect to 127.0.0.1" in st["last_error"]
    assert any("screening goes on" in m for m in caplog.messages)
    assert any("dropped 1 oldest frame" in m for m in caplog.messages)
    b.start()
    sub = Subscriber(b.port)
    assert wait_for(lambda: sink.stats()["acked"] >= 5, 20), sink.stats()
    assert wait_for(lambda: len(sub.frames()) >= 5)
    assert sorted(set(sub.frames())) == [7, 8, 9, 10, 11]  # the 5 newest
    assert any("connected to mqtt://127.0.0.1" in m and "after" in m for m in caplog.messages)
    sink.close()
    sub.close()


def test_frames_written_while_the_broker_restarts_are_not_lost(broker_dir, rng) -> None:
    b = broker_dir().start()
    sub = Subscriber(b.port)
    sink = sink_for(b.port)
    sink.open()
    for r in results(0, 10, rng):
        sink.write(r)
    assert wait_for(lambda: sink.stats()["acked"] >= 10)
    b.stop()
    assert wait_for(lambda: not sink.stats()["connected"], 5)
    for r in results(10, 10, rng):
        sink.write(r)
    assert sink.stats()["buffered"] + sink.stats()["unacked"] >= 10
    b.start()
    for r in results(20, 10, rng):
        sink.write(r)
    assert wait_for(lambda: set(range(30)) <= set(sub.frames()), 20), sorted(set(sub.frames()))
    st = sink.stats()
    assert st["connects"] == 2 and st["dropped"] == 0 and "disconnected" in st["last_error"]
    sink.close()
    sub.close()


def test_username_and_password(broker_dir, rng, tmp_path) -> None:
    passwd = require_program("mosquitto_passwd", "/usr/bin/mosquitto_passwd")
    pwfile = tmp_path / "passwd"
    subprocess.run([passwd, "-b", "-c", str(pwfile), "scope", "s3cret-pass"], check=True, capture_output=True)
    b = broker_dir(extra=f"password_file {pwfile}", anonymous=False).start()
    sub = Subscriber(b.port, user="scope", password="s3cret-pass")
    wrong = sink_for(b.port, username="scope", password="wrong")
    with wrong:
        wrong.write(results(0, 1, rng)[0])
        assert wait_for(lambda: wrong.stats()["last_error"] is not None, 5)
        assert "refused the connection" in wrong.stats()["last_error"]
        assert wrong.stats()["connected"] is False and wrong.stats()["buffered"] == 1
    right = sink_for(b.port, username="scope", password="s3cret-pass")
    with right:
        for r in results(0, 3, rng):
            right.write(r)
        assert wait_for(lambda: sub.frames() == [0, 1, 2])
    sub.close()


def test_tls_with_a_private_ca(broker_dir, rng, tmp_path) -> None:
    openssl = require_program("openssl")
    d = tmp_path / "pki"
    d.mkdir()

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=leukedge test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")  # fmt: skip
    tls_port = free_port()
    b = broker_dir(
        extra=f"listener {tls_port} 127.0.0.1\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key"
    ).start()
    sub = Subscriber(b.port)  # plain listener, to watch what arrives
    good = MqttSink(
        MqttSettings(host="127.0.0.1", port=tls_port, device_id=DEVICE, tls=True, ca_certs=str(d / "ca.pem")),
        model="m",
    )
    with good:
        good.write(results(0, 1, rng)[0])
        assert wait_for(lambda: sub.frames() == [0])
    untrusted = MqttSink(MqttSettings(host="127.0.0.1", port=tls_port, device_id=DEVICE, tls=True), model="m")
    with untrusted:  # the system CA store does not know our CA: refused, reported, screening goes on
        untrusted.write(results(1, 1, rng)[0])
        assert "CERTIFICATE_VERIFY_FAILED" in (untrusted.stats()["last_error"] or "")
    sub.close()


def test_unreadable_tls_files_are_a_clear_error(tmp_path) -> None:
    from leukedge.errors import InvalidInputError

    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    sink = MqttSink(
        MqttSettings(host="127.0.0.1", port=free_port(), device_id=DEVICE, tls=True, ca_certs=str(bad)), model="m"
    )
    with pytest.raises(InvalidInputError, match="cannot be loaded") as info:
        sink.open()
    assert "PEM" in info.value.hint


def test_a_short_run_is_delivered_before_close_returns(broker_dir, rng) -> None:
    b = broker_dir().start()
    sub = Subscriber(b.port)
    with sink_for(b.port) as sink:  # closed right after the writes: close() waits for the acknowledgements
        for r in results(0, 3, rng):
            sink.write(r)
    assert sink.stats()["acked"] >= 3
    assert wait_for(lambda: sub.frames() == [0, 1, 2], 5)
    sub.close()


def test_a_successful_connection_is_confirmed_and_a_failed_one_says_why(broker_dir) -> None:
    b = broker_dir().start()
    with sink_for(b.port) as sink:
        assert sink.wait_connected(5.0)
        assert sink.describe() == f"mqtt://127.0.0.1:{b.port} as device {DEVICE}: connected"
    port = b.port
    b.stop()
    with sink_for(port) as sink:
        assert not sink.wait_connected(2.0)
        assert "not connected" in sink.describe() and "buffered" in sink.describe()
