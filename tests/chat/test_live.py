"""The live channel with a real WebSocket client against a real gunicorn (DESIGN.md "Live
updates"): exchanging messages, refusals, resuming after a reconnect, notifications for those
away, escaping, and bad input that never closes a socket."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select, update
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from app.blueprints.enrollments.services import enroll
from app.extensions import db
from app.models import ChatMessage, ChatRoom, Notification, User
from tests.conftest import PASSWORD, running_server
from tests.live_client import LiveClient

MESSAGE = 'data-message-id="'


def open_socket(server: str, user=None, origin: str | None = "same") -> ClientConnection:
    """A tab's socket: the user's session cookie and the page's Origin."""
    browser = None
    if user is not None:
        browser = LiveClient(server)
        browser.sign_in(user.username, PASSWORD)
    return socket_of(server, browser, origin)


def socket_of(server: str, browser: LiveClient | None, origin: str | None = "same"):
    """The socket of a page open in `browser` (its cookies), or of a visitor without any."""
    cookies = browser.cookies.items() if browser else ()
    return connect(
        server.replace("http://", "ws://") + "/ws",
        origin=server if origin == "same" else origin,
        additional_headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies)},
        open_timeout=5,
    )


def send(ws: ClientConnection, payload) -> None:
    ws.send(payload if isinstance(payload, str) else json.dumps(payload))


def wait_for(ws: ClientConnection, wanted: Callable[[str], bool], timeout: float = 5) -> str:
    deadline = time.monotonic() + timeout
    while True:
        fragment = ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
        if wanted(fragment):
            return fragment


def quiet(ws: ClientConnection, unwanted: Callable[[str], bool], seconds: float = 0.5) -> None:
    """Nothing matching arrives for a while."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            fragment = ws.recv(timeout=left)
        except TimeoutError:
            return
        assert not unwanted(fragment), fragment


def error_of(ws: ClientConnection) -> str:
    return wait_for(ws, lambda f: 'id="live-error"' in f)


def message_count() -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(ChatMessage))


def test_two_members_exchange_messages(live_server, room):
    room_id, teacher, ana, _ = room
    with open_socket(live_server, teacher) as t, open_socket(live_server, ana) as a:
        send(t, {"resume": {str(room_id): 0}})
        send(a, {"resume": {str(room_id): 0}})
        send(
            a,
            {"room": room_id, "body": "Is the test on Friday?", "HEADERS": {"HX-Request": "true"}},
        )
        got = wait_for(t, lambda f: MESSAGE in f)
        assert f'id="room-{room_id}-messages"' in got and "Is the test on Friday?" in got
        assert "Ana Student" in got
        wait_for(a, lambda f: "Is the test on Friday?" in f)  # the sender's tab shows it too
        send(t, {"room": str(room_id), "body": "Yes, at nine."})  # a room id as a string
        assert "Yes, at nine." in wait_for(a, lambda f: MESSAGE in f)
    db.session.expire_all()
    stored = db.session.scalars(select(ChatMessage.body).order_by(ChatMessage.id)).all()
    assert stored == ["Is the test on Friday?", "Yes, at nine."]


def test_html_in_a_message_is_sent_as_text(live_server, room):
    room_id, teacher, ana, _ = room
    with open_socket(live_server, teacher) as t, open_socket(live_server, ana) as a:
        send(a, {"room": room_id, "body": "<script>alert(1)</script><img src=x onerror=alert(2)>"})
        got = wait_for(t, lambda f: MESSAGE in f)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in got
    assert "<script" not in got and "<img" not in got


def test_a_non_member_is_refused_and_nothing_is_stored(live_server, room, make_user, make_course):
    room_id, teacher, _, _ = room
    outsider = make_user("eve")
    other_course = make_course(title="Geology")
    enroll(outsider, other_course.id)
    with open_socket(live_server, teacher) as t, open_socket(live_server, outsider) as e:
        send(e, {"room": room_id, "body": "I should not be here"})
        assert "no such chat room" in error_of(e)
        send(e, {"room": room_id, "typing": True})
        assert "no such chat room" in error_of(e)
        send(e, {"resume": {str(room_id): 0}})
        assert "no such chat room" in error_of(e)
        quiet(t, lambda f: "should not" in f or "typing" in f)
    assert message_count() == 0


def test_an_archived_course_room_refuses_posts_and_stores_nothing(live_server, room):
    from app.blueprints.courses import lifecycle

    room_id, teacher, ana, _ = room
    course_id = db.session.get(ChatRoom, room_id).course_id
    with open_socket(live_server, teacher) as t, open_socket(live_server, ana) as a:
        send(t, {"resume": {str(room_id): 0}})
        lifecycle.archive(teacher, course_id)
        send(a, {"room": room_id, "body": "Is anyone still here?"})
        assert "archived" in error_of(a)
        send(t, {"room": room_id, "body": "The course is over."})
        assert "archived" in error_of(t)
        quiet(t, lambda f: MESSAGE in f)
    assert message_count() == 0


def test_the_handshake_needs_a_session_and_our_origin(live_server, room):
    _, _, ana, _ = room
    with pytest.raises(InvalidStatus) as anonymous:
        open_socket(live_server, None)
    assert anonymous.value.response.status_code == 401
    for origin in ("http://evil.example", "http://127.0.0.1:1", None):
        with pytest.raises(InvalidStatus) as foreign:
            open_socket(live_server, ana, origin=origin)
        assert foreign.value.response.status_code == 403


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ("this is not json", "could not be read"),
        ("[1, 2, 3]", "could not be read"),
        ('"just a string"', "could not be read"),
        (b"\xff\xfe binary", "could not be read"),
        ({"body": "no room"}, "Choose a chat room"),
        ({"room": "abc", "body": "x"}, "Choose a chat room"),
        ({"room": [1], "body": "x"}, "Choose a chat room"),
        ({"room": True, "body": "x"}, "Choose a chat room"),
        ({"room": -4, "body": "x"}, "Choose a chat room"),
        ({"room": 10**30, "body": "x"}, "Choose a chat room"),
        ({"room": 1.5, "body": "x"}, "Choose a chat room"),
        ({"room": "ROOM", "body": 5}, "Write a message"),
        ({"room": "ROOM", "body": None}, "Write a message"),
        ({"room": "ROOM", "body": ""}, "Write a message"),
        ({"room": "ROOM", "body": "   "}, "Write a message"),
        ({"room": "ROOM", "body": "x" * 2001}, "at most 2,000 characters"),
        ({"room": "ROOM", "body": "nul\u0000"}, "control characters"),
        ({"room": "ROOM", "body": "see \u2066this\u2069"}, "change the direction of text"),
        ({"room": 99999999, "body": "x"}, "no such chat room"),
        ({"resume": [1]}, "could not be read"),
        ({"resume": {"ROOM": "latest"}}, "could not be read"),
    ],
)
def test_bad_input_gets_an_error_fragment_and_the_sockets_stay_open(
    live_server, room, payload, says
):
    room_id, teacher, ana, _ = room
    if isinstance(payload, dict):
        payload = json.loads(json.dumps(payload).replace('"ROOM"', f'"{room_id}"'))
    with open_socket(live_server, teacher) as t, open_socket(live_server, ana) as a:
        send(a, payload) if not isinstance(payload, bytes) else a.send(payload)
        error = error_of(a)
        assert says in error, error
        assert 'role="alert"' in error and 'hx-swap-oob="true"' in error
        assert message_count() == 0
        # Both sockets still work: the next good message reaches the other member.
        send(a, {"room": room_id, "body": "still here"})
        assert "still here" in wait_for(t, lambda f: MESSAGE in f)
        # The error goes away once something works.
        wait_for(a, lambda f: f == '<div id="live-error" role="alert" hx-swap-oob="true"></div>')


def test_a_reconnect_receives_exactly_what_was_missed(live_server, room, client, login_as):
    room_id, teacher, ana, _ = room
    with open_socket(live_server, ana) as a:
        send(a, {"room": room_id, "body": "seen 1"})
        first = wait_for(a, lambda f: MESSAGE in f)
    seen_id = int(first.split(MESSAGE)[1].split('"')[0])
    # Ana's tab is closed; the class goes on.
    with open_socket(live_server, teacher) as t:
        for n in range(1, 4):
            send(t, {"room": room_id, "body": f"missed {n}"})
            wait_for(t, lambda f, n=n: f"missed {n}" in f)
    with open_socket(live_server, ana) as a:
        send(a, {"resume": {room_id: seen_id}})
        got = [wait_for(a, lambda f: MESSAGE in f) for _ in range(3)]
        assert ["missed 1" in got[0], "missed 2" in got[1], "missed 3" in got[2]] == [True] * 3
        quiet(a, lambda f: MESSAGE in f)  # nothing more, nothing twice


def test_an_offline_member_is_notified_and_a_watching_one_is_not(live_server, room):
    room_id, teacher, ana, bo = room
    with open_socket(live_server, teacher) as t, open_socket(live_server, bo) as b:
        send(b, {"resume": {room_id: 0}})  # Bo has the room open; Ana is away
        time.sleep(0.3)
        send(t, {"room": room_id, "body": "Read chapter 3"})
        wait_for(b, lambda f: "Read chapter 3" in f)
        time.sleep(0.3)
    db.session.expire_all()
    notified = db.session.scalars(
        select(Notification.user_id).where(Notification.link == f"/chat/{room_id}")
    ).all()
    assert notified == [ana.id]


def test_the_badge_updates_live_on_any_page(live_server, room):
    room_id, teacher, ana, _ = room
    with open_socket(live_server, teacher) as t, open_socket(live_server, ana) as a:
        send(a, {"resume": {}})  # Ana is on some page without the room
        time.sleep(0.3)
        send(t, {"room": room_id, "body": "New homework"})
        badge = wait_for(a, lambda f: 'id="notification-count"' in f)
        assert ">1</span>" in badge and 'hx-swap-oob="true"' in badge


def test_typing_is_shown_to_the_others(live_server, room):
    room_id, teacher, ana, _ = room
    with open_socket(live_server, teacher) as t, open_socket(live_server, ana) as a:
        send(a, {"room": room_id, "typing": True})
        assert "Ana Student is typing" in wait_for(t, lambda f: "typing" in f)
        quiet(a, lambda f: "is typing" in f)
    assert message_count() == 0


def test_more_than_ten_messages_in_five_seconds_are_refused(live_server, room):
    room_id, _, ana, _ = room
    with open_socket(live_server, ana) as a:
        for n in range(11):
            send(a, {"room": room_id, "body": f"spam {n}"})
        assert "Slow down" in error_of(a)
    assert message_count() == 10


def test_one_person_holds_at_most_ten_sockets(live_server, room):
    _, _, ana, bo = room
    browser = LiveClient(live_server)
    browser.sign_in(ana.username, PASSWORD)
    tabs = [socket_of(live_server, browser) for _ in range(10)]
    try:
        with pytest.raises(InvalidStatus) as refused:
            socket_of(live_server, browser)
        assert refused.value.response.status_code == 429
        assert refused.value.response.headers["Retry-After"]
        with open_socket(live_server, bo):  # someone else is not held back
            pass
        tabs.pop().close()
        deadline = time.monotonic() + 5
        while True:  # the closed tab's place is given back once the server sees it close
            try:
                tabs.append(socket_of(live_server, browser))
                break
            except InvalidStatus:
                assert time.monotonic() < deadline, "a closed socket kept its place"
                time.sleep(0.1)
    finally:
        for tab in tabs:
            tab.close()


def test_the_socket_and_the_form_share_one_limit_per_person(live_server, room):
    room_id, _, ana, _ = room
    browser = LiveClient(live_server)
    browser.sign_in(ana.username, PASSWORD)
    tabs = [socket_of(live_server, browser) for _ in range(3)]
    try:
        for n, tab in enumerate(tabs * 2):  # six posts from three tabs
            send(tab, {"room": room_id, "body": f"tab post {n}"})
        deadline = time.monotonic() + 5
        while message_count() < 6:
            assert time.monotonic() < deadline, "the socket posts were not stored"
            time.sleep(0.05)
        path = f"/chat/{room_id}/messages"
        statuses = [browser.post(path, {"body": f"form post {n}"}) for n in range(6)]
    finally:
        for tab in tabs:
            tab.close()
    assert statuses == [303] * 4 + [429] * 2
    assert message_count() == 10


def test_signing_out_ends_the_socket(live_server, room):
    room_id, _, ana, _ = room
    browser = LiveClient(live_server)
    browser.sign_in(ana.username, PASSWORD)
    with socket_of(live_server, browser) as a:
        assert browser.post("/auth/logout") == 303
        with pytest.raises(ConnectionClosed):  # closed at once, or at the latest on sending
            send(a, {"room": room_id, "body": "after sign-out"})
            wait_for(a, lambda f: False)
    assert message_count() == 0


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="fan-out between servers needs Redis")
def test_a_message_crosses_servers_through_redis(live_server, migrated_database, room):
    """Two gunicorn servers (two processes, two ports) share rooms through Redis pub/sub."""
    room_id, teacher, ana, _ = room
    with (
        running_server(migrated_database) as other_server,
        open_socket(live_server, teacher) as t,
        open_socket(other_server, ana) as a,
    ):
        send(t, {"resume": {room_id: 0}})
        send(a, {"resume": {room_id: 0}})
        time.sleep(0.3)
        send(a, {"room": room_id, "body": "from the other server"})
        wait_for(t, lambda f: "from the other server" in f)
        send(t, {"room": room_id, "body": "and back"})
        wait_for(a, lambda f: "and back" in f)


def test_other_notifications_reach_the_badge_live(live_server, make_user, make_course):
    """A seat opens: the first on the waitlist is enrolled, and their open tab's badge says so."""
    course = make_course(capacity=1)
    holder, waiting = make_user("holder"), make_user("waiting")
    enroll(holder, course.id)
    enroll(waiting, course.id)
    with open_socket(live_server, waiting) as w:
        send(w, {"resume": {}})
        time.sleep(0.3)
        browser = LiveClient(live_server)
        browser.sign_in(holder.username, PASSWORD)
        assert browser.post(f"/courses/{course.id}/withdraw") == 303
        badge = wait_for(w, lambda f: 'id="notification-count"' in f)
        assert ">1</span>" in badge


def test_seen_by_travels_with_a_message_and_grows_as_members_open_the_room(live_server, room):
    room_id, teacher, ana, bo = room
    with open_socket(live_server, teacher) as t, open_socket(live_server, bo) as b:
        send(t, {"resume": {room_id: 0}})
        send(b, {"resume": {room_id: 0}})  # Bo has the room open, Ana does not
        time.sleep(0.3)
        send(t, {"room": room_id, "body": "Lab coats tomorrow"})
        got = wait_for(t, lambda f: MESSAGE in f)
        assert (
            f'<p id="room-{room_id}-seen" class="seen muted" hx-swap-oob="true">Seen by 1</p>'
            in got
        )
        browser = LiveClient(live_server)
        browser.sign_in(ana.username, PASSWORD)
        assert browser.get(f"/chat/{room_id}") == 200  # Ana opens the room
        update = wait_for(t, lambda f: f'id="room-{room_id}-seen"' in f and MESSAGE not in f)
        assert "Seen by 2" in update


def test_signing_out_elsewhere_closes_an_idle_socket(live_server, room):
    """A socket that says nothing is closed too when its session ends (here: a new password
    set from another device)."""
    _, _, ana, _ = room
    tab, other_device = LiveClient(live_server), LiveClient(live_server)
    tab.sign_in(ana.username, PASSWORD)
    other_device.sign_in(ana.username, PASSWORD)
    with socket_of(live_server, tab) as idle:
        changed = other_device.post(
            "/profile/password",
            {"current_password": PASSWORD, "new_password": "Another-Horse-43",
             "new_password_confirm": "Another-Horse-43"},
        )  # fmt: skip
        assert changed == 303
        with pytest.raises(ConnectionClosed) as closed:
            idle.recv(timeout=5)
        assert closed.value.rcvd.code == 1008


@pytest.mark.parametrize("what", ["post", "typing"])
def test_a_session_ended_while_the_socket_opened_is_refused_at_its_next_message(
    live_server, room, what
):
    """The session ended without the broadcast that closes sockets reaching this one (it was
    opening at that moment): its next message closes it, and a post is not stored."""
    room_id, teacher, ana, _ = room
    with open_socket(live_server, teacher) as t, open_socket(live_server, ana) as a:
        send(a, {"resume": {str(room_id): 0}})
        time.sleep(0.3)
        before = message_count()
        db.session.execute(
            update(User).where(User.id == ana.id).values(session_version=User.session_version + 1)
        )
        db.session.commit()
        if what == "post":
            send(a, {"room": room_id, "body": "Sent after signing out"})
        else:
            send(a, {"room": room_id, "typing": True})
        with pytest.raises(ConnectionClosed) as closed:
            wait_for(a, lambda f: False)
        assert closed.value.rcvd.code == 1008
        quiet(t, lambda f: "Sent after signing out" in f or "typing" in f)
        assert message_count() == before
