"""The live view over plain HTTP: token rules, Host check, JSON endpoints, SSE, and slow clients."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest

from leukedge.errors import InvalidInputError
from leukedge.liveview import LiveViewSink, parse_bind
from leukedge.sinks.synthetic import crop_pool, random_cells
from leukedge.types import FrameResult

TOKEN = "t0ken-for-the-tests-0123456789"


def get(url: str, headers: Optional[Dict[str, str]] = None) -> Tuple[int, bytes, Dict[str, str]]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def result(i: int, rng, n: int = 5, crops=None) -> FrameResult:
    t = time.time()
    return FrameResult(
        i, "synthetic://", t - 0.03, t, random_cells(rng, n, width=320, height=240, crops=crops), 320, 240
    )


def read_events(
    port: int, n: int = 1000, path: str = "/events", timeout: float = 5.0, until=lambda events: False
) -> List[Tuple[str, dict]]:
    """The first ``n`` SSE events of a fresh stream, parsed (fewer if ``until(events)`` says so or time runs out)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    buf, events = b"", []
    deadline = time.time() + timeout
    while len(events) < n and not until(events) and time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf and len(events) < n:
            block, buf = buf.split(b"\n\n", 1)
            lines = dict(line.split(": ", 1) for line in block.decode().split("\n") if ": " in line)
            if "event" in lines:
                events.append((lines["event"], json.loads(lines["data"])))
    s.close()
    return events


@pytest.mark.parametrize(
    "text, expected",
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("8081", ("127.0.0.1", 8081)), (":0", ("127.0.0.1", 0)),
     ("0.0.0.0:9000", ("0.0.0.0", 9000)), ("[::1]:8080", ("::1", 8080)), ("localhost", ("localhost", 8080))],
)  # fmt: skip
def test_parse_bind(text, expected) -> None:
    assert parse_bind(text) == expected


def test_non_loopback_bind_needs_a_token() -> None:
    for host in ("0.0.0.0", "192.168.1.20", "::", "scope.local"):
        with pytest.raises(InvalidInputError, match="needs a token") as info:
            LiveViewSink(host, 0)
        assert "LEUKEDGE_TOKEN" in info.value.hint
    with pytest.raises(InvalidInputError, match="at least 16"):
        LiveViewSink("0.0.0.0", 0, token="short")
    LiveViewSink("127.0.0.5", 0)  # all of 127/8 is loopback
    LiveViewSink("::1", 0)


def test_every_request_must_carry_the_token_on_a_public_bind(rng) -> None:
    sink = LiveViewSink("0.0.0.0", 0, token=TOKEN)  # reachable from elsewhere; we connect through loopback
    with sink:
        sink.write(result(0, rng))
        base = f"http://127.0.0.1:{sink.port}"
        for path in ("/", "/api/summary", "/api/health", "/events", "/nothing"):
            assert get(base + path)[0] == 401
            assert get(base + path, {"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401
            assert get(base + path + "?token=" + TOKEN[:-1])[0] == 401
        assert get(base + "/", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert get(base + "/api/summary", {"X-Leukedge-Token": TOKEN})[0] == 200
        code, body, _ = get(base + f"/api/health?token={TOKEN}")
        assert code == 200 and json.loads(body)["frames"] == 1
        assert get(base + f"/nothing?token={TOKEN}")[0] == 404
        assert read_events(sink.port, 1, f"/events?token={TOKEN}")[0][0] == "summary"
        assert read_events(sink.port, 1, "/events") == []  # 401: no stream


def test_loopback_page_is_self_contained_and_guarded_against_rebinding(rng) -> None:
    with LiveViewSink("127.0.0.1", 0) as sink:
        code, body, headers = get(sink.url)
        html = body.decode()
        assert code == 200 and '<svg id="frame"' in html
        assert "src=" not in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "connect-src 'self'" in csp
        assert get(sink.url, {"Host": f"evil.example:{sink.port}"})[0] == 403
        assert get(sink.url, {"Host": f"localhost:{sink.port}"})[0] == 200


def test_summary_health_and_stream_follow_the_results(rng) -> None:
    pool = crop_pool(2)
    frame = np.full((240, 320, 3), 200, np.uint8)
    with LiveViewSink("127.0.0.1", 0, model="abc", max_fps=50) as sink:
        sent = []
        for i in range(6):
            r = result(i, rng, 6, pool)
            sent.append(r)
            sink.write_frame(r, frame)
        s = json.loads(get(sink.url + "api/summary")[1])
        cells = sum(len(r.cells) for r in sent)
        assert (s["frames"], s["cells"], s["all"], s["model"]) == (6, cells, sum(r.n_all for r in sent), "abc")
        events = read_events(sink.port, 2)  # the snapshot: summary (+ flagged cells)
        assert events[0][0] == "summary" and events[0][1]["cells"] == cells
        r = result(6, rng, 4, pool)
        time.sleep(0.05)

        def later() -> None:
            time.sleep(0.3)
            sink.write_frame(r, frame)

        import threading

        threading.Thread(target=later).start()
        got = read_events(sink.port, until=lambda ev: sum(kind != "summary" for kind, _ in ev) >= 3)
        res = [body for kind, body in got if kind == "result"]
        assert res and res[-1]["frame"] == 6
        assert res[-1]["cells"] == [c.to_dict() for c in r.cells]
        assert res[-1]["image"].startswith("data:image/jpeg;base64,")
        flagged = [item for kind, body in got if kind == "flagged" for item in body["items"]]
        assert flagged and all(it["image"].startswith("data:image/png;base64,") for it in flagged)
        health = json.loads(get(sink.url + "api/health")[1])
        assert health["status"] == "ok" and health["frames"] == 7 and health["clients_served"] >= 2


def test_a_stalled_client_loses_its_own_frames_and_never_slows_the_pipeline(rng) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)  # big JPEGs
    with LiveViewSink("127.0.0.1", 0, max_fps=60) as sink:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", sink.port))
        stalled.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{sink.port}\r\n\r\n".encode())  # and never reads
        time.sleep(0.2)
        worst, t_all = 0.0, time.perf_counter()
        for i in range(150):
            r = FrameResult(i, "s", time.time(), time.time(), (), 640, 480)
            t0 = time.perf_counter()
            sink.write_frame(r, noise)
            worst = max(worst, time.perf_counter() - t0)
            time.sleep(0.01)
        t_all = time.perf_counter() - t_all
        assert t_all < 150 * 0.01 + 3.0  # the loop was never held up by the stalled client
        assert worst < 0.5, worst
        health = json.loads(get(sink.url + "api/health")[1])
        stalled_stats = [c for c in health["per_client"] if c["dropped"] > 0]
        assert stalled_stats and health["dropped"] >= stalled_stats[0]["dropped"] > 0
        # a client that reads still gets the newest frame
        ev = read_events(sink.port, 1)
        assert ev[0][0] == "result" and ev[0][1]["frame"] >= 140
        stalled.close()


def test_frames_of_the_wrong_kind_are_counted_not_shown(rng) -> None:
    with LiveViewSink("127.0.0.1", 0, max_fps=50) as sink:
        s = socket.create_connection(("127.0.0.1", sink.port))  # someone watches
        s.sendall(f"GET /events HTTP/1.1\r\nHost: 127.0.0.1:{sink.port}\r\n\r\n".encode())
        assert wait_until(lambda: sink.hub.stats()["clients"] == 1)
        sink.write_frame(result(0, rng), np.zeros((240, 320), np.uint8))  # grey: not an RGB frame
        time.sleep(0.05)
        sink.write_frame(result(1, rng), np.zeros((240, 320, 3), np.float32))
        assert sink.stats()["bad_frames"] == 2 and sink.stats()["frames"] == 2
        s.close()


def wait_until(cond, timeout: float = 5.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and not cond():
        time.sleep(0.02)
    return cond()


# Host names an attacker's DNS can point at 127.0.0.1 (rebinding), and spellings that try to look local.
HOSTILE_HOSTS = [
    "127.attacker.example",
    "127.0.0.1.attacker.example",
    "127.0.0.1.nip.io",
    "localhost.attacker.example",
    "attacker-localhost",
    "attacker.example",
    "127.1",
    "0x7f000001",
    "2130706433",
    "0177.0.0.1",
    "127.0.0.1@attacker.example",
    "[::1].attacker.example",
    "::1",
    "127.0.0.1:80:80",
    "127.0.0.1:port",
    "",
]
LOCAL_HOSTS = ["127.0.0.1", "127.0.0.1:{port}", "127.8.9.10:{port}", "localhost:{port}", "LOCALHOST", "[::1]:{port}"]


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_rebinding_guard_refuses_names_that_only_look_local(host: str) -> None:
    with LiveViewSink("127.0.0.1", 0) as sink:
        for path in ("/", "/api/summary", "/api/health", "/events"):
            s = socket.create_connection(("127.0.0.1", sink.port), timeout=5)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            status = s.recv(64).split(b"\r\n", 1)[0]
            s.close()
            assert b" 403 " in status, (host, path, status)


@pytest.mark.parametrize("host", LOCAL_HOSTS)
def test_rebinding_guard_accepts_loopback_literals_and_localhost(host: str) -> None:
    with LiveViewSink("127.0.0.1", 0) as sink:
        url = f"http://127.0.0.1:{sink.port}/api/summary"
        assert get(url, {"Host": host.format(port=sink.port)})[0] == 200


def test_token_from_a_file_or_the_environment_not_the_command_line(tmp_path) -> None:
    from pathlib import Path

    from leukedge.manifest import Manifest
    from leukedge.sinks.options import build_sinks, read_token

    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    assert read_token(None, f) == TOKEN
    with pytest.raises(InvalidInputError, match="both given"):
        read_token(TOKEN, f)
    (tmp_path / "empty").write_text("")
    with pytest.raises(InvalidInputError, match="the file is empty"):
        read_token(None, tmp_path / "empty")
    with pytest.raises(InvalidInputError, match="cannot be read"):
        read_token(None, Path(tmp_path / "missing"))
    sinks = build_sinks("m", Manifest(), serve="0.0.0.0:0", token_file=f)  # public bind: the file's token counts
    view = sinks.find(LiveViewSink)
    assert view is not None and view.token == TOKEN
