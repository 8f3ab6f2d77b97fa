"""A sender killed with SIGKILL in the middle of a batch: no message is lost, and none goes
twice but the one the SMTP server may have taken as the sender died (README, "E-mail")."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from app import mail
from app.extensions import db
from tests.conftest import ROOT, free_port
from tests.smtp_server import Inbox, SmtpServer

MESSAGES = 20


class SlowInbox(Inbox):
    """An SMTP server that takes a while over each message: the kill lands mid-batch."""

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        await asyncio.sleep(0.15)
        return await super().handle_DATA(server, session, envelope)


SENDER = """
import sys
from app import create_app, mail
app = create_app("testing", SQLALCHEMY_DATABASE_URI=sys.argv[1], MAIL_SERVER="127.0.0.1",
                 MAIL_PORT=int(sys.argv[2]), MAIL_TIMEOUT=5)
with app.app_context():
    mail.send_due()
"""


def test_a_sender_killed_mid_batch_loses_nothing(app, migrated_database):
    app.extensions["campus.mail"].stop()  # this process sends only when the test says so
    smtp = SmtpServer(free_port())
    smtp.inbox = SlowInbox()
    smtp.start()
    try:
        with app.test_request_context():
            for number in range(MESSAGES):
                mail.enqueue(
                    f"pupil{number}@school.example",
                    "mail/password_reset.html",
                    user={"full_name": "Pupil", "username": f"pupil{number}"},
                    link="https://campus.school.example/auth/reset/x",
                    minutes=30,
                    forgot="https://campus.school.example/auth/forgot",
                )
            db.session.commit()
        sender = subprocess.Popen(
            [sys.executable, "-c", SENDER, migrated_database, str(smtp.port)],
            cwd=ROOT,
            env=os.environ | {"CAMPUS_CONFIG": "testing"},
        )
        smtp.wait_for(5, timeout=30)
        sender.send_signal(signal.SIGKILL)
        sender.wait(timeout=10)
        taken_before_the_kill = len(smtp.messages)
        assert 5 <= taken_before_the_kill < MESSAGES, "the kill did not land mid-batch"

        # Its claims are left behind; once they are old enough, another sender takes them.
        app.config.update(
            MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port, MAIL_TIMEOUT=5, MAIL_CLAIM_TIMEOUT=1
        )
        time.sleep(1.2)
        with app.app_context():
            mail.send_due()
        received = Counter(message["To"] for message in smtp.wait_for(MESSAGES))
    finally:
        smtp.stop()
    assert set(received) == {f"pupil{n}@school.example" for n in range(MESSAGES)}
    assert sum(count - 1 for count in received.values()) <= 1, received
