"""What a failed sign-in leaves in the log: one warning line an operator can use, never a
traceback, under gunicorn's gevent worker as in production."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from app.blueprints.auth import services
from app.errors import InvalidInput
from tests.conftest import running_server
from tests.live_client import CSRF_META, LiveClient


def settled(path: Path) -> str:
    """The file's text once nothing has been added to it for a moment."""
    text, deadline = path.read_text(), time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.3)
        newer = path.read_text()
        if newer == text:
            break
        text = newer
    return text


def test_a_failed_sign_in_under_gevent_logs_one_line_and_no_traceback(
    migrated_database, make_user, tmp_path
):
    make_user("grace")
    log = tmp_path / "server.log"
    with running_server(migrated_database, stderr_path=log) as url:
        client = LiveClient(url)
        _, page = client.request("GET", "/auth/login")
        token = CSRF_META.search(page).group(1)
        before = settled(log)
        form = {"login": "Grace", "password": "not-her-password", "csrf_token": token}
        status, _ = client.request("POST", "/auth/login", form)
        added = settled(log)[len(before) :]

    assert status == 422
    assert "Traceback" not in added
    lines = added.splitlines()
    assert len(lines) == 1, added
    assert "WARNING" in lines[0]
    assert "sign-in failed" in lines[0]
    assert "'Grace'" in lines[0] and "127.0.0.1" in lines[0]


@pytest.mark.parametrize(
    ("login", "shown"),
    [
        ("grace\nWARNING forged line", r"'grace\nWARNING forged line'"),
        ("\x1b[2Jgrace\u202e", r"'\x1b[2Jgrace\u202e'"),
        ("x" * 254, "'" + "x" * 64 + "…'"),
    ],
)
def test_the_login_in_the_log_line_cannot_forge_lines(app, caplog, login, shown):
    with caplog.at_level(logging.WARNING), pytest.raises(InvalidInput):
        services.authenticate(login, "not-a-password", address="203.0.113.9")
    [record] = [r for r in caplog.records if "sign-in failed" in r.getMessage()]
    message = record.getMessage()
    assert "\n" not in message and "\x1b" not in message and "\u202e" not in message
    assert shown in message and "203.0.113.9" in message
    assert record.levelno == logging.WARNING
