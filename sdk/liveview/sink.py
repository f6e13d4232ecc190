"""``LiveViewSink``: the pipeline's side of the live view.

``write_frame`` (results thread) updates the running summary, remembers the
latest flagged cells and, at most ``max_fps`` times a second and only while
someone watches, copies the frame.  A broadcaster thread encodes that frame
as JPEG and the flagged crops as PNG, and puts one shared message into each
client's bounded queue; nothing the pipeline calls waits on the network.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

import cv2
import numpy as np

from leukedge.liveview.clients import ClientHub
from leukedge.liveview.page import build_page
from leukedge.liveview.server import DEFAULT_HOST, DEFAULT_PORT, LiveViewServer, check_bind
from leukedge.manifest import Decision
from leukedge.sinks.base import Sink
from leukedge.sinks.crops import is_flagged
from leukedge.sinks.summary import RunningSummary
from leukedge.tally import DEFAULT_MIN_CELLS
from leukedge.types import Cell, FrameResult

log = logging.getLogger("leukedge.liveview")

GALLERY_PERIOD_S = 0.5  # the gallery is updated at most this often ...
GALLERY_BATCH = 4  # ... with at most this many new crops
STALE_S = 5.0  # /api/health says "stale" when no result came for this long


def sse(event: str, body: Dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


class LiveViewSink(Sink):
    name = "liveview"
    wants_frames = True

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        token: Optional[str] = None,
        model: str = "",
        band: Tuple[float, float] = Decision().indeterminate,
        min_cells: int = DEFAULT_MIN_CELLS,
        max_fps: float = 10.0,
        jpeg_quality: int = 80,
        max_width: int = 1280,
        gallery: int = 24,
        client_queue: int = 8,
        health_extra: Optional[Callable[[], Dict[str, Any]]] = None,
    ) -> None:
        check_bind(host, port, token)  # fail before the pipeline starts, not after
        self.host, self.port, self.token = host, port, token
        self.band = band
        self.period = 1.0 / max(0.1, max_fps)
        self.jpeg_quality = jpeg_quality
        self.max_width = max_width
        self.health_extra = health_extra
        self.summary = RunningSummary(band=band, min_cells=min_cells, model=model)
        self.hub = ClientHub(client_queue)
        self._cond = threading.Condition()
        self._latest: Optional[Tuple[FrameResult, Optional[np.ndarray]]] = None
        self._flags: Deque[Tuple[int, Cell]] = deque(maxlen=gallery)
        self._gallery: Deque[Dict[str, Any]] = deque(maxlen=gallery)
        self._last_result_msg: Optional[bytes] = None
        self._last_accept = -1e9
        self._next_gallery = 0.0
        self._dirty = False
        self._stop = False
        self._server: Optional[LiveViewServer] = None
        self._threads: List[threading.Thread] = []
        self.frames = 0
        self.shown = 0
        self.bad_frames = 0

    # --- lifecycle ------------------------------------------------------

    def open(self) -> None:
        self._server = LiveViewServer(
            self.host,
            self.port,
            token=self.token,
            hub=self.hub,
            page=build_page(),
            snapshot=self._snapshot,
            summary=self.summary.to_dict,
            health=self.health,
        )
        self.port = self._server.port
        self.hub.on_join = self._wake
        self._threads = [
            threading.Thread(target=self._server.serve_forever, args=(0.25,), name="leukedge-http", daemon=True),
            threading.Thread(target=self._broadcast_loop, name="leukedge-liveview", daemon=True),
        ]
        for t in self._threads:
            t.start()
        log.info("live view at %s", self.url)

    def close(self) -> None:
        if self._server is None:
            return
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._threads[1].join(timeout=5)
        self._tick(final=True)  # the last summary, then tell the pages the run ended
        time.sleep(0.2)  # let the handlers write the last messages
        self.hub.close_all()
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '[::]') else host}:{self.port}/"

    # --- the pipeline's side ---------------------------------------------

    def write(self, result: FrameResult) -> None:
        self.write_frame(result, None)

    def write_tracks(self, finals: Any, source: str) -> None:
        self.summary.add_finals(finals)  # counts of unique cells; the page shows them at the next tick

    def write_frame(self, result: FrameResult, frame: Optional[np.ndarray]) -> None:
        self.summary.update(result)
        now = time.monotonic()
        with self._cond:
            self.frames += 1
            for c in result.cells:
                if _is_rgb8(c.crop) and is_flagged(c, self.band):
                    self._flags.append((result.index, c))
            self._dirty = True
            if now - self._last_accept < self.period:
                return
            self._last_accept = now
        pixels = None
        if frame is not None and len(self.hub):  # copy only when someone watches
            if _is_rgb8(frame):
                pixels = frame.copy()
            else:
                self.bad_frames += 1
        with self._cond:
            self._latest = (result, pixels)  # the broadcaster takes it at its next tick

    # --- the broadcaster thread ------------------------------------------

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def _broadcast_loop(self) -> None:
        next_tick = time.monotonic()
        while True:
            with self._cond:
                while not self._stop and time.monotonic() < next_tick:
                    self._cond.wait(max(0.0, next_tick - time.monotonic()))
                if self._stop:
                    return
            next_tick = time.monotonic() + self.period
            try:
                self._tick()
            except Exception:  # an encoding bug must not end the live view
                log.exception("live view: a message could not be built")

    def _tick(self, final: bool = False) -> None:
        watching = len(self.hub) > 0
        with self._cond:
            latest, self._latest = self._latest, None
            dirty, self._dirty = self._dirty, False
            flags: List[Tuple[int, Cell]] = []
            now = time.monotonic()
            if watching and now >= self._next_gallery:
                # the newest few only: a person cannot follow more, and each crop costs an encode
                flags = list(self._flags)[-GALLERY_BATCH:]
                self._flags.clear()
                self._next_gallery = now + GALLERY_PERIOD_S
        if not watching:
            return
        if latest is not None:
            msg = sse("result", self._result_body(*latest))
            self._last_result_msg = msg
            self.shown += 1
            self.hub.broadcast(msg)
        elif dirty or final:
            self.hub.broadcast(sse("summary", self.summary.to_dict()))
        if flags:
            items = [self._flag_item(i, c) for i, c in flags]
            with self._cond:  # the HTTP threads read it for their snapshots
                self._gallery.extend(items)
            self.hub.broadcast(sse("flagged", {"items": items}))
        if final:
            self.hub.broadcast(sse("end", {"frames": self.frames}))

    def _result_body(self, result: FrameResult, pixels: Optional[np.ndarray]) -> Dict[str, Any]:
        return {
            "frame": result.index,
            "source": result.source,
            "t_capture": result.t_capture,
            "latency_ms": round(1000 * result.latency_s, 1),
            "width": result.width or (pixels.shape[1] if pixels is not None else 0),
            "height": result.height or (pixels.shape[0] if pixels is not None else 0),
            "image": None if pixels is None else self._jpeg(pixels),
            "cells": [c.to_dict() for c in result.cells],
            "summary": self.summary.to_dict(),
        }

    def _jpeg(self, rgb: np.ndarray) -> Optional[str]:
        h, w = rgb.shape[:2]
        if w > self.max_width:
            rgb = cv2.resize(rgb, (self.max_width, round(h * self.max_width / w)), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
        )
        return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode() if ok else None

    def _flag_item(self, frame: int, cell: Cell) -> Dict[str, Any]:
        assert cell.crop is not None
        ok, buf = cv2.imencode(".png", cv2.cvtColor(cell.crop, cv2.COLOR_RGB2BGR))
        image = "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode() if ok else ""
        return {"frame": frame, "cell": cell.index, "p_all": cell.p_all, "label": cell.label, "image": image}

    # --- what the server asks for ----------------------------------------

    def _snapshot(self) -> List[bytes]:
        out = [self._last_result_msg] if self._last_result_msg else []
        out.append(sse("summary", self.summary.to_dict()))
        with self._cond:
            gallery = list(self._gallery)
        if gallery:
            out.append(sse("flagged", {"items": gallery}))
        return out

    def health(self) -> Dict[str, Any]:
        s = self.summary.to_dict()
        age = s["last_result_age_s"]
        status = "waiting" if age is None else ("stale" if age > STALE_S else "ok")
        body: Dict[str, Any] = {
            "status": status,
            "uptime_s": s["uptime_s"],
            "frames": self.frames,
            "frames_shown": self.shown,
            "last_result_age_s": s["last_result_age_s"],
        }
        body.update(self.hub.stats())
        if self.health_extra is not None:
            try:
                body["sinks"] = self.health_extra()
            except Exception as exc:  # health must answer even if a sink's stats fail
                body["sinks"] = {"error": str(exc)}
        return body

    def stats(self) -> Dict[str, Any]:
        hub = self.hub.stats()
        return {
            "url": self.url if self._server else None,
            "frames": self.frames,
            "shown": self.shown,
            "clients": hub["clients"],
            "dropped": hub["dropped"],
            "bad_frames": self.bad_frames,  # frames handed over that were not H×W×3 uint8
        }


def _is_rgb8(a: Optional[np.ndarray]) -> bool:
    return a is not None and a.ndim == 3 and a.shape[2] == 3 and a.dtype == np.uint8
