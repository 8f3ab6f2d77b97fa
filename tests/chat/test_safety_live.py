"""Chat safeguarding with real WebSocket clients against real gunicorn servers: edits and
removals reach every open tab (on two servers through Redis, when REDIS_URL is set), a
reconnecting tab never gets removed text back, a muted member is refused on both paths, and
those who may not act change nothing and send nothing to anyone."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import timedelta

from sqlalchemy import func, select, update

from app.extensions import db
from app.models import ChatMessage, ChatMute, ChatReport
from app.models.user import utcnow
from tests.chat.test_live import error_of, quiet, send, socket_of, wait_for
from tests.conftest import PASSWORD, running_server
from tests.live_client import LiveClient

MESSAGE = 'data-message-id="'


def browser(server: str, user) -> LiveClient:
    signed_in = LiveClient(server)
    signed_in.sign_in(user.username, PASSWORD)
    return signed_in


@contextmanager
def second_server(live_server: str, migrated_database: str) -> Iterator[str]:
    """Another gunicorn process sharing rooms through Redis; without Redis (one process by
    design, DESIGN.md "Live updates") the same server."""
    if os.environ.get("REDIS_URL"):
        with running_server(migrated_database) as other:
            yield other
    else:
        with nullcontext(live_server) as same:
            yield same


def message_id_in(fragment: str) -> int:
    return int(re.search(r'data-message-id="(\d+)"', fragment).group(1))


def stored(message_id: int) -> ChatMessage:
    db.session.expire_all()
    return db.session.get(ChatMessage, message_id)


def message_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(ChatMessage))


def test_edits_and_removals_reach_members_on_two_servers(live_server, migrated_database, room):
    room_id, teacher, ana, bo = room
    with second_server(live_server, migrated_database) as other:
        ana_browser, teacher_browser = browser(other, ana), browser(live_server, teacher)
        with socket_of(live_server, teacher_browser) as t, socket_of(other, ana_browser) as a:
            send(t, {"resume": {room_id: 0}})
            send(a, {"resume": {room_id: 0}})
            time.sleep(0.3)
            send(a, {"room": room_id, "body": "The answer to question 3 is 42"})
            first = message_id_in(wait_for(t, lambda f: "question 3" in f))
            send(a, {"room": room_id, "body": "Also question 4 is 7"})
            second = message_id_in(wait_for(t, lambda f: "question 4" in f))
            wait_for(a, lambda f: "question 4" in f)

            # The author edits the first: both tabs get the new text, marked edited.
            status = ana_browser.post(f"/chat/messages/{first}/edit", {"body": "Work it out!"})
            assert status == 303
            for tab in (t, a):
                got = wait_for(tab, lambda f: f'id="message-{first}-body"' in f)
                assert "Work it out!" in got and "(edited)" in got
                assert f'id="message-{first}-edited"' in got and 'hx-swap-oob="true"' in got

            # The teacher removes the second: both tabs get the stub, never the text.
            assert teacher_browser.post(f"/chat/messages/{second}/delete") == 303
            for tab in (t, a):
                got = wait_for(tab, lambda f: "data-removed" in f)
                assert f'id="message-{second}"' in got and f'data-message-id="{second}"' in got
                assert 'hx-swap-oob="true"' in got and "question 4" not in got

        # A tab that comes back resumes with the stub and the edited text, never the old ones.
        with socket_of(live_server, browser(live_server, bo)) as b:
            send(b, {"resume": {room_id: 0}})
            got = [wait_for(b, lambda f: MESSAGE in f) for _ in range(2)]
            assert "Work it out!" in got[0] and "(edited)" in got[0]
            assert "data-removed" in got[1] and f'data-message-id="{second}"' in got[1]
            assert not any("question 3" in f or "question 4" in f for f in got)
        # A tab that showed both before the changes gets them as replacements.
        with socket_of(live_server, browser(live_server, bo)) as b:
            send(b, {"resume": {room_id: second}})
            changes = [wait_for(b, lambda f: f"message-{first}" in f or "data-removed" in f)]
            changes.append(
                wait_for(b, lambda f: f"message-{first}" in f or "data-removed" in f, timeout=3)
            )
            joined = "".join(changes)
            assert "Work it out!" in joined and "data-removed" in joined
            assert "question 3" not in joined and "question 4" not in joined
        # And the page's history.
        status, page = browser(live_server, bo).request("GET", f"/chat/{room_id}")
        assert status == 200 and "Work it out!" in page and "(edited)" in page
        assert "question 3 is 42" not in page and "question 4 is 7" not in page
    assert stored(second).removed_body == "Also question 4 is 7"  # kept for admins


def test_a_muted_member_is_refused_on_both_paths_until_unmuted(live_server, room):
    room_id, teacher, ana, _ = room
    teacher_browser, ana_browser = browser(live_server, teacher), browser(live_server, ana)
    with socket_of(live_server, ana_browser) as a, socket_of(live_server, teacher_browser) as t:
        send(a, {"resume": {room_id: 0}})
        send(t, {"resume": {room_id: 0}})
        time.sleep(0.3)
        status = teacher_browser.post(f"/chat/{room_id}/mute", {"username": "ana", "minutes": "60"})
        assert status == 303
        notice = wait_for(a, lambda f: f'id="room-{room_id}-mute"' in f)
        assert "data-muted-until" in notice and "You are muted" in notice

        send(a, {"room": room_id, "body": "over the socket"})
        assert "muted in this room until" in error_of(a)
        assert ana_browser.post(f"/chat/{room_id}/messages", {"body": "by the form"}) == 403
        send(a, {"room": room_id, "typing": True})  # nobody is told a muted member writes
        quiet(t, lambda f: MESSAGE in f or "is typing" in f)
        assert message_count() == 0
        status, page = ana_browser.request("GET", f"/chat/{room_id}")
        assert status == 200 and "data-muted-until" in page  # still reads, and is told

        assert teacher_browser.post(f"/chat/{room_id}/unmute", {"username": "ana"}) == 303
        cleared = wait_for(a, lambda f: f'id="room-{room_id}-mute"' in f)
        assert "data-muted-until" not in cleared
        send(a, {"room": room_id, "body": "over the socket again"})
        assert "over the socket again" in wait_for(t, lambda f: MESSAGE in f)
        assert ana_browser.post(f"/chat/{room_id}/messages", {"body": "by the form again"}) == 303
        assert "by the form again" in wait_for(t, lambda f: MESSAGE in f)
    assert message_count() == 2


def test_those_who_may_not_act_change_nothing(live_server, room, make_user):
    room_id, teacher, ana, bo = room
    outsider = browser(live_server, make_user("sven", full_name="Sven Stranger"))
    other_teacher = browser(live_server, make_user("olga", role="teacher"))
    bo_browser, ana_browser = browser(live_server, bo), browser(live_server, ana)
    with socket_of(live_server, browser(live_server, teacher)) as t:
        send(t, {"resume": {room_id: 0}})
        time.sleep(0.3)
        assert ana_browser.post(f"/chat/{room_id}/messages", {"body": "mine to keep"}) == 303
        message_id = message_id_in(wait_for(t, lambda f: "mine to keep" in f))
        attempts = [
            (f"/chat/messages/{message_id}/edit", {"body": "changed"}),
            (f"/chat/messages/{message_id}/delete", {}),
            (f"/chat/{room_id}/mute", {"username": "ana", "minutes": "60"}),
            (f"/chat/{room_id}/unmute", {"username": "ana"}),
            (f"/chat/messages/{message_id}/report", {"reason": "spam"}),
        ]
        for stranger in (outsider, other_teacher):  # not members: as if it were not there
            assert [stranger.post(path, data) for path, data in attempts] == [404] * 5
        # A fellow student may see but not change: 403 (a report is allowed to members).
        assert [bo_browser.post(path, data) for path, data in attempts[:4]] == [403] * 4
        quiet(t, lambda f: f"message-{message_id}" in f)
    message = stored(message_id)
    assert message.body == "mine to keep" and not message.is_removed and not message.edited_at
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(ChatMute)) == 0
    assert db.session.scalar(select(func.count()).select_from(ChatReport)) == 0


def test_no_edit_after_15_minutes(live_server, room):
    room_id, teacher, ana, _ = room
    ana_browser = browser(live_server, ana)
    assert ana_browser.post(f"/chat/{room_id}/messages", {"body": "first draft"}) == 303
    message_id = db.session.scalar(select(ChatMessage.id))
    db.session.execute(
        update(ChatMessage).values(created_at=utcnow() - timedelta(minutes=15, seconds=5))
    )
    db.session.commit()
    with socket_of(live_server, browser(live_server, teacher)) as t:
        send(t, {"resume": {room_id: message_id}})
        assert ana_browser.post(f"/chat/messages/{message_id}/edit", {"body": "late"}) == 403
        quiet(t, lambda f: "late" in f)
    assert stored(message_id).body == "first draft"


def test_a_report_keeps_the_text_after_removal(live_server, room, make_user):
    room_id, _, ana, bo = room
    admin = browser(live_server, make_user("ada.reports", role="admin", full_name="Ada Admin"))
    ana_browser = browser(live_server, ana)
    assert ana_browser.post(f"/chat/{room_id}/messages", {"body": "Meet me after class"}) == 303
    message_id = db.session.scalar(select(ChatMessage.id))
    bo_browser = browser(live_server, bo)
    assert bo_browser.post(f"/chat/messages/{message_id}/report", {"reason": "Creepy"}) == 303
    assert ana_browser.post(f"/chat/messages/{message_id}/delete") == 303
    status, page = admin.request("GET", "/admin/reports")
    assert status == 200
    report = re.search(r'<article class="report".*?</article>', page, re.S).group(0)
    assert "Meet me after class" in report and "Creepy" in report and "data-removed" in report
    status, room_page = bo_browser.request("GET", f"/chat/{room_id}")
    assert "Meet me after class" not in room_page
    assert stored(message_id).body == ""


def test_a_student_cannot_remove_anothers_message_or_mute(live_server, room):
    room_id, _, ana, bo = room
    ana_browser = browser(live_server, ana)
    assert ana_browser.post(f"/chat/{room_id}/messages", {"body": "keep me"}) == 303
    message_id = db.session.scalar(select(ChatMessage.id))
    student = browser(live_server, bo)
    with socket_of(live_server, ana_browser) as a:
        send(a, {"resume": {room_id: message_id}})
        assert student.post(f"/chat/messages/{message_id}/delete") == 403
        assert student.post(f"/chat/{room_id}/mute", {"username": "ana", "minutes": "5"}) == 403
        quiet(a, lambda f: "data-removed" in f or f'id="room-{room_id}-mute"' in f)
        send(a, {"room": room_id, "body": "still here"})
        wait_for(a, lambda f: "still here" in f)
    assert not stored(message_id).is_removed
