"""Against a real gunicorn with the production worker (worker.CampusWorker): a large body is
refused before it is sent, a body or headers that trickle in are cut off at their deadline,
and one address cannot take every connection (DESIGN.md "Security")."""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PASSWORD, ROOT, running_server
from tests.live_client import LiveClient

MB = 1024 * 1024
FORM = "application/x-www-form-urlencoded"
GRACE, MIN_RATE, PENDING_CAP, KEEPALIVE = 1.0, 1000, 20, 1


@pytest.fixture(scope="module")
def server(migrated_database: str, search_index_dir: str) -> Iterator[str]:
    """A server with short deadlines, so that the tests wait seconds, not minutes."""
    settings = {
        "GUNICORN_BODY_TIMEOUT": str(GRACE),
        "GUNICORN_BODY_MIN_RATE": str(MIN_RATE),
        "GUNICORN_PENDING_PER_ADDRESS": str(PENDING_CAP),
        "GUNICORN_KEEPALIVE": str(KEEPALIVE),
    }
    with running_server(migrated_database, **settings) as url:
        yield url


def connect(server: str, source: str = "127.0.0.1") -> socket.socket:
    host, port = server.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))
    return sock


def head(method: str, path: str, length: int, cookie: str = "", kind: str = "") -> bytes:
    kind = kind or "multipart/form-data; boundary=campus-boundary"
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        f"Content-Type: {kind}",
        f"Content-Length: {length}",
    ]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status of the response, and everything the server sent until it closed."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except TimeoutError:
        pass
    status = int(received.split(b" ", 2)[1]) if received.startswith(b"HTTP/") else 0
    return status, received


def status_line(sock: socket.socket) -> tuple[int, float]:
    """Wait for the response's first line: its status, and how long it took."""
    started = time.monotonic()
    received = b""
    while b"\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return int(received.split(b" ", 2)[1]), time.monotonic() - started


def live_tmp_files() -> list[Path]:
    folder = ROOT / "instance" / "test-live-uploads" / "tmp"
    return list(folder.iterdir()) if folder.exists() else []


def test_five_megabytes_are_refused_before_they_are_sent(server, make_user, make_course):
    teacher = make_user("tina", role="teacher")
    course = make_course(teacher, title="Geography")
    student = make_user("sam")
    browser = LiveClient(server)
    browser.sign_in(student.username, PASSWORD)
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
    for path, who, expected in [
        ("/auth/login", "", 413),
        ("/profile/edit", "", 413),
        (f"/courses/{course.id}/materials", cookie, 403),
    ]:
        with connect(server) as sock:
            sock.sendall(head("POST", path, 5 * MB, who) + b"--campus-boundary\r\n" + b"x" * 1024)
            status, waited = status_line(sock)
        # The rest of the 5 MB was never sent: the answer came from the headers alone.
        assert (path, status) == (path, expected)
        assert waited < 1.0, f"{path} answered after {waited:.2f} s"
    assert live_tmp_files() == []


def test_a_stalled_body_is_cut_off_at_its_deadline(server):
    length = 100  # the deadline: GRACE + 100 / MIN_RATE = 1.1 s after the request started
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(head("POST", "/auth/login", length, kind=FORM))
        sock.sendall(b"login=ana&pa")
        status, answer = read_answer(sock)  # returns when the server closes the connection
        elapsed = time.monotonic() - started
    assert status == 408, answer[:200]
    assert GRACE <= elapsed < GRACE + 2, f"cut off after {elapsed:.2f} s"


def test_a_body_that_trickles_is_cut_off_too(server):
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(head("POST", "/auth/login", 100, kind=FORM))
        sock.settimeout(0.25)
        answer = b""
        for _ in range(40):  # a byte every quarter second keeps a naive idle timeout happy
            try:
                sock.sendall(b"a")
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert elapsed < GRACE + 2, f"cut off after {elapsed:.2f} s"


def test_headers_that_trickle_in_are_cut_off(server):
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed = False
        for _ in range(40):
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                sock.settimeout(0.25)
                if sock.recv(65536) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
        elapsed = time.monotonic() - started
    assert closed, "the server kept waiting for the headers"
    assert elapsed < KEEPALIVE + 2, f"closed after {elapsed:.2f} s"


def test_one_address_cannot_take_every_connection(server):
    stalled = []
    try:
        for _ in range(PENDING_CAP):
            sock = connect(server)
            sock.sendall(head("POST", "/auth/login", 10_000, kind=FORM))
            stalled.append(sock)
        time.sleep(0.3)  # the worker has accepted them all
        with connect(server) as refused:  # answered at once, before any request is sent
            status, answer = read_answer(refused)
        assert status == 429
        assert b"Retry-After: 10" in answer
        # Someone else, from another address, is served as usual meanwhile.
        with connect(server, source="127.0.0.2") as other:
            other.sendall(b"GET /courses HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            status, _ = read_answer(other)
        assert status == 200
    finally:
        for sock in stalled:
            sock.close()
    # Once the stalled connections are gone, the address is served again.
    time.sleep(0.3)
    with connect(server) as again:
        again.sendall(b"GET /courses HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        status, _ = read_answer(again)
    assert status == 200


def hold_the_cap(server: str, first: bytes = b"", extra_headers: str = "") -> list[socket.socket]:
    """PENDING_CAP connections from 127.0.0.1, each stalled in a login body."""
    stalled = []
    try:
        for _ in range(PENDING_CAP):
            sock = connect(server)
            stalled.append(sock)
            if first:  # a request answered first on the same connection
                sock.sendall(first)
                assert whole_response(sock).startswith(b"HTTP/1.1 ")
            request = head("POST", "/auth/login", 10_000, kind=FORM)
            if extra_headers:
                request = request.replace(b"\r\n\r\n", f"\r\n{extra_headers}\r\n\r\n".encode())
            sock.sendall(request)
        time.sleep(0.3)
        for sock in stalled:  # each was let in: it waits for its body, no 429 came back
            sock.settimeout(0.01)
            with contextlib.suppress(TimeoutError):
                assert not sock.recv(65536), "a stalled connection was answered"
    except BaseException:
        for sock in stalled:
            sock.close()
        raise
    return stalled


def whole_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, read to its end; the connection stays open."""
    sock.settimeout(5)
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head_part, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head_part).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return received


def refused_at_once(server: str) -> bool:
    with connect(server) as sock:
        status, _ = read_answer(sock)
    return status == 429


def test_an_upgrade_header_does_not_free_a_slot(server):
    stalled = hold_the_cap(server, extra_headers="Upgrade: websocket")
    try:
        assert refused_at_once(server)
    finally:
        for sock in stalled:
            sock.close()


def test_a_refused_handshake_does_not_free_a_slot(server):
    handshake = (
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    stalled = hold_the_cap(server, first=handshake)  # 401: no session
    try:
        assert refused_at_once(server)
    finally:
        for sock in stalled:
            sock.close()


def test_open_websockets_do_not_count_against_the_address(server, make_user):
    from tests.chat.test_live import socket_of

    make_user("sam")
    browser = LiveClient(server)
    browser.sign_in("sam", PASSWORD)
    tabs = [socket_of(server, browser) for _ in range(10)]
    try:
        # Beside ten open tabs, the address still has its whole cap for other connections.
        stalled = hold_the_cap(server)
        try:
            assert refused_at_once(server)  # and no more
        finally:
            for sock in stalled:
                sock.close()
    finally:
        for tab in tabs:
            tab.close()
