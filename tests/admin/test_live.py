"""Admin changes against a real server: a deactivation closes the person's open socket at
once, and two admins demoting each other at the same moment cannot both succeed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from websockets.exceptions import ConnectionClosed

from app.extensions import db
from app.models import User
from tests.chat.test_live import socket_of
from tests.conftest import PASSWORD
from tests.live_client import LiveClient


@pytest.mark.parametrize(("action", "form"), [("deactivate", None), ("delete", {"confirm": "sam"})])
def test_a_deactivated_or_erased_students_socket_closes_within_a_second(
    live_server, make_user, action, form
):
    make_user("ada", role="admin")
    make_user("sam")
    student = LiveClient(live_server)
    student.sign_in("sam", PASSWORD)
    admin = LiveClient(live_server)
    admin.sign_in("ada", PASSWORD)
    with socket_of(live_server, student) as tab:
        assert admin.post(f"/admin/users/sam/{action}", form) == 303
        deactivated = time.monotonic()
        try:
            while True:
                tab.recv(timeout=2)
        except ConnectionClosed:
            closed_after = time.monotonic() - deactivated
        assert closed_after < 1.0, f"the socket closed {closed_after:.2f} s after"
    # The captured session cookie opens nothing any more.
    assert student.get("/dashboard") == 302


def test_two_admins_demoting_each_other_at_once_cannot_both_succeed(live_server, make_user):
    for attempt in range(5):
        a, b = f"ada{attempt}", f"bob{attempt}"
        make_user(a, role="admin")
        make_user(b, role="admin")
        clients = {}
        for name in (a, b):
            clients[name] = LiveClient(live_server)
            clients[name].sign_in(name, PASSWORD)
        if attempt:  # the earlier pairs are students now, or one of them: keep only this pair
            db.session.execute(
                User.__table__.update()
                .where(User.username.not_in([a, b]), User.role == "admin")
                .values(role="student")
            )
            db.session.commit()
        start = threading.Barrier(2)

        def demote(me: str, other: str, start=start, clients=clients) -> int:
            start.wait()
            return clients[me].post(f"/admin/users/{other}/role", {"role": "teacher"})

        with ThreadPoolExecutor(max_workers=2) as pool:
            statuses = list(pool.map(demote, [a, b], [b, a]))
        db.session.expire_all()
        roles = sorted(db.session.scalars(select(User.role).where(User.username.in_([a, b]))))
        # One succeeds; the other finds itself demoted (signed out: 302, or 403) or the last
        # admin (422).
        assert statuses.count(303) == 1, statuses
        assert set(statuses) - {303} <= {302, 403, 422}, statuses
        assert roles == ["admin", "teacher"]
