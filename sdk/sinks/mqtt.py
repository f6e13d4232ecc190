"""MQTT results: one message per frame on ``leukedge/<device>/cells`` and a retained running summary.

paho-mqtt (>= 2) is imported in ``open()``.  ``write`` only appends to a
bounded buffer; a sender thread publishes at QoS 1 while connected, keeping
at most ``max_inflight`` messages unacknowledged (paho re-sends those after
a reconnect).  When the broker is unreachable, at start or later, screening
goes on: frames wait in the buffer, the oldest are dropped when it is full,
and drops, buffered frames and the last error show in ``stats()`` and the log.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, Optional, Set, Tuple

from leukedge.errors import InvalidInputError
from leukedge.sinks.base import Sink
from leukedge.sinks.summary import RunningSummary
from leukedge.types import FrameResult

log = logging.getLogger("leukedge.sinks.mqtt")

TOPIC_ROOT = "leukedge"
CELLS_SCHEMA = "leukedge.mqtt.cells/1"
SUMMARY_SCHEMA = "leukedge.mqtt.summary/1"
DEFAULT_BUFFER = 10_000  # frames: about 5.5 minutes at 30 fps
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


@dataclass(frozen=True)
class MqttSettings:
    host: str
    port: int = 1883
    device_id: str = ""
    tls: bool = False
    ca_certs: Optional[str] = None  # None with tls: the system's CA store
    certfile: Optional[str] = None
    keyfile: Optional[str] = None
    username: Optional[str] = None
    password: Optional[str] = None
    buffer: int = DEFAULT_BUFFER
    max_inflight: int = 64
    keepalive: int = 30
    summary_every_s: float = 5.0
    connect_timeout_s: float = 3.0
    linger_s: float = 0.05
    close_timeout_s: float = 5.0

    def topic(self, leaf: str) -> str:
        return f"{TOPIC_ROOT}/{self.device_id}/{leaf}"


def default_device_id() -> str:
    """The host name, made safe for a topic level."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname()) or "device"


def check_device_id(device_id: str) -> str:
    if not device_id or any(ch in device_id for ch in "/+#\0") or len(device_id) > 128:
        raise InvalidInputError(
            f"--mqtt-device-id {device_id!r} cannot be an MQTT topic level (expected 1-128 characters without / + #)",
            hint="use letters, digits, '-', '_' or '.', e.g. --mqtt-device-id scope-01",
        )
    return device_id


def parse_mqtt_url(url: str) -> Tuple[bool, str, int]:
    """``mqtt://host[:port]``, ``mqtts://host[:port]`` or ``host[:port]`` → (tls, host, port)."""
    m = re.fullmatch(r"(?:(mqtts?)://)?(\[[^\]]+\]|[^:/@\[\]]+)(?::(\d{1,5}))?/?", url.strip())
    if not m or (m.group(3) and not 0 < int(m.group(3)) < 65536):
        hint = "e.g. --mqtt mqtt://broker.local:1883 or --mqtt mqtts://broker.local:8883"
        if "@" in url:
            hint = "give credentials with --mqtt-user and --mqtt-password (or LEUKEDGE_MQTT_PASSWORD), not in the URL"
        raise InvalidInputError(f"--mqtt {url!r} is not a broker address (expected mqtt[s]://host[:port])", hint=hint)
    tls = m.group(1) == "mqtts"
    host = m.group(2).strip("[]")
    return tls, host, int(m.group(3) or (8883 if tls else 1883))


def frame_payload(result: FrameResult, *, device_id: str, model: str) -> Dict[str, Any]:
    """The ``cells`` message of one frame (a frame without cells has ``"cells": []``)."""
    return {
        "schema": CELLS_SCHEMA,
        "device": device_id,
        "model": model,
        "frame": result.index,
        "source": result.source,
        "t_capture": round(result.t_capture, 6),
        "t_result": round(result.t_result, 6),
        "width": result.width,
        "height": result.height,
        "cells": [c.to_dict() for c in result.cells],
    }


class MqttSink(Sink):
    name = "mqtt"

    def __init__(self, settings: MqttSettings, *, model: str, summary: Optional[RunningSummary] = None) -> None:
        self.settings = settings
        self.model = model
        self.summary = summary or RunningSummary(model=model)
        self._buf: Deque[bytes] = deque(maxlen=max(1, settings.buffer))
        self._cond = threading.Condition()
        self._client: Any = None
        self._thread: Optional[threading.Thread] = None
        self._stop = False
        self._connected = False
        self._outstanding = 0  # handed to paho, not yet acknowledged
        self._pending: Set[int] = set()  # their message ids
        self._early_acks: Set[int] = set()
        self._status_mids: Set[int] = set()  # "online" messages, published from the network thread
        self._summary_due = 0.0
        self._idle = False
        self.frames = 0
        self.dropped = 0
        self.sent = 0
        self.acked = 0
        self.connects = 0
        self.failed_connects = 0
        self.last_error: Optional[str] = None
        self._down_since: Optional[float] = None

    # --- lifecycle ------------------------------------------------------

    def open(self) -> None:
        from leukedge.extras import require

        require("paho")
        import paho.mqtt.client as mqtt

        if not hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt 1.x (e.g. Ubuntu 20.04's python3-paho-mqtt)
            from leukedge.errors import MissingDependencyError

            raise MissingDependencyError(
                "paho-mqtt 2.0 or newer is needed for --mqtt, but an older one is installed",
                hint="pip install 'paho-mqtt>=2' (or pip install 'leukedge[serve]')",
            )

        s = self.settings
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"leukedge-{s.device_id}-{id(self) & 0xFFFFFF:x}",
            protocol=mqtt.MQTTv311,
        )
        if s.tls:
            try:
                client.tls_set(ca_certs=s.ca_certs, certfile=s.certfile, keyfile=s.keyfile)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise InvalidInputError(
                    f"MQTT TLS files (--mqtt-ca {s.ca_certs}, --mqtt-cert {s.certfile}, --mqtt-key {s.keyfile}) "
                    f"cannot be loaded: {exc}",
                    hint="give PEM files: the CA that signed the broker's certificate, and a matching cert/key pair",
                ) from exc
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        client.will_set(s.topic("status"), "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(s.max_inflight)
        client.connect_timeout = s.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        try:  # one attempt in the foreground, to report the exact reason if the broker is not there
            client.connect(s.host, s.port, keepalive=s.keepalive)
        except (OSError, ValueError) as exc:
            self._note_down(f"cannot connect to {s.host}:{s.port}: {exc}")
            client.connect_async(s.host, s.port, keepalive=s.keepalive)
        client.loop_start()  # paho's network thread: reads acks, reconnects with backoff
        self._thread = threading.Thread(target=self._send_loop, name="leukedge-mqtt", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._client is None:
            return
        deadline = time.monotonic() + self.settings.close_timeout_s
        self._queue_summary(force=True)
        with self._cond:  # give buffered frames a moment to go out
            # wait while connected, or still connecting (no failure yet): a short run may end before the CONNACK
            while (self._buf or self._outstanding or self._summary_due < 0) and (
                self._connected or self._down_since is None
            ):
                if time.monotonic() >= deadline:
                    break
                self._cond.wait(0.05)
            self._stop = True
            self._cond.notify_all()
        if self._thread:
            self._thread.join(timeout=2)
        if self._connected:
            self._client.publish(self.settings.topic("status"), "offline", qos=1, retain=True)
        self._client.disconnect()
        self._client.loop_stop()
        left = len(self._buf) + self._outstanding
        if left:
            log.warning("MQTT: %d frame message(s) not delivered to %s at close", left, self._where())
        self._client = None

    # --- the pipeline's side ---------------------------------------------

    def write(self, result: FrameResult) -> None:
        self.summary.update(result)
        payload = _ENCODE(frame_payload(result, device_id=self.settings.device_id, model=self.model)).encode()
        with self._cond:
            if len(self._buf) == self._buf.maxlen:
                self.dropped += 1  # deque(maxlen) drops the oldest
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.warning(
                        "MQTT: buffer full (%d frames), %s is unreachable or too slow; dropped %d oldest frame(s) so far",
                        self._buf.maxlen,
                        self._where(),
                        self.dropped,
                    )
            self._buf.append(payload)
            self.frames += 1
            if self._idle:  # wake the sender only when it sleeps; while it lingers, frames just gather
                self._cond.notify()

    def write_tracks(self, finals: Any, source: str) -> None:
        self.summary.add_finals(finals)  # the summary messages count unique cells

    def stats(self) -> Dict[str, Any]:
        with self._cond:
            return {
                "broker": self._where(),
                "connected": self._connected,
                "frames": self.frames,
                "sent": self.sent,
                "acked": self.acked,
                "buffered": len(self._buf),
                "unacked": self._outstanding,
                "dropped": self.dropped,
                "connects": self.connects,
                "failed_connects": self.failed_connects,
                "last_error": self.last_error,
            }

    # --- the sender thread ------------------------------------------------

    def _send_loop(self) -> None:
        cells_topic = self.settings.topic("cells")
        while True:
            with self._cond:
                while not self._stop and not self._can_send():
                    self._idle = True
                    self._cond.wait(timeout=min(1.0, self.settings.summary_every_s))
                    self._idle = False
                    self._queue_summary()
                if self._stop:
                    return
                batch = []
                if self._summary_due < 0:
                    batch.append((self.settings.topic("summary"), self._summary_payload(), True))
                    self._summary_due = time.monotonic() + self.settings.summary_every_s
                room = self.settings.max_inflight - self._outstanding - len(batch)
                while self._buf and room > 0:
                    batch.append((cells_topic, self._buf.popleft(), False))
                    room -= 1
                self._outstanding += len(batch)
            for topic, payload, retain in batch:
                self._publish(topic, payload, retain)
            if self.settings.linger_s > 0 and not self._buf:
                # let a few frames gather: one wake-up then sends several (costs <= linger_s latency)
                time.sleep(self.settings.linger_s)

    def _can_send(self) -> bool:
        if not self._connected or self._outstanding >= self.settings.max_inflight:
            return False
        return bool(self._buf) or self._summary_due < 0

    def _queue_summary(self, force: bool = False) -> None:
        if force or (self._summary_due >= 0 and time.monotonic() >= self._summary_due):
            self._summary_due = -1.0  # marks "a summary is waiting to go out"

    def _summary_payload(self) -> bytes:
        body = {"schema": SUMMARY_SCHEMA, "device": self.settings.device_id, "t": round(time.time(), 3)}
        body.update(self.summary.to_dict())
        body["mqtt"] = {"dropped": self.dropped, "buffered": len(self._buf)}
        return json.dumps(body, separators=(",", ":")).encode()

    def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        import paho.mqtt.client as mqtt

        try:
            info = self._client.publish(topic, payload, qos=1, retain=retain)
            rc, mid = info.rc, info.mid
        except Exception as exc:  # e.g. a payload paho rejects: count it, keep going
            rc, mid = None, None
            self.last_error = f"publish failed: {exc}"
        with self._cond:
            if rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):  # NO_CONN: paho keeps it and sends on reconnect
                self.sent += 1
                if mid in self._early_acks:  # the ack raced ahead of this bookkeeping
                    self._early_acks.discard(mid)
                    self._acked_locked()
                else:
                    self._pending.add(mid)
            else:
                self._outstanding -= 1
                self.dropped += 1
                self.last_error = self.last_error or f"publish refused by the client: rc={rc}"

    def _acked_locked(self) -> None:
        self._outstanding = max(0, self._outstanding - 1)
        self.acked += 1
        if self._outstanding == self.settings.max_inflight - 1:  # room again for a sender that waits for it
            self._cond.notify_all()

    # --- paho callbacks (network thread) ----------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            self._note_down(f"broker {self._where()} refused the connection: {reason}")
            return
        info = client.publish(self.settings.topic("status"), "online", qos=1, retain=True)
        with self._cond:
            self._status_mids.add(info.mid)
            was_down = self._down_since
            self._connected = True
            self.connects += 1
            self._down_since = None
            self._cond.notify_all()
        if was_down is not None:
            log.warning(
                "MQTT: connected to %s after %.1f s; sending %d buffered frame(s)",
                self._where(),
                time.time() - was_down,
                len(self._buf),
            )
        else:
            log.info("MQTT: connected to %s", self._where())

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # paho does not pass the reason: keep the one found earlier in this outage, if any
        self._note_down(f"cannot connect to {self._where()}", keep_reason=True)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        with self._cond:
            was_connected, self._connected = self._connected, False
            stopping = self._stop
        if was_connected and not stopping:  # after a refused CONNACK, keep the refusal as the reason
            self._note_down(f"disconnected from {self._where()}: {reason}", failed_connect=False)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, properties: Any) -> None:
        with self._cond:
            if mid in self._pending:
                self._pending.discard(mid)
                self._acked_locked()
            elif mid in self._status_mids:
                self._status_mids.discard(mid)
            else:
                self._early_acks.add(mid)

    def _note_down(self, why: str, *, failed_connect: bool = True, keep_reason: bool = False) -> None:
        with self._cond:
            self._connected = False
            self.failed_connects += failed_connect
            first = self._down_since is None
            if first or not keep_reason or not self.last_error:
                self.last_error = why
            if first:
                self._down_since = time.time()
        if first:
            log.warning(
                "MQTT: %s; screening goes on, results are buffered (up to %d frames) and sent when it is back",
                why,
                self._buf.maxlen,
            )

    def wait_connected(self, timeout: float) -> bool:
        """Block until the broker accepted the connection (True) or ``timeout`` s passed or it failed (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._connected and self._down_since is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.05))
            return self._connected

    def describe(self) -> str:
        """For the screen command's header: where results go, and whether the broker accepted us."""
        where = f"{self._where()} as device {self.settings.device_id}"
        if self._connected:
            return f"{where}: connected"
        return f"{where}: not connected ({self.last_error or 'no answer yet'}); results are buffered until it is"

    def _where(self) -> str:
        s = self.settings
        return f"{'mqtts' if s.tls else 'mqtt'}://{s.host}:{s.port}"
