"""Per-client message queues for the live view: bounded, dropping the oldest, counting drops.

The broadcaster puts each encoded message into every client's queue and
never waits; a client that reads slowly loses its own old messages, nobody
else's, and never slows the pipeline.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional


class ClientClosed(Exception):
    """The server is shutting down; the client's stream ends."""


class ClientQueue:
    def __init__(self, maxlen: int, peer: str) -> None:
        self.maxlen = max(1, maxlen)
        self.peer = peer
        self._items: Deque[bytes] = deque()
        self._cond = threading.Condition()
        self.closed = False
        self.queued = 0
        self.dropped = 0

    def put(self, item: bytes) -> None:
        with self._cond:
            if len(self._items) >= self.maxlen:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self.queued += 1
            self._cond.notify()

    def get(self, timeout: float) -> Optional[bytes]:
        """The next message, or None after ``timeout`` seconds (time for a keep-alive)."""
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            if self.closed:
                raise ClientClosed
            return self._items.popleft() if self._items else None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class ClientHub:
    """The set of connected stream clients; thread-safe."""

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self._clients: List[ClientQueue] = []
        self._lock = threading.Lock()
        self.served = 0
        self.dropped_by_gone = 0  # drops of clients that have since disconnected
        self.on_join: Optional[Callable[[], None]] = None

    def join(self, peer: str) -> ClientQueue:
        q = ClientQueue(self.maxlen, peer)
        with self._lock:
            self._clients.append(q)
            self.served += 1
        if self.on_join:
            self.on_join()
        return q

    def leave(self, q: ClientQueue) -> None:
        with self._lock:
            if q in self._clients:
                self._clients.remove(q)
                self.dropped_by_gone += q.dropped

    def broadcast(self, item: bytes) -> None:
        with self._lock:
            clients = list(self._clients)
        for q in clients:
            q.put(item)

    def __len__(self) -> int:
        with self._lock:
            return len(self._clients)

    def close_all(self) -> None:
        with self._lock:
            clients = list(self._clients)
        for q in clients:
            q.close()

    def stats(self) -> Dict[str, Any]:
        with self._lock:
            clients: List[Dict[str, Any]] = [
                {"peer": q.peer, "queued": q.queued, "dropped": q.dropped} for q in self._clients
            ]
            dropped = self.dropped_by_gone + sum(q.dropped for q in self._clients)
        return {
            "clients": len(clients),
            "clients_served": self.served,
            "dropped": dropped,
            "per_client": clients,
        }
