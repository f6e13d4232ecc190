"""The live view's HTTP server: standard library only (ThreadingHTTPServer), Server-Sent Events.

Routes: ``/`` the page (CSS and JS inlined, nothing fetched from elsewhere),
``/events`` the SSE stream, ``/api/summary`` and ``/api/health`` as JSON.
On a loopback address no token is needed and the ``Host`` header must name
this server (a guard against DNS rebinding).  Any other address needs a
token, and every request must carry it: ``Authorization: Bearer <token>``,
``X-Leukedge-Token: <token>``, or ``?token=<token>`` (what a browser's
EventSource can send).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import re
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from leukedge.errors import InvalidInputError
from leukedge.liveview.clients import ClientClosed, ClientHub
from leukedge.liveview.page import Page

log = logging.getLogger("leukedge.liveview")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MIN_TOKEN_CHARS = 16
KEEPALIVE_S = 10.0
TOKEN_HINT = (
    "add --token, or set LEUKEDGE_TOKEN, to a long random string, "
    "e.g. $(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
)


def parse_bind(text: str) -> Tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT``, ``HOST`` or ``PORT`` → (host, port); port 0 picks a free one."""
    t = text.strip()
    m = re.fullmatch(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*))(?::(\d{1,5}))?", t)
    if t.isdigit():
        host, port = DEFAULT_HOST, int(t)
    elif m:
        host = m.group(1) or m.group(2) or DEFAULT_HOST
        port = int(m.group(3)) if m.group(3) else DEFAULT_PORT
    else:
        host, port = "", -1
    if not host or not 0 <= port < 65536:
        raise InvalidInputError(
            f"--serve {text!r} is not an address to listen on (expected HOST:PORT, e.g. 127.0.0.1:8080)",
            hint="use --serve 127.0.0.1:8080 for this machine only",
        )
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: treat as reachable from elsewhere


def host_header_is_local(header: str, bound: str = "") -> bool:
    """Whether an HTTP ``Host`` header names this machine's loopback: the DNS-rebinding guard.

    A page on an attacker's site can make a browser send requests to
    127.0.0.1 under the attacker's host name (rebinding).  The ``Host``
    header then carries that name, so only these are accepted: a loopback IP
    literal (``127.0.0.1``, ``127.8.9.10``, ``[::1]``), ``localhost``, and
    the name the server was bound to.  Host names that merely look local
    (``127.attacker.example``, ``localhost.attacker.example``) are not.
    """
    text = header.strip().lower()
    if not text or any(c in text for c in " /\\@\t"):
        return False
    if text.startswith("["):  # [IPv6] or [IPv6]:port
        end = text.find("]")
        rest = text[end + 1 :]
        if end < 0 or (rest and not re.fullmatch(r":\d{1,5}", rest)):
            return False
        name = text[1:end]
    else:
        name, _, port = text.partition(":")
        if port and not re.fullmatch(r"\d{1,5}", port):
            return False
    if name == "localhost" or (bound and name == bound):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # any other name: possibly rebound to us by someone else's DNS


def check_bind(host: str, port: int, token: Optional[str]) -> None:
    """Refuse a non-loopback address without a token, and tokens too short to resist guessing."""
    where = f"{host}:{port}"
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise InvalidInputError(
            f"--token is {len(token)} characters long, expected at least {MIN_TOKEN_CHARS}", hint=TOKEN_HINT
        )
    if token is None and not is_loopback(host):
        raise InvalidInputError(
            f"--serve {where} listens beyond this machine, so it needs a token (none given)", hint=TOKEN_HINT
        )


class LiveViewServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never blocks shutdown

    def __init__(
        self,
        host: str,
        port: int,
        *,
        token: Optional[str],
        hub: ClientHub,
        page: Page,
        snapshot: Callable[[], List[bytes]],
        summary: Callable[[], Dict[str, Any]],
        health: Callable[[], Dict[str, Any]],
    ) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.token = token
        self.hub = hub
        self.page = page
        self.snapshot = snapshot
        self.summary = summary
        self.health = health
        self.loopback_only = is_loopback(host)
        self.bound_name = host.strip("[]").lower()
        try:
            super().__init__((host, port), Handler)
        except OSError as exc:
            raise InvalidInputError(
                f"--serve {host}:{port}: cannot listen there ({exc.strerror or exc})",
                hint="choose another port (e.g. --serve 127.0.0.1:8081) or an address this machine has",
            ) from exc

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class Handler(BaseHTTPRequestHandler):
    server: LiveViewServer
    timeout = 30  # a client that takes no data for this long is dropped
    server_version = "leukedge-liveview"
    sys_version = ""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not self._allowed(url.query):
            return
        route = {
            "/": self._page,
            "/index.html": self._page,
            "/events": self._events,
            "/api/summary": lambda: self._json(self.server.summary()),
            "/api/health": lambda: self._json(self.server.health()),
        }.get(url.path)
        if route is None:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")
        else:
            route()

    def do_HEAD(self) -> None:
        self._send(405, b"", "text/plain; charset=utf-8")

    do_POST = do_PUT = do_DELETE = do_HEAD

    # --- access ----------------------------------------------------------

    def _allowed(self, query: str) -> bool:
        token = self.server.token
        if token is None:
            if self.server.loopback_only and not host_header_is_local(
                self.headers.get("Host") or "", self.server.bound_name
            ):
                self._send(403, b"forbidden: unexpected Host header\n", "text/plain; charset=utf-8")
                return False
            return True
        given = self.headers.get("X-Leukedge-Token") or ""
        auth = self.headers.get("Authorization") or ""
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not given:
            given = (parse_qs(query).get("token") or [""])[0]
        if given and hmac.compare_digest(given.encode(), token.encode()):
            return True
        body = b"unauthorized: this live view needs its token (open the page as /?token=...)\n"
        self._send(401, body, "text/plain; charset=utf-8", {"WWW-Authenticate": 'Bearer realm="leukedge"'})
        return False

    # --- responses -------------------------------------------------------

    def _page(self) -> None:
        self._send(200, self.server.page.html, "text/html; charset=utf-8", self.server.page.headers)

    def _json(self, body: Dict[str, Any]) -> None:
        self._send(200, json.dumps(body).encode(), "application/json")

    def _events(self) -> None:
        q = self.server.hub.join(self.client_address[0])
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            for msg in self.server.snapshot():
                self.wfile.write(msg)
            self.wfile.flush()
            while True:
                msg = q.get(KEEPALIVE_S)
                self.wfile.write(msg if msg is not None else b": keep-alive\n\n")
                self.wfile.flush()
        except (ClientClosed, OSError):  # server stopping, client gone, or stalled past the timeout
            pass
        finally:
            self.server.hub.leave(q)
            self.close_connection = True

    def _send(self, code: int, body: bytes, ctype: str, headers: Optional[Dict[str, str]] = None) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        # the request line may carry ?token=...: never log it
        text = re.sub(r"token=[^&\s\"]*", "token=<redacted>", format % args)
        log.debug("%s %s", self.address_string(), text)
