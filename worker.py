"""gunicorn's gevent worker with limits on what one client can hold (DESIGN.md "Security").

A gevent worker holds thousands of connections, mostly WebSockets that wait quietly. Without
limits, one client can take every slot with requests that never finish arriving. This worker:

- cuts off a request whose line and headers are not in within `keepalive` seconds (gunicorn's
  own wait for the next request, which this worker also applies to the first one);
- cuts off a request body that arrives slower than GUNICORN_BODY_MIN_RATE bytes a second after
  a grace of GUNICORN_BODY_TIMEOUT seconds (408, and the connection is closed);
- refuses a new connection (429 with Retry-After, then closed) from an address that already
  holds GUNICORN_PENDING_PER_ADDRESS connections that are not open WebSockets. A connection
  stops counting only when the app has accepted its WebSocket handshake (signed in, our
  origin, and the app holds each person to 10 sockets), so a school behind one address keeps
  its tabs, and neither an Upgrade header nor a refused handshake frees a slot. Behind a
  reverse proxy every connection comes from the proxy: the cap is off by default there
  (TRUSTED_PROXIES), and the proxy's `limit_conn` does that job.

It also sends files (material downloads) with the kernel's `sendfile`, cooperatively: gevent's
sockets send a file with `send` in a loop, a third of the rate.

This module is imported by gunicorn's master, before the workers fork and patch the standard
library: it must not import the app (or anything that starts threads or imports ssl).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections import Counter

import gevent
from gevent.socket import wait_write
from gunicorn.http import wsgi as gunicorn_wsgi
from gunicorn.workers.ggevent import GeventWorker

_REFUSAL = b"Too many connections from your address. Try again.\n"
TOO_MANY = (
    b"HTTP/1.1 429 Too Many Requests\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Retry-After: 10\r\n"
    b"Connection: close\r\n"
    b"Content-Length: " + str(len(_REFUSAL)).encode() + b"\r\n"
    b"\r\n" + _REFUSAL
)
# The most a read may ask for when the body's length is not known (chunked).
UNKNOWN_LENGTH_STEP = 64 * 1024


def setting(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


class DeadlineBody:
    """A request body that must keep arriving: by `grace + received / min_rate` seconds after
    the request started, or the read ends in 408 and the connection is not reused."""

    def __init__(self, body, length: int | None, grace: float, min_rate: float) -> None:
        self.body = body
        self.length = length
        self.grace, self.min_rate = grace, min_rate
        self.started = time.monotonic()
        self.received = 0
        self.active = True  # off once the app is done: gunicorn bounds its own drain
        self.failed = False  # read by gunicorn: a failed body closes the connection

    def _read(self, method, size):
        if not self.active:
            return method(size)
        if size is None or size < 0:
            size = self.length - self.received if self.length is not None else -1
        ask = UNKNOWN_LENGTH_STEP if size < 0 else size
        if self.length is not None:
            ask = min(ask, self.length - self.received)
        deadline = self.started + self.grace + (self.received + ask) / self.min_rate
        timer = gevent.Timeout(max(0.0, deadline - time.monotonic()))
        timer.start()
        try:
            data = method(size)
        except gevent.Timeout as expired:
            if expired is not timer:
                raise
            self.failed = True
            from werkzeug.exceptions import RequestTimeout

            raise RequestTimeout("The request body arrived too slowly.") from None
        finally:
            timer.close()
        self.received += len(data)
        return data

    def read(self, size=None):
        return self._read(self.body.read, size)

    def readline(self, size=None):
        return self._read(self.body.readline, size)

    def readlines(self, size=None):
        return list(iter(self.readline, b""))

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line


# The app calls this environ entry once it accepts a WebSocket handshake (signed in, our
# origin, under the person's socket limit): from then on the connection waits by design and
# no longer counts against its address.
WEBSOCKET_ACCEPTED = "campus.websocket_accepted"


# sendfile: how much one call may send, and how much a download sends before it lets the
# other greenlets of the worker run (a fast reader never makes the socket wait).
SENDFILE_STEP = 4 * 1024 * 1024
SENDFILE_YIELD_EVERY = 16 * 1024 * 1024


class ZeroCopySocket:
    """The client's socket, with a `sendfile` that uses the kernel's and waits for the socket
    to be writable between calls (the socket is non-blocking under gevent)."""

    def __init__(self, sock) -> None:
        self._sock = sock

    def __getattr__(self, name: str):
        return getattr(self._sock, name)

    def sendfile(self, file, offset: int = 0, count: int | None = None) -> int:
        out, source = self._sock.fileno(), file.fileno()
        if count is None:
            count = os.fstat(source).st_size - offset
        sent = since_yield = 0
        while sent < count:
            try:
                step = os.sendfile(out, source, offset + sent, min(SENDFILE_STEP, count - sent))
            except BlockingIOError:
                wait_write(out, timeout=self._sock.gettimeout())
                continue
            if step == 0:  # the file is shorter than it was said to be
                break
            sent += step
            since_yield += step
            if since_yield >= SENDFILE_YIELD_EVERY:
                since_yield = 0
                gevent.sleep(0)
        return sent


class ZeroCopyResponse(gunicorn_wsgi.Response):
    def __init__(self, req, sock, cfg) -> None:
        super().__init__(req, ZeroCopySocket(sock), cfg)


class CampusWorker(GeventWorker):
    def init_process(self) -> None:
        # gunicorn builds each response with its module's `Response`: in this worker's process,
        # ours, whose socket sends files with the kernel's sendfile.
        gunicorn_wsgi.Response = ZeroCopyResponse
        self.body_grace = setting("GUNICORN_BODY_TIMEOUT", 10.0)
        self.body_min_rate = setting("GUNICORN_BODY_MIN_RATE", 10 * 1024)
        behind_proxy = int(os.environ.get("TRUSTED_PROXIES") or 0) > 0
        self.pending_cap = int(setting("GUNICORN_PENDING_PER_ADDRESS", 0 if behind_proxy else 500))
        self.pending: Counter[str] = Counter()
        # id(client) -> [address, counted]: each open connection, and whether it counts now.
        self.connections: dict[int, list] = {}
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi

        def with_socket_hook(environ, start_response):
            state = self.connections.get(id(environ.get("gunicorn.socket")))
            if state is not None:
                environ[WEBSOCKET_ACCEPTED] = lambda: self._uncount(state)
            return app(environ, start_response)

        self.wsgi = with_socket_hook

    def timeout_ctx(self):
        # The wait for a request line and its headers, the first request included.
        return gevent.Timeout(self.cfg.keepalive or 5, False)

    def handle(self, listener, client, addr) -> None:
        address = addr[0] if isinstance(addr, tuple) else str(addr)
        if self.pending_cap and self.pending[address] >= self.pending_cap:
            refuse(client)
            return
        state = self.connections[id(client)] = [address, True]
        self.pending[address] += 1
        try:
            super().handle(listener, client, addr)
        finally:
            self.connections.pop(id(client), None)
            self._uncount(state)

    def _uncount(self, state: list) -> None:
        address, counted = state
        if counted:
            state[1] = False
            self.pending[address] -= 1
            if self.pending[address] <= 0:
                del self.pending[address]

    def handle_request(self, listener_name, req, sock, addr):
        length = getattr(req.body.reader, "length", None)  # None: chunked
        body = req.body = DeadlineBody(req.body, length, self.body_grace, self.body_min_rate)
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            body.active = False
            state = self.connections.get(id(sock))
            if state is not None and not state[1]:  # a socket ended, the connection goes on
                state[1] = True
                self.pending[state[0]] += 1


def refuse(client) -> None:
    """Answer 429 and close, without waiting for the request: what already arrived is read
    first, so that closing does not reset the connection before the answer is read."""
    with contextlib.suppress(OSError):
        client.sendall(TOO_MANY)
        client.shutdown(socket.SHUT_WR)
        client.setblocking(False)
        client.recv(65536)
    with contextlib.suppress(OSError):
        client.close()
