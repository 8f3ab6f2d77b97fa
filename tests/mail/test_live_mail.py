"""Mail from a real gunicorn server with gevent workers, as in production: sent by the worker
after the commit, messages left in the outbox sent by a worker that starts, and several
workers retrying together after the SMTP server comes back, each message once."""

from __future__ import annotations

import os
import re
import time
import urllib.request
from collections import Counter

import pytest

from app import mail
from app.extensions import db
from tests.conftest import running_server
from tests.live_client import CSRF_META, LiveClient
from tests.smtp_server import text_part

MAIL_SETTINGS = {
    "MAIL_POLL_SECONDS": "0.2",
    "MAIL_RETRY_SECONDS": "0.1",
    "MAIL_RETRY_MAX_SECONDS": "0.5",
    "FORGOT_ADDRESS_LIMIT": "1000 per minute",
}


def ask_for_link(url: str, login: str) -> int:
    client = LiveClient(url)
    _, page = client.request("GET", "/auth/forgot")
    token = CSRF_META.search(page).group(1)
    status, _ = client.request("POST", "/auth/forgot", {"login": login, "csrf_token": token})
    return status


def test_a_worker_mails_a_reset_link_with_its_own_address(
    migrated_database, make_user, smtp_server
):
    make_user("grace")
    settings = MAIL_SETTINGS | {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(smtp_server.port)}
    with running_server(migrated_database, **settings) as url:
        assert ask_for_link(url, "grace") == 303
        [message] = smtp_server.wait_for(1)
        link = re.search(r"(http://\S+/auth/reset/\S+)", text_part(message)).group(1)
        assert link.startswith(f"{url}/auth/reset/")  # no PUBLIC_URL: the request's address
        assert urllib.request.urlopen(link, timeout=10).status == 200
        time.sleep(1)
    assert len(smtp_server.messages) == 1


def test_a_starting_worker_sends_what_was_left_in_the_outbox(app, migrated_database, smtp_server):
    app.extensions["campus.mail"].stop()  # this process does not send them
    with app.test_request_context():
        for number in range(5):
            mail.enqueue(
                f"pupil{number}@school.example",
                "mail/password_reset.html",
                user={"full_name": "Pupil", "username": f"pupil{number}"},
                link="https://campus.school.example/auth/reset/x",
                minutes=30,
                forgot="https://campus.school.example/auth/forgot",
            )
        db.session.commit()
    settings = MAIL_SETTINGS | {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(smtp_server.port)}
    with running_server(migrated_database, **settings):
        received = smtp_server.wait_for(5)
        time.sleep(1)
    assert Counter(m["To"] for m in received) == Counter(
        f"pupil{n}@school.example" for n in range(5)
    )
    assert len(smtp_server.messages) == 5


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgresql")
    or not os.environ.get("REDIS_URL"),
    reason="several workers need PostgreSQL and Redis",
)
def test_three_workers_send_each_of_20_messages_once_after_the_server_returns(
    migrated_database, make_user, smtp_server
):
    for number in range(20):
        make_user(f"pupil{number}")
    smtp_server.stop()
    settings = MAIL_SETTINGS | {
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp_server.port),
        "GUNICORN_LIVE_WORKERS": "3",
    }
    with running_server(migrated_database, **settings) as url:
        for number in range(20):
            assert ask_for_link(url, f"pupil{number}") == 303
        time.sleep(1)  # every worker has tried and failed by now
        smtp_server.start()
        smtp_server.wait_for(20, timeout=20)
        time.sleep(2)  # many more rounds of three senders
    received = smtp_server.messages
    assert len(received) == 20
    assert Counter(m["To"] for m in received) == Counter(
        f"pupil{n}@school.example" for n in range(20)
    )
