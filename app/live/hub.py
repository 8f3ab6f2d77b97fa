"""The sockets open in this process, by person, each with its own queue of frames to send and
a writer that sends them, so that one tab that stops reading holds up nobody else."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic
from typing import Any

from wsproto.frame_protocol import FrameProtocol

from app.live.broker import Delivery, new_socket_id

log = logging.getLogger(__name__)

# DESIGN.md "Live updates": more than 10 messages in 5 seconds is refused.
BURST, WINDOW = 10, 5.0
# WebSocket close codes: the session ended; the server restarts (the tab reconnects); the tab
# fell too far behind (it reconnects too, and resumes from what it shows).
CLOSE_POLICY, CLOSE_RESTART, CLOSE_TRY_AGAIN = 1008, 1012, 1013
# A socket with this many frames waiting to be written is closed with CLOSE_TRY_AGAIN.
QUEUE_LIMIT = 200
# Frames the socket's own thread adds (a resume's missed messages) wait while this many are
# queued, leaving room for live messages meanwhile.
OWN_QUEUE_LIMIT = QUEUE_LIMIT // 2
# Each wait of a write; a write that makes no progress for WRITE_STALL seconds gives the
# socket up (the peer is gone, or asleep with its buffer full), as nginx's `send_timeout`.
WRITE_STEP, WRITE_STALL = 1.0, 60.0
# The kernel's send buffer of a socket (Linux doubles it). Left to itself it grows to 4 MiB
# for a peer that stopped reading, where frames are neither counted nor dropped; fixed, the
# frames past it wait in the socket's queue and count towards QUEUE_LIMIT. Fragments are a
# few hundred bytes: this is room for a hundred or more.
SEND_BUFFER = 64 * 1024


def text_frame(html: str) -> bytes:
    """One unfragmented text frame, as the server sends it (unmasked). The same bytes go to
    every socket: the app negotiates no extension (permessage-deflate is refused before the
    upgrade, app/blueprints/chat/routes.py), so no socket changes a frame's bytes."""
    return bytes(FrameProtocol(client=False, extensions=[]).send_data(html))


def write_whole(sock: socket.socket, data: bytes | bytearray) -> None:
    """Write all of `data`, however long the peer takes, as long as it keeps taking some; a
    write that makes no progress for WRITE_STALL seconds raises TimeoutError."""
    view, progress = memoryview(data), monotonic()
    while view:
        try:
            written = sock.send(view)
        except TimeoutError:
            if monotonic() - progress >= WRITE_STALL:
                raise
            continue
        view, progress = view[written:], monotonic()


class FrameWriter:
    """The socket as simple-websocket sees it: its own writes (pings, pongs, the closing frame)
    and the live frames take turns and each is written whole, so no frame is ever cut by
    another.

    `try_send` is the fast path of a fan-out: it writes a frame only if the socket takes it
    without waiting, from the publisher's own thread, as one `write` system call. Whatever
    part of the frame the kernel did not take stays `pending` and goes out, before any other
    frame, with the next `send` or `flush` (the socket's writer's job)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.pending: memoryview | None = None
        sock.settimeout(WRITE_STEP)  # also puts the descriptor in non-blocking mode
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        # A TLS socket must be written through its own `send`; a plain one may be written
        # straight to its descriptor, which never waits.
        self._fd = None if hasattr(sock, "cipher") else sock.fileno()

    def try_send(self, data: bytes) -> bool:
        """True when the frame is taken (written, or started with the rest pending); False
        when nothing was written because the socket is full or busy. Raises OSError when the
        socket is broken."""
        if self._fd is None or self.pending is not None:
            return False
        if not self.lock.acquire(blocking=False):
            return False
        try:
            # Once the socket is closed its number is free, and the next connection accepted
            # gets it: a frame written to the old number would reach a stranger's page.
            if self._fd is None or self.sock.fileno() != self._fd:
                raise OSError(errno.EBADF, "the socket is closed")
            written = os.write(self._fd, data)
        except BlockingIOError:
            return False
        else:
            if written < len(data):
                self.pending = memoryview(data)[written:]
            return True
        finally:
            self.lock.release()

    def retire(self) -> None:
        """The socket's own thread is done with it: never write to its number again."""
        self._fd = None

    def close(self) -> None:
        self._fd = None
        self.sock.close()

    def flush(self) -> None:
        with self.lock:
            self._flush()

    def send(self, data: bytes | bytearray) -> int:
        with self.lock:
            self._flush()
            write_whole(self.sock, data)
        return len(data)

    sendall = send

    def _flush(self) -> None:
        if self.pending is not None:
            write_whole(self.sock, self.pending)
            self.pending = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@dataclass(frozen=True)
class Outgoing:
    html: str
    frame: bytes
    room: int | None = None
    message_id: int | None = None


@dataclass(eq=False)
class Connection:
    """One open socket: who it belongs to, the rooms its tab shows, the newest message of each
    room it was sent (so that closing the tab can mark them read), and its outgoing queue.

    A frame for a socket whose queue is empty is written at once by whoever sends it, if the
    socket takes it without waiting (nearly always: a fragment is a few hundred bytes). The
    others are queued, and a writer thread (a greenlet under gevent) started for the socket
    writes them in order and ends when the queue is empty, so an idle socket costs no thread
    and a fan-out costs one system call a member. A socket that falls QUEUE_LIMIT frames
    behind is closed with 1013: htmx's ws extension reconnects after that code and the tab
    resumes from what it shows."""

    ws: Any
    user_id: int
    id: str = field(default_factory=new_socket_id)
    rooms: set[int] = field(default_factory=set)
    # The newest message of each room written to the socket, and queued for it.
    seen: dict[int, int] = field(default_factory=dict)
    queued: dict[int, int] = field(default_factory=dict)
    error_shown: bool = False
    _sent_at: deque[float] = field(default_factory=deque)
    _outbox: deque[Outgoing] = field(default_factory=deque)
    _state: threading.Lock = field(default_factory=threading.Lock)  # the queue and the writer
    _room: threading.Event | None = None  # the socket's own thread waits on it for room
    _closing: tuple[int, str] | None = None
    _stopped: bool = False
    _started: bool = False
    _writer: threading.Thread | None = None

    def start(self) -> None:
        """From now on frames are queued and written by a writer when the socket is busy."""
        if not isinstance(self.ws.sock, FrameWriter):
            self.ws.sock = FrameWriter(self.ws.sock)
        self._started = True

    def send(
        self,
        html: str,
        room: int | None = None,
        message_id: int | None = None,
        frame: bytes | None = None,
    ) -> bool:
        """Write or queue one fragment (its frame, when the caller encoded it once for many
        sockets); False when the socket is closing. A socket's own thread waits while its
        queue is half full; others never wait: a socket QUEUE_LIMIT frames behind is closed
        instead."""
        if self._started and len(self._outbox) >= OWN_QUEUE_LIMIT:
            self._wait_for_room()
        if self._closing or self._stopped:
            return False
        if len(self._outbox) >= QUEUE_LIMIT:
            log.info("live: a socket of user %s fell behind; closing it", self.user_id)
            self.close(CLOSE_TRY_AGAIN, "Fell behind: reconnect to catch up")
            return False
        item = Outgoing(html, frame or text_frame(html), room, message_id)
        if room is not None and message_id is not None:
            self.queued[room] = max(self.queued.get(room, 0), message_id)
        if not self._started:  # the hub on its own: written here
            return self._write_one(item)
        with self._state:
            if self._closing or self._stopped:  # stopped while this waited for the lock
                return False
            if not self._outbox and self._writer is None:
                try:
                    taken = self.ws.sock.try_send(item.frame)
                except OSError:
                    log.info("live: a socket of user %s is gone", self.user_id)
                    self._abort()
                    return False
                if taken:
                    self._written(item)
                    if self.ws.sock.pending is not None:
                        self._start_writer()
                    return True
            self._outbox.append(item)
            self._start_writer()
        return True

    def close(self, code: int, reason: str) -> None:
        """Drop what is queued and close the socket with `code` (its writer sends the closing
        frame); its own thread then finds it closed and cleans up."""
        if not self._started:
            if self._closing is None:
                self._closing = (code, reason)
                self._finish(code, reason)
            return
        with self._state:
            if self._closing is not None:
                return
            self._closing = (code, reason)
            self._outbox.clear()
            self._start_writer()
        if self._room is not None:
            self._room.set()

    def stop(self) -> None:
        """The socket's own thread is done with it: a writer still running sends the closing
        frame asked for, if any, and ends (waited for a moment, so that flask-sock's own
        closing frame comes after it)."""
        with self._state:
            self._stopped = True
            self._outbox.clear()
            writer = self._writer
            if isinstance(self.ws.sock, FrameWriter):
                self.ws.sock.retire()
        if writer is not None and writer is not threading.current_thread():
            writer.join(timeout=2 * WRITE_STEP)

    def behind(self) -> int:
        return len(self._outbox)

    def over_limit(self) -> bool:
        """Count one incoming message; True when it is one too many for the window."""
        now = monotonic()
        while self._sent_at and now - self._sent_at[0] > WINDOW:
            self._sent_at.popleft()
        if len(self._sent_at) >= BURST:
            return True
        self._sent_at.append(now)
        return False

    def _wait_for_room(self) -> None:
        """The socket's own thread (a resume's many messages) waits for its writer; anyone
        else queues, or closes the socket when it is full."""
        if not _is_own_thread(self):
            return
        if self._room is None:
            self._room = threading.Event()
        deadline = monotonic() + WRITE_STALL
        while len(self._outbox) >= OWN_QUEUE_LIMIT and not (self._closing or self._stopped):
            self._room.clear()
            if len(self._outbox) < OWN_QUEUE_LIMIT:
                return
            if not self._room.wait(timeout=max(deadline - monotonic(), 0)):
                return

    def _start_writer(self) -> None:
        """With `_state` held: a writer for the queue, unless one runs."""
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_all, name=f"campus-live-writer-{self.id[:8]}", daemon=True
            )
            self._writer.start()

    def _write_all(self) -> None:
        sock = self.ws.sock
        try:
            sock.flush()
        except Exception:
            self._gone()
            return
        while True:
            with self._state:
                if self._stopped or not self._outbox:
                    closing = self._closing
                    self._writer = None
                    break
                item = self._outbox.popleft()
                room = self._room
            if not self._write_one(item):
                return
            if room is not None and len(self._outbox) < OWN_QUEUE_LIMIT:
                room.set()
        if closing is not None:
            self._finish(*closing)

    def _write_one(self, item: Outgoing) -> bool:
        try:
            if isinstance(getattr(self.ws, "sock", None), FrameWriter):
                self.ws.sock.send(item.frame)
            else:
                self.ws.send(item.html)
        except Exception:  # a broken socket raises whatever its transport raises
            self._gone()
            return False
        self._written(item)
        return True

    def _written(self, item: Outgoing) -> None:
        if item.room is not None and item.message_id is not None:
            self.seen[item.room] = max(self.seen.get(item.room, 0), item.message_id)

    def _gone(self) -> None:
        log.info("live: a socket of user %s is gone", self.user_id)
        with self._state:
            self._writer = None
        self._abort()

    def _finish(self, code: int, reason: str) -> None:
        """Send the closing frame; the socket's own thread wakes and finds it closed."""
        try:
            self.ws.close(reason=code, message=reason)
        except Exception:
            self._abort()
        with contextlib.suppress(Exception):
            self.ws.event.set()

    def _abort(self) -> None:
        """The socket cannot be written to: it ends without a closing frame (the tab sees 1006
        and reconnects)."""
        self._stopped = True
        self._outbox.clear()
        if self._room is not None:
            self._room.set()
        with contextlib.suppress(Exception):
            self.ws.connected = False
            self.ws.event.set()
        with contextlib.suppress(Exception):
            self.ws.sock.shutdown(socket.SHUT_RDWR)


def _is_own_thread(connection: Connection) -> bool:
    return getattr(_handlers, "connection", None) is connection


_handlers = threading.local()


def serving(connection: Connection) -> Callable[[], None]:
    """Mark the calling thread as the socket's own (its fragments wait for room in the queue
    rather than overflow it); returns the function that unmarks it."""
    _handlers.connection = connection

    def done() -> None:
        _handlers.connection = None

    return done


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
        """Queue the delivery on this process's sockets of the people it is for: encoded once,
        the same frame for all; each socket's writer sends it."""
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
        if not targets:
            return
        frame = text_frame(delivery.html)
        for connection in targets:
            if not connection.send(delivery.html, delivery.room, delivery.message_id, frame):
                self.remove(connection)
