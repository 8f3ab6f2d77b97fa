"""E-mail: a message is written to the outbox in the transaction of what caused it, and this
process's sender sends it once that transaction has committed (or writes it to the log when
no MAIL_SERVER is set), retrying with backoff while the SMTP server does not take it.

Once: a sender claims messages in a short transaction of its own (PostgreSQL: `FOR UPDATE
SKIP LOCKED`, so several workers never take the same row; SQLite: `BEGIN IMMEDIATE`, one
writer at a time) before it sends them, and marks each sent as soon as the SMTP server has
accepted it. A claim older than MAIL_CLAIM_TIMEOUT belongs to a sender that died and is taken
again; if that sender died after the SMTP server accepted the message but before marking it
sent, the message goes twice (with the same Message-ID)."""

from __future__ import annotations

import logging
import os
import smtplib
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr

from flask import Flask, current_app, url_for
from flask_mail import Connection, Mail, Message
from sqlalchemy import or_, select, text, update

from app.after_commit import pending, when_committed
from app.extensions import db
from app.models import OutboxMessage
from app.models.user import utcnow

log = logging.getLogger(__name__)

mail = Mail()
BATCH = 20
BATCH_PAUSE = 0.05  # seconds
EXTENSION = "campus.mail"
_senders: weakref.WeakSet[Sender] = weakref.WeakSet()


def init_app(app: Flask) -> None:
    mail.init_app(app)
    # Started by gunicorn as each worker starts (start_senders), or by the first commit that
    # writes mail (`flask run`); then it also wakes every MAIL_POLL_SECONDS for what is left.
    # Not by merely building an app: the commands and the tests build many.
    app.extensions[EXTENSION] = Sender(app)


def start_senders() -> None:
    """Start the sender of every app in this process: gunicorn calls this as each worker
    starts, so that what an earlier worker left is sent without waiting for a request."""
    for sender in list(_senders):
        sender.start()


def stop_senders() -> None:
    """Stop the sender of every app in this process (a process that built several apps, as
    the tests do, would otherwise have one app's sender send another's mail its own way)."""
    for sender in list(_senders):
        sender.stop()


def absolute_url(endpoint: str, **values: object) -> str:
    """A link for a mail: on PUBLIC_URL when set, else on the address of this request."""
    base = current_app.config.get("PUBLIC_URL")
    if base:
        return base.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(template: str, **context: object) -> Rendered:
    """Both parts from one template: its `subject` and `text` blocks, and the page its `html`
    block fills (mail/_layout.html)."""
    page = current_app.jinja_env.get_template(template)

    def block(name: str) -> str:
        return "".join(page.blocks[name](page.new_context(dict(context)))).strip()

    subject = " ".join(block("subject").split())
    return Rendered(subject, block("text") + "\n", page.render(**context, subject=subject))


def enqueue(
    recipient: str, template: str, headers: dict[str, str] | None = None, **context: object
) -> OutboxMessage:
    """Add a message to the current transaction: it exists, and is sent, only if that
    transaction commits. The caller commits."""
    rendered = render(template, **context)
    message = OutboxMessage(
        recipient=recipient,
        subject=rendered.subject,
        text_body=rendered.text,
        html_body=rendered.html,
        headers=headers or {},
    )
    db.session.add(message)
    # The sender looks for what is due itself: any mark wakes it after the commit (no flush
    # here for an id; an import writes a thousand of these).
    pending("mail").add(0)
    return message


def configured() -> bool:
    return bool(current_app.config.get("MAIL_SERVER"))


@when_committed("mail")
def _send_soon(message_ids: set[int]) -> None:
    sender: Sender | None = current_app.extensions.get(EXTENSION)
    if sender is not None:
        sender.wake()


class Sender:
    """One per process: a thread (a greenlet under gunicorn's gevent worker) that sends what
    is due whenever woken, and at least every MAIL_POLL_SECONDS."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopping = False
        _senders.add(self)

    def start(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._stopping or (self._thread is not None and self._pid == os.getpid()):
                return
            self._pid = os.getpid()  # a forked process starts its own
            self._wake = threading.Event()
            self._thread = threading.Thread(target=self._run, name="campus-mail", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        self.start()
        self._wake.set()

    def stop(self, timeout: float = 10) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout)

    def _run(self) -> None:
        with self.app.app_context():
            while not self._stopping:
                try:
                    send_due()
                except Exception:  # the database is away, say: try again at the next wake
                    log.exception("mail: sending failed; trying again later")
                self._wake.wait(self.app.config["MAIL_POLL_SECONDS"])
                self._wake.clear()


@dataclass(frozen=True)
class Claimed:
    id: int
    attempts: int
    created_at: datetime
    recipient: str
    subject: str
    text_body: str
    html_body: str
    headers: dict


def send_due() -> int:
    """Send every message that is due, a batch at a time; how many were sent."""
    sent = 0
    while batch := claim(BATCH):
        sent += send(batch)
        # A thousand at once (an import) must not crowd out the requests this process serves:
        # a breath between batches (under gevent, the other greenlets run meanwhile).
        time.sleep(BATCH_PAUSE)
    return sent


def claim(limit: int) -> list[Claimed]:
    """Take up to `limit` due messages for this sender, in a transaction of their own."""
    config = current_app.config
    now = utcnow()
    stale = now - timedelta(seconds=config["MAIL_CLAIM_TIMEOUT"])
    table = OutboxMessage.__table__
    with db.engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.execute(text("BEGIN IMMEDIATE"))  # one claimer at a time
        due = (
            select(table.c.id)
            .where(
                table.c.sent_at.is_(None),
                table.c.failed_at.is_(None),
                table.c.next_attempt_at <= now,
                or_(table.c.claimed_at.is_(None), table.c.claimed_at < stale),
            )
            .order_by(table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        ids = list(connection.scalars(due))
        if not ids:
            return []
        connection.execute(
            update(table)
            .where(table.c.id.in_(ids))
            .values(claimed_at=now, attempts=table.c.attempts + 1)
        )
        rows = connection.execute(
            select(*(table.c[name] for name in Claimed.__dataclass_fields__))
            .where(table.c.id.in_(ids))
            .order_by(table.c.id)
        )
        return [Claimed(**row._mapping) for row in rows]


def send(batch: list[Claimed]) -> int:
    """Send a claimed batch over one SMTP connection (or to the log); each message is marked
    sent as soon as the server has taken it."""
    if not configured():
        for message in batch:
            log.info(
                "mail (no MAIL_SERVER set) to %s: %s\n%s",
                message.recipient,
                message.subject,
                message.text_body,
            )
            _mark_sent(message.id)
        return len(batch)
    try:
        smtp = _connect()
    except Exception as error:
        log.warning("mail: cannot reach the SMTP server: %s", error)
        for message in batch:
            _retry_later(message, error)
        return 0
    sent = 0
    try:
        for index, message in enumerate(batch):
            built = _message(message)
            try:
                smtp.send(built)
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as error:
                _retry_later(message, error, give_up=True)
                continue
            except smtplib.SMTPResponseException as error:
                _retry_later(message, error, give_up=error.smtp_code >= 500)
                continue
            except Exception as error:  # the connection broke: the rest wait too
                log.warning("mail: sending to the SMTP server failed: %s", error)
                for waiting in batch[index:]:
                    _retry_later(waiting, error)
                break
            _mark_sent(message.id)
            sent += 1
    finally:
        _close(smtp)
    return sent


class _TimedConnection(Connection):
    """Flask-Mail's connection, with a timeout: a server that stops answering must not hold
    the sender for ever."""

    def configure_host(self) -> smtplib.SMTP:
        state, timeout = self.mail, current_app.config["MAIL_TIMEOUT"]
        kind = smtplib.SMTP_SSL if state.use_ssl else smtplib.SMTP
        host = kind(state.server, state.port, timeout=timeout)
        if state.use_tls:
            host.starttls()
        if state.username and state.password:
            host.login(state.username, state.password)
        return host


def _connect() -> _TimedConnection:
    app = current_app
    smtp = _TimedConnection(mail.init_mail(app.config, app.debug, False))  # today's settings
    smtp.host = smtp.configure_host()
    return smtp


def _close(smtp: _TimedConnection) -> None:
    if smtp.host is None:
        return
    try:
        smtp.host.quit()
    except Exception:
        smtp.host.close()


def _message(message: Claimed) -> Message:
    sender = current_app.config["MAIL_DEFAULT_SENDER"]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    built = Message(
        subject=message.subject,
        recipients=[message.recipient],
        body=message.text_body,
        html=message.html_body,
        sender=sender,
        extra_headers=dict(message.headers or {}),
    )
    # The same id at every attempt: a copy sent twice (see above) is recognisably a copy.
    built.msgId = f"<campus.outbox.{message.id}.{int(message.created_at.timestamp())}@{domain}>"
    return built


def _mark_sent(message_id: int) -> None:
    table = OutboxMessage.__table__
    with db.engine.begin() as connection:
        connection.execute(
            update(table).where(table.c.id == message_id).values(sent_at=utcnow(), last_error="")
        )


def _retry_later(message: Claimed, error: Exception, give_up: bool = False) -> None:
    config = current_app.config
    give_up = give_up or message.attempts >= config["MAIL_MAX_ATTEMPTS"]
    wait = min(
        config["MAIL_RETRY_SECONDS"] * 2 ** (message.attempts - 1),
        config["MAIL_RETRY_MAX_SECONDS"],
    )
    now = utcnow()
    values: dict[str, object] = {
        "claimed_at": None,
        "last_error": f"{type(error).__name__}: {error}"[:500],
        "next_attempt_at": now + timedelta(seconds=wait),
    }
    if give_up:
        values["failed_at"] = now
        log.error("mail %s to %s given up: %s", message.id, message.recipient, error)
    table = OutboxMessage.__table__
    with db.engine.begin() as connection:
        connection.execute(update(table).where(table.c.id == message.id).values(**values))
