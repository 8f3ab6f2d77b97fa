"""The outbox: mail is stored with its cause, sent after the commit by the app itself, once,
and retried while the SMTP server is away."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from jinja2 import ChoiceLoader, DictLoader
from sqlalchemy import func, select

from app import mail
from app.extensions import db
from app.models import OutboxMessage
from app.models.user import utcnow
from tests.smtp_server import html_part, text_part

NOTE = """{% extends "mail/_layout.html" %}
{% block subject %}{% autoescape false %}A note for {{ name }}{% endautoescape %}{% endblock %}
{% block text %}{% autoescape false %}Hello {{ name }}, number {{ number }}.
{{ link }}{% endautoescape %}{% endblock %}
{% block html %}<p>Hello {{ name }}, number {{ number }}.</p><p><a href="{{ link }}">Open</a></p>
{% endblock %}"""


@pytest.fixture
def note(app):
    app.jinja_env.loader = ChoiceLoader([DictLoader({"mail/note.html": NOTE}), app.jinja_loader])
    app.jinja_env.cache = None

    def write(number: int, to: str = "pupil@school.example", name: str = "Ana <&>") -> None:
        mail.enqueue(
            to, "mail/note.html", name=name, number=number, link="https://x.example/a?b=1&c=2"
        )

    return write


def outbox() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def wait_until(condition, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_message_arrives_once_after_the_commit_with_both_parts(mail_to, note):
    note(1)
    time.sleep(0.3)
    assert mail_to.messages == []  # not before the commit
    db.session.commit()
    [message] = mail_to.wait_for(1)
    assert message["To"] == "pupil@school.example"
    assert message["Subject"] == "A note for Ana <&>"
    assert "Hello Ana <&>, number 1." in text_part(message)
    assert "https://x.example/a?b=1&c=2" in text_part(message)
    assert "Hello Ana &lt;&amp;&gt;, number 1." in html_part(message)
    assert 'href="https://x.example/a?b=1&amp;c=2"' in html_part(message)
    assert wait_until(lambda: outbox()[0].sent_at is not None)
    [row] = outbox()
    assert row.attempts == 1 and row.claimed_at is not None
    time.sleep(0.6)  # the sender wakes again on its own; nothing more goes
    assert mail.send_due() == 0
    assert len(mail_to.messages) == 1


def test_a_rolled_back_transaction_sends_nothing(mail_to, note):
    note(1)
    db.session.rollback()
    time.sleep(0.5)
    assert mail_to.messages == [] and outbox() == []


def test_twenty_wait_while_the_server_is_down_and_each_arrives_once(mail_to, note):
    mail_to.stop()
    for number in range(20):
        note(number, to=f"pupil{number}@school.example")
        db.session.commit()
    assert wait_until(lambda: all(row.attempts >= 2 for row in outbox()))
    assert all(row.sent_at is None and "Error" in row.last_error for row in outbox())
    mail_to.start()
    mail_to.wait_for(20, timeout=15)
    time.sleep(1.5)  # several more rounds of the sender: still no second copy
    received = mail_to.messages
    assert len(received) == 20
    assert Counter(m["To"] for m in received) == Counter(
        f"pupil{n}@school.example" for n in range(20)
    )
    assert len({m["Message-ID"] for m in received}) == 20
    assert wait_until(lambda: all(row.sent_at is not None for row in outbox()))


def test_several_senders_at_once_send_each_message_once(mail_to, note, app):
    """Three senders (as three workers would) drain 60 messages together: PostgreSQL's
    SKIP LOCKED (or SQLite's one writer) hands each message to exactly one of them."""
    app.extensions["campus.mail"].stop()  # only the three below send
    for number in range(60):
        note(number, to=f"pupil{number}@school.example")
    db.session.commit()
    counts: list[int] = []

    def sender() -> None:
        with app.app_context():
            counts.append(mail.send_due())

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    received = mail_to.wait_for(60)
    time.sleep(0.3)
    assert sum(counts) == 60 and len(mail_to.messages) == 60
    assert len({m["To"] for m in received}) == 60
    assert {row.attempts for row in outbox()} == {1}


def test_a_claim_left_by_a_dead_sender_is_taken_again_after_the_timeout(mail_to, note, app):
    app.extensions["campus.mail"].stop()
    note(1)
    note(2)
    db.session.commit()
    [first, second] = outbox()
    first.claimed_at = utcnow() - timedelta(seconds=app.config["MAIL_CLAIM_TIMEOUT"] + 1)
    second.claimed_at = utcnow()  # another sender is sending it right now
    first.attempts = second.attempts = 1
    db.session.commit()
    assert mail.send_due() == 1
    [message] = mail_to.wait_for(1)
    assert message["To"] == "pupil@school.example" and "number 1." in text_part(message)
    assert outbox()[0].attempts == 2 and outbox()[1].sent_at is None


def test_a_refused_recipient_is_given_up_at_once(mail_to, note, app, monkeypatch):
    app.extensions["campus.mail"].stop()
    note(1, to="pupil@school.example")
    db.session.commit()

    async def refuse(handler, server, session, envelope, address, options):
        return "550 No such mailbox"

    monkeypatch.setattr(type(mail_to.inbox), "handle_RCPT", refuse, raising=False)
    assert mail.send_due() == 0
    [row] = outbox()
    assert row.failed_at is not None and "550" in row.last_error
    assert mail.send_due() == 0 and mail_to.messages == []


def test_without_mail_server_the_message_goes_to_the_log(app, note, caplog):
    assert not app.config["MAIL_SERVER"]
    caplog.set_level(logging.INFO, logger="app.mail")
    note(7)
    db.session.commit()
    assert wait_until(lambda: "number 7." in caplog.text)
    assert "pupil@school.example" in caplog.text and "A note for Ana <&>" in caplog.text
    assert wait_until(lambda: outbox()[0].sent_at is not None)


def test_the_outbox_keeps_one_row_per_message(app, note):
    app.extensions["campus.mail"].stop()
    note(1)
    note(2)
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 2
