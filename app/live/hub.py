"""The sockets open in this process, by person, and sending to them safely from any thread."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from app.live.broker import Delivery, new_socket_id

log = logging.getLogger(__name__)

# DESIGN.md "Live updates": more than 10 messages in 5 seconds is refused.
BURST, WINDOW = 10, 5.0
# WebSocket close codes: the session ended; the server restarts (the tab reconnects).
CLOSE_POLICY, CLOSE_RESTART = 1008, 1012


@dataclass(eq=False)
class Connection:
    """One open socket: who it belongs to, the rooms its tab shows, and the newest message of
    each room it was sent (so that closing the tab can mark them read)."""

    ws: Any
    user_id: int
    id: str = field(default_factory=new_socket_id)
    rooms: set[int] = field(default_factory=set)
    seen: dict[int, int] = field(default_factory=dict)
    error_shown: bool = False
    _sent_at: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, html: str, room: int | None = None, message_id: int | None = None) -> bool:
        """Send one fragment; False when the socket is gone. The socket's own thread and the
        broker's thread both send, and a WebSocket frame must not be interleaved."""
        try:
            with self._lock:
                self.ws.send(html)
        except Exception:  # a broken socket raises whatever its transport raises
            return False
        if room is not None and message_id is not None:
            self.seen[room] = max(self.seen.get(room, 0), message_id)
        return True

    def close(self, code: int, reason: str) -> None:
        """Close the socket; its own thread then finds it closed and cleans up."""
        with contextlib.suppress(Exception), self._lock:
            self.ws.close(reason=code, message=reason)

    def over_limit(self) -> bool:
        """Count one incoming message; True when it is one too many for the window."""
        now = monotonic()
        while self._sent_at and now - self._sent_at[0] > WINDOW:
            self._sent_at.popleft()
        if len(self._sent_at) >= BURST:
            return True
        self._sent_at.append(now)
        return False


class Hub:
    def __init__(self) -> None:
        self._by_user: dict[int, set[Connection]] = {}
        self._lock = threading.Lock()

    def add(self, connection: Connection) -> None:
        with self._lock:
            self._by_user.setdefault(connection.user_id, set()).add(connection)

    def remove(self, connection: Connection) -> None:
        with self._lock:
            connections = self._by_user.get(connection.user_id)
            if connections is not None:
                connections.discard(connection)
                if not connections:
                    del self._by_user[connection.user_id]

    def close_all(self, code: int, reason: str) -> None:
        with self._lock:
            connections = [c for group in self._by_user.values() for c in group]
        for connection in connections:
            connection.close(code, reason)

    def count(self) -> int:
        with self._lock:
            return sum(len(connections) for connections in self._by_user.values())

    def deliver(self, delivery: Delivery) -> None:
        """Send to this process's sockets of the people the delivery is for."""
        with self._lock:
            targets = [
                connection
                for user_id in delivery.user_ids
                for connection in self._by_user.get(user_id, ())
            ]
        if delivery.close:
            for connection in targets:
                connection.close(CLOSE_POLICY, "Signed out")
            return
        for connection in targets:
            if not connection.send(delivery.html, delivery.room, delivery.message_id):
                log.info("live: dropping a closed socket of user %s", connection.user_id)
                self.remove(connection)
