"""A server killed with SIGKILL in the middle of an upload: after a restart, no partial file
and no row remain."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import func, select

from app.extensions import db
from app.models import Material
from tests.conftest import PASSWORD, ROOT, free_port
from tests.live_client import LiveClient


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen:
    """gunicorn as in production (gunicorn.conf.py, whose start-up hook sweeps uploads)."""
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "wsgi:app"]
    server = subprocess.Popen(command, cwd=ROOT, env=env | {"GUNICORN_BIND": f"127.0.0.1:{port}"},
                              start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except OSError:
            time.sleep(0.1)
    os.killpg(server.pid, signal.SIGKILL)
    raise AssertionError("the server did not start")


def test_sigkill_during_an_upload_leaves_nothing_after_restart(
    migrated_database, make_user, make_course, tmp_path
):
    teacher = make_user("tina", role="teacher", password=PASSWORD)
    course_id = make_course(teacher).id
    uploads = tmp_path / "server-uploads"
    env = os.environ | {
        "CAMPUS_CONFIG": "production",
        "SECRET_KEY": "crash-test-secret",
        "DATABASE_URL": migrated_database,
        "UPLOAD_DIR": str(uploads),
        "GUNICORN_LOG_LEVEL": "warning",
    }
    port = free_port()
    server = start_server(port, env)
    sock = None
    try:
        client = LiveClient(f"http://127.0.0.1:{port}")
        client.sign_in("tina", PASSWORD)
        boundary = "campus-crash-test"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
            f'{client.token}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.pdf"\r\nContent-Type: application/pdf\r\n\r\n%PDF-1.4\n'
        ).encode()
        cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        request = (
            f"POST /courses/{course_id}/materials HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Cookie: {cookies}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {20 * 1024 * 1024}\r\n\r\n"
        ).encode()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(request + head + b"x" * (2 * 1024 * 1024))  # a tenth of what it announced

        deadline = time.monotonic() + 10
        partial: list[Path] = []
        while not partial and time.monotonic() < deadline:
            partial = (
                [p for p in (uploads / "tmp").glob("*") if p.stat().st_size > 0]
                if (uploads / "tmp").exists()
                else []
            )
            time.sleep(0.05)
        assert partial, "the upload never reached the disk"
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        if sock is not None:
            sock.close()

    assert [p.name for p in (uploads / "tmp").glob("*")], "the kill should leave the partial file"
    server = start_server(port, env)
    try:
        assert list((uploads / "tmp").glob("*")) == []
        assert not (uploads / "files").exists() or list((uploads / "files").glob("*")) == []
        assert db.session.scalar(select(func.count()).select_from(Material)) == 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
