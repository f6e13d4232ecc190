"""Connecting to a Ray cluster (or starting a local one) without ever hanging.

``ray.init(address=...)`` waits a long time on an address where no Ray runs
(measured: over 90 s, printing warnings), and nothing in its API bounds that.
So the address is first tried with a plain TCP connect, and ``ray.init``
then runs in a helper thread that the caller stops waiting for after the
timeout.  A Ray version that differs from the cluster's is Ray's own check;
its ``RuntimeError`` becomes a :class:`ClusterError` that says what to install.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from leukedge.errors import ClusterError, InvalidInputError
from leukedge.extras import require

DEFAULT_PORT = 6379  # `ray start --head` listens here unless told otherwise


@dataclass
class ClusterInfo:
    address: str  # as the user gave it ("local" for a Ray started by this process)
    owned: bool  # this process connected (or started Ray), so it disconnects
    dashboard_url: str = ""
    nodes: List[Dict[str, Any]] = field(default_factory=list)  # alive nodes: NodeID, NodeManagerHostname, Resources
    cpus: float = 0.0
    gpus: float = 0.0

    def describe(self, workers: int) -> str:
        where = "a local Ray instance" if self.address == "local" else f"Ray cluster {self.address}"
        text = (
            f"cluster: {where}, {len(self.nodes)} node(s), {self.cpus:g} CPU(s), {self.gpus:g} GPU(s); "
            f"{workers} scoring worker(s)"
        )
        return text + (f"; dashboard {self.dashboard_url}" if self.dashboard_url else "")


def parse_address(address: str) -> Tuple[str, int]:
    """``HOST[:PORT]`` → (host, port); raises InvalidInputError for anything else."""
    text = address.strip()
    if text.startswith("ray://") or "/" in text:
        raise InvalidInputError(
            f"--cluster {address!r}: Ray Client addresses (ray://) and URLs are not supported",
            hint="run leukedge score on a machine of the cluster (for example the head) with --cluster HEAD_IP:6379",
        )
    host, _, port = text.rpartition(":") if ":" in text else (text, "", str(DEFAULT_PORT))
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInputError(
            f"--cluster is {address!r}, expected HOST:PORT of a Ray head node, 'auto' or 'local'",
            hint="the head prints its address when started: ray start --head --port 6379",
        )
    return host, int(port)


def connect(address: str, *, timeout_s: float, local_cpus: Optional[int] = None) -> ClusterInfo:
    """Connect to ``address`` (HOST[:PORT], "auto", or "local" to start Ray in this process)."""
    ray = require("ray")
    if ray.is_initialized():  # the caller's own connection (Python API): use it, leave it open
        return _describe(ray, ClusterInfo(address, owned=False))
    if address == "local":
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a lab's machine does not report usage
        kwargs: Dict[str, Any] = {
            "num_cpus": local_cpus,
            "include_dashboard": False,
            "object_store_memory": 128 * 1024 * 1024,  # chunks of paths and scores are small
        }
        # In this thread: Ray ties the processes it starts to the starting thread's life (PDEATHSIG),
        # so a helper thread's exit would kill them.  Starting locally cannot hang on a bad address.
        ctx = _init(ray, kwargs)
    else:
        if address != "auto":
            host, port = parse_address(address)
            _probe(address, host, port, timeout_s)
            address = f"{host}:{port}"
        kwargs = {"address": address}
        ctx = _init_within(ray, address, timeout_s, kwargs)
    info = ClusterInfo(address, owned=True, dashboard_url=_dashboard(ctx))
    return _describe(ray, info)


def disconnect(info: ClusterInfo) -> None:
    if info.owned:
        import ray

        ray.shutdown()


def _probe(address: str, host: str, port: int, timeout_s: float) -> None:
    try:
        with socket.create_connection((host, port), timeout=min(timeout_s, 10.0)):
            return
    except OSError as exc:
        raise ClusterError(
            f"--cluster {address}: cannot reach a Ray head node there ({exc.strerror or exc})",
            hint="start one with `ray start --head --port PORT` on that machine, check the address and that the "
            "port is open from here, or use --cluster local",
        ) from None


def _init_within(ray: Any, address: str, timeout_s: float, kwargs: Dict[str, Any]) -> Any:
    """``ray.init`` in a helper thread, given up on after ``timeout_s`` (it has no timeout of its own)."""
    box: Dict[str, Any] = {}

    def init() -> None:
        try:
            box["ctx"] = ray.init(logging_level=logging.ERROR, log_to_driver=False, **kwargs)
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=init, name="leukedge-ray-init", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise ClusterError(
            f"--cluster {address}: Ray did not connect within {timeout_s:.0f} s (something listens there, "
            "but it does not answer as a Ray head node)",
            hint="check that the address is the head's GCS port (ray start --head --port PORT), or raise "
            "--connect-timeout on a slow network",
        )
    exc = box.get("error")
    if exc is None:
        return box["ctx"]
    text = str(exc)
    if "InvalidAuthToken" in text or type(exc).__name__ == "AuthenticationError":
        raise ClusterError(
            f"--cluster {address}: the cluster uses token authentication, and this machine has not its token",
            hint="copy the head's ~/.ray/auth_token here, or set RAY_AUTH_TOKEN (see Ray's token-auth docs)",
        ) from None
    if "Version mismatch" in text:
        raise ClusterError(
            f"--cluster {address}: the cluster runs another Ray or Python version than this machine: "
            + " ".join(text.split()),
            hint="install the cluster's Ray version here (pip install 'ray[data]==X.Y.Z'), with the same Python",
        ) from None
    raise ClusterError(f"--cluster {address}: could not connect to Ray ({type(exc).__name__}: {text[:300]})") from None


def _init(ray: Any, kwargs: Dict[str, Any]) -> Any:
    try:
        return ray.init(logging_level=logging.ERROR, log_to_driver=False, **kwargs)
    except Exception as exc:
        raise ClusterError(
            f"--cluster local: Ray could not start here ({type(exc).__name__}: {str(exc)[:300]})",
            hint="check free memory and /tmp space; `ray start --head` shows Ray's own diagnosis",
        ) from None


def _dashboard(ctx: Any) -> str:
    url = str(getattr(ctx, "dashboard_url", "") or "")
    return url if not url or url.startswith("http") else f"http://{url}"


def _describe(ray: Any, info: ClusterInfo) -> ClusterInfo:
    info.nodes = [n for n in ray.nodes() if n.get("Alive")]
    total = ray.cluster_resources()
    info.cpus = float(total.get("CPU", 0.0))
    info.gpus = float(total.get("GPU", 0.0))
    return info
