"""Chat rooms through the pages: who is a member, history, the no-JavaScript post, direct
rooms, unread counts and notifications for members who were away."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.blueprints.enrollments.services import enroll, withdraw
from app.extensions import db
from app.models import ChatMessage, ChatRead, ChatRoom, Notification


def course_room(course) -> ChatRoom:
    return db.session.scalar(select(ChatRoom).where(ChatRoom.course_id == course.id))


def message_count() -> int:
    return db.session.scalar(select(func.count()).select_from(ChatMessage))


@pytest.fixture
def classroom(make_user, make_course):
    teacher = make_user("tomas", role="teacher", full_name="Tomás Teacher")
    course = make_course(teacher, title="Astronomy")
    ana = make_user("ana", full_name="Ana Student")
    enroll(ana, course.id)
    return teacher, course, ana


def test_every_course_has_a_room_from_the_start(classroom):
    _, course, _ = classroom
    assert course_room(course) is not None


def test_members_see_the_room_and_others_get_404(client, login_as, make_user, classroom):
    teacher, course, ana = classroom
    room = course_room(course)
    for member in (teacher, ana):
        login_as(member)
        page = client.get(f"/chat/{room.id}")
        assert page.status_code == 200
        assert f'id="room-{room.id}-messages"' in page.get_data(as_text=True)
        client.post_form("/auth/logout")
    outsiders = [
        make_user("bo"),  # not enrolled
        make_user("other", role="teacher"),
        make_user("boss", role="admin"),
    ]
    waiting = make_user("wait")
    enroll(waiting, course.id)
    withdraw(waiting, course.id)  # withdrawn: no longer a member
    for outsider in [*outsiders, waiting]:
        login_as(outsider)
        assert client.get(f"/chat/{room.id}").status_code == 404
        before = message_count()
        response = client.post_form(f"/chat/{room.id}/messages", {"body": "let me in"})
        assert response.status_code == 404
        assert message_count() == before
        client.post_form("/auth/logout")
    assert client.get(f"/chat/{room.id}").status_code == 302  # signed out: to the sign-in page


def test_membership_follows_enrolment_at_once(client, login_as, make_user, make_course):
    course = make_course(capacity=1)
    room = course_room(course)
    first, second = make_user("first"), make_user("second")
    enroll(first, course.id)
    enroll(second, course.id)  # waitlisted: not in the room
    login_as(second)
    assert client.get(f"/chat/{room.id}").status_code == 404
    withdraw(first, course.id)  # second is promoted
    assert client.get(f"/chat/{room.id}").status_code == 200


def test_posting_without_javascript_stores_and_shows_the_message(client, login_as, classroom):
    _, course, ana = classroom
    room = course_room(course)
    login_as(ana)
    response = client.post_form(f"/chat/{room.id}/messages", {"body": "<b>Hello</b> class"})
    assert response.status_code == 303
    assert response.headers["Location"].startswith(f"/chat/{room.id}#message-")
    page = client.get(f"/chat/{room.id}").get_data(as_text=True)
    assert "&lt;b&gt;Hello&lt;/b&gt; class" in page
    assert "<b>Hello</b>" not in page
    assert len(re.findall(r"data-message-id=", page)) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", "Write a message."),
        ("   \n ", "Write a message."),
        ("x" * 2001, "at most 2,000 characters"),
        ("bad\x00byte", "control characters"),
        ("see \u2066this\u2069", "change the direction of text"),
        ("see \u202ethis", "change the direction of text"),
    ],
)
def test_bad_messages_are_422_and_nothing_is_stored(client, login_as, classroom, body, expected):
    _, course, ana = classroom
    room = course_room(course)
    login_as(ana)
    response = client.post_form(f"/chat/{room.id}/messages", {"body": body})
    assert response.status_code == 422
    assert expected in response.get_data(as_text=True)
    assert message_count() == 0


def test_joiners_marks_and_zero_width_spaces_stay_in_messages(client, login_as, classroom):
    _, course, ana = classroom
    login_as(ana)
    body = "خوش\u200cآمدید 👩\u200d🏫 \u200fok\u200e long\u200bword"
    response = client.post_form(f"/chat/{course_room(course).id}/messages", {"body": body})
    assert response.status_code == 303
    assert db.session.scalar(select(ChatMessage.body)) == body


def test_a_message_of_exactly_2000_characters_is_kept(client, login_as, classroom):
    _, course, ana = classroom
    login_as(ana)
    body = "y" * 2000
    assert (
        client.post_form(f"/chat/{course_room(course).id}/messages", {"body": body}).status_code
        == 303
    )
    assert db.session.scalar(select(ChatMessage.body)) == body


def test_twelve_posts_in_five_seconds_store_ten_and_the_rest_are_kept_in_the_box(
    client, login_as, classroom
):
    _, course, ana = classroom
    room = course_room(course)
    login_as(ana)
    token = client.csrf_token()
    responses = [
        client.post(f"/chat/{room.id}/messages", data={"body": f"flood {n}", "csrf_token": token})
        for n in range(12)
    ]
    assert [response.status_code for response in responses] == [303] * 10 + [429] * 2
    assert message_count() == 10
    refused = responses[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 5
    page = refused.get_data(as_text=True)
    assert "Slow down" in page
    assert ">flood 11</textarea>" in page  # what was typed is not lost


def test_history_pages_older_messages(client, login_as, classroom):
    teacher, course, _ = classroom
    room = course_room(course)
    db.session.add_all(
        ChatMessage(room_id=room.id, author_id=teacher.id, body=f"note {n}") for n in range(1, 61)
    )
    db.session.commit()
    login_as(teacher)
    page = client.get(f"/chat/{room.id}").get_data(as_text=True)
    bodies = re.findall(r'class="message-body">note (\d+)<', page)
    assert bodies == [str(n) for n in range(11, 61)]  # the newest 50, oldest first
    older = re.search(r'href="(/chat/\d+\?before=\d+)"', page).group(1)
    partial = client.get(older.replace("&amp;", "&"), headers={"HX-Request": "true"})
    assert re.findall(r'class="message-body">note (\d+)<', partial.get_data(as_text=True)) == [
        str(n) for n in range(1, 11)
    ]
    assert "Show older messages" not in partial.get_data(as_text=True)


@pytest.mark.parametrize("before", ["99999999999999999999999", "9223372036854775808", "²", "x"])
def test_a_before_that_is_no_message_id_shows_the_newest(client, login_as, classroom, before):
    _, course, ana = classroom
    room = course_room(course)
    login_as(ana)
    client.post_form(f"/chat/{room.id}/messages", {"body": "newest"})
    response = client.get(f"/chat/{room.id}", query_string={"before": before})
    assert response.status_code == 200
    assert re.findall(r'class="message-body">([^<]*)<', response.get_data(as_text=True)) == [
        "newest"
    ]


def test_direct_room_is_opened_once_and_private(client, login_as, make_user):
    ana, bo, eve = make_user("ana"), make_user("bo"), make_user("eve")
    login_as(ana)
    first = client.post_form("/chat/direct/bo")
    assert first.status_code == 303
    again = client.post_form("/chat/direct/BO")
    assert again.headers["Location"] == first.headers["Location"]
    assert client.post_form("/chat/direct/ana").status_code == 422
    assert client.post_form("/chat/direct/nobody").status_code == 404
    room_url = first.headers["Location"]
    client.post_form(f"{room_url}/messages", {"body": "hi bo"})
    client.post_form("/auth/logout")
    login_as(bo)
    assert client.post_form("/chat/direct/ana").headers["Location"] == room_url
    assert "hi bo" in client.get(room_url).get_data(as_text=True)
    client.post_form("/auth/logout")
    login_as(eve)
    assert client.get(room_url).status_code == 404
    assert (
        db.session.scalar(
            select(func.count()).select_from(ChatRoom).where(ChatRoom.course_id.is_(None))
        )
        == 1
    )


def test_room_list_counts_unread_and_reading_clears_it(client, login_as, classroom):
    teacher, course, ana = classroom
    room = course_room(course)
    login_as(teacher)
    for n in range(3):
        client.post_form(f"/chat/{room.id}/messages", {"body": f"homework {n}"})
    client.post_form("/auth/logout")
    login_as(ana)
    listing = client.get("/chat").get_data(as_text=True)
    assert f'data-room-id="{room.id}"' in listing
    assert re.search(rf'id="room-{room.id}-unread"[^>]*data-unread="3"', listing)
    assert "homework 2" in listing  # the last message
    client.get(f"/chat/{room.id}")
    listing = client.get("/chat").get_data(as_text=True)
    assert re.search(rf'id="room-{room.id}-unread"[^>]*data-unread="0"', listing)


def test_an_away_member_is_notified_once_per_room_until_read(client, login_as, classroom):
    teacher, course, ana = classroom
    room = course_room(course)
    login_as(teacher)
    client.post_form(f"/chat/{room.id}/messages", {"body": "first"})
    client.post_form(f"/chat/{room.id}/messages", {"body": "second"})
    notes = list(db.session.scalars(select(Notification).where(Notification.user_id == ana.id)))
    assert [(n.kind, n.link) for n in notes] == [("chat", f"/chat/{room.id}")]
    assert "Tomás Teacher" in notes[0].text and "Astronomy" in notes[0].text
    # The author is not notified of their own message.
    assert not db.session.scalar(select(Notification).where(Notification.user_id == teacher.id))
    client.post_form("/auth/logout")
    login_as(ana)
    client.get(f"/chat/{room.id}")  # reading the room reads the notification
    db.session.expire_all()
    assert db.session.get(Notification, notes[0].id).read_at is not None
    client.post_form("/auth/logout")
    login_as(teacher)
    client.post_form(f"/chat/{room.id}/messages", {"body": "third"})
    unread = db.session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == ana.id, Notification.read_at.is_(None))
    )
    assert unread == 1


def read_mark(room: ChatRoom, user) -> int | None:
    return db.session.scalar(
        select(ChatRead.last_read_id).where(
            ChatRead.room_id == room.id, ChatRead.user_id == user.id
        )
    )


def unread_notifications(user) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
    )


@pytest.fixture
def ana_was_away(client, login_as, classroom):
    """Ana read the room once; then the teacher wrote, and Ana was told."""
    teacher, course, ana = classroom
    room = course_room(course)
    login_as(ana)
    client.get(f"/chat/{room.id}")
    client.post_form("/auth/logout")
    login_as(teacher)
    client.post_form(f"/chat/{room.id}/messages", {"body": "Quiz on Friday"})
    client.post_form("/auth/logout")
    login_as(ana)
    assert (read_mark(room, ana), unread_notifications(ana)) == (0, 1)
    return room, ana


def test_another_sites_link_shows_the_room_but_reads_nothing(client, ana_was_away):
    room, ana = ana_was_away
    response = client.get(f"/chat/{room.id}", headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 200
    assert "Quiz on Friday" in response.get_data(as_text=True)
    assert read_mark(room, ana) == 0
    assert unread_notifications(ana) == 1
    listing = client.get("/chat").get_data(as_text=True)
    assert re.search(rf'id="room-{room.id}-unread"[^>]*data-unread="1"', listing)


@pytest.mark.parametrize("sent_from", ["same-origin", "same-site", "none", None])
def test_opening_the_room_from_here_reads_it(client, ana_was_away, sent_from):
    room, ana = ana_was_away
    headers = {"Sec-Fetch-Site": sent_from} if sent_from else {}
    assert client.get(f"/chat/{room.id}", headers=headers).status_code == 200
    newest = db.session.scalar(select(func.max(ChatMessage.id)))
    assert read_mark(room, ana) == newest
    assert unread_notifications(ana) == 0


def test_chat_pages_need_a_session(client):
    assert client.get("/chat").status_code == 302
    assert client.post_form("/chat/direct/anyone").status_code in (302, 303)


def test_the_room_shows_how_many_have_seen_the_newest_message(
    client, login_as, make_user, classroom
):
    teacher, course, ana = classroom
    bo = make_user("bo")
    enroll(bo, course.id)
    room = course_room(course)
    login_as(teacher)
    client.post_form(f"/chat/{room.id}/messages", {"body": "Quiz on Friday"})

    def seen_line() -> str:
        page = client.get(f"/chat/{room.id}").get_data(as_text=True)
        return re.search(rf'<p id="room-{room.id}-seen"[^>]*>([^<]*)</p>', page).group(1)

    assert seen_line() == ""  # nobody but its author yet
    client.post_form("/auth/logout")
    for student, expected in ((ana, "Seen by 1"), (bo, "Seen by 2")):
        login_as(student)
        client.get(f"/chat/{room.id}")
        client.post_form("/auth/logout")
        login_as(teacher)
        assert seen_line() == expected
        client.post_form("/auth/logout")


def test_the_room_list_takes_the_same_queries_for_2_and_12_rooms(
    client, login_as, make_user, make_course, count_queries
):
    student = make_user("many")
    teacher = make_user("tutor", role="teacher")

    def rooms(count: int) -> int:
        for n in range(count):
            course = make_course(teacher, title=f"Course {n:02d} {count}")
            enroll(student, course.id)
            room = course_room(course)
            db.session.add(ChatMessage(room_id=room.id, author_id=teacher.id, body=f"hi {n}"))
        db.session.commit()
        with count_queries() as statements:
            page = client.get("/chat").get_data(as_text=True)
        assert page.count("data-room-id=") == len(
            db.session.scalars(select(ChatRoom.id).where(ChatRoom.course_id.is_not(None))).all()
        )
        return len(statements)

    login_as(student)
    client.get("/chat")  # the signed-in person is kept from here on, in both counts alike
    assert rooms(2) == rooms(10)


@pytest.mark.parametrize("removed", ["course", "person"])
def test_the_room_list_survives_a_room_removed_while_it_loads(
    client, login_as, make_user, classroom, removed
):
    """A course or a person deleted (their rooms go with them) between the statements that
    read the room list: the list is still a page, with whole rooms."""
    from sqlalchemy import delete, event

    from app.models import Course, User

    _, course, ana = classroom
    bo = make_user("bo", full_name="Bo Friend")
    login_as(ana)
    client.post_form("/chat/direct/bo")  # ana's rooms: the course's and this one
    doomed = delete(Course).where(Course.id == course.id)
    if removed == "person":
        doomed = delete(User).where(User.id == bo.id)
    fired = []

    def remove_after_the_rooms_are_read(conn, cursor, statement, *args) -> None:
        if not fired and "FROM chat_rooms" in statement:
            fired.append(statement)
            with db.engine.begin() as other:
                other.execute(doomed)

    event.listen(db.engine, "after_cursor_execute", remove_after_the_rooms_are_read)
    try:
        response = client.get("/chat")
    finally:
        event.remove(db.engine, "after_cursor_execute", remove_after_the_rooms_are_read)
    assert fired
    assert response.status_code == 200
    listing = response.get_data(as_text=True)
    assert listing.count("data-room-id=") == 2  # as they were when the list was read
    assert "Astronomy" in listing and "Bo Friend" in listing
