"""Downloads through the real server (gunicorn's gevent worker, worker.py), which sends files
with the kernel's sendfile between waits for the socket: whole files arrive byte for byte,
ranges and 304s work as before, a reader that stops reading holds up nobody else."""

from __future__ import annotations

import hashlib
import http.client
import os
import secrets
import socket
import time

import pytest

from app.extensions import db
from app.models import Material
from tests.conftest import PASSWORD, ROOT
from tests.live_client import LiveClient

SIZE = 24 * 1024 * 1024 + 12345  # several sendfile steps, and not a round number


@pytest.fixture
def big_file(live_server, make_user, make_course):
    """A 24 MB material of random bytes in the live server's upload folder, and a student
    enrolled in its course, signed in."""
    from app.blueprints.enrollments.services import enroll

    teacher = make_user("tina", role="teacher")
    course = make_course(teacher, title="Films")
    student = make_user("sam")
    enroll(student, course.id)
    folder = ROOT / "instance" / "test-live-uploads" / "files"
    folder.mkdir(parents=True, exist_ok=True)
    content = os.urandom(SIZE)
    name = secrets.token_hex(16)
    (folder / name).write_bytes(content)
    material = Material(
        course_id=course.id, title="Film", original_name="film.mp4", stored_name=name,
        content_type="video/mp4", size=SIZE, sha256=hashlib.sha256(content).hexdigest(),
        uploaded_by_id=teacher.id,
    )  # fmt: skip
    db.session.add(material)
    db.session.commit()
    client = LiveClient(live_server)
    client.sign_in("sam", PASSWORD)
    yield client, material.id, content, material.sha256
    (folder / name).unlink(missing_ok=True)


def get(client: LiveClient, path: str, headers: dict | None = None):
    connection = http.client.HTTPConnection(client.host, client.port, timeout=30)
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    connection.request("GET", path, headers={"Cookie": cookie, **(headers or {})})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def test_a_whole_file_a_range_and_a_304(big_file):
    client, material_id, content, sha = big_file
    url = f"/materials/{material_id}/download"
    response, body = get(client, url)
    assert response.status == 200 and body == content
    assert response.getheader("Content-Length") == str(SIZE)

    start, end = 5 * 1024 * 1024 - 7, 9 * 1024 * 1024 + 3
    response, body = get(client, url, {"Range": f"bytes={start}-{end}"})
    assert response.status == 206 and body == content[start : end + 1]
    response, body = get(client, url, {"Range": f"bytes={SIZE - 100}-"})
    assert response.status == 206 and body == content[-100:]

    response, body = get(client, url, {"If-None-Match": f'"{sha}"'})
    assert response.status == 304 and body == b""


def test_a_reader_that_stops_reading_holds_up_nobody_and_gets_everything_later(big_file):
    client, material_id, content, _ = big_file
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    slow = socket.create_connection((client.host, client.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    request = (
        f"GET /materials/{material_id}/download HTTP/1.1\r\nHost: {client.host}\r\n"
        f"Cookie: {cookie}\r\nConnection: close\r\n\r\n"
    )
    slow.sendall(request.encode())
    time.sleep(0.3)  # the server fills the socket's buffers and waits for it

    # Meanwhile the same (single) worker answers others at once.
    for _ in range(5):
        began = time.monotonic()
        assert get(client, "/healthz")[0].status == 200
        assert time.monotonic() - began < 0.5

    received = bytearray()
    slow.settimeout(30)
    while chunk := slow.recv(1024 * 1024):
        received += chunk
    slow.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == content
