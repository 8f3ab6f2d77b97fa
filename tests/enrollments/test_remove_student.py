"""A teacher removes a student (DESIGN.md "Rosters and the course's life"): a confirm step
without JavaScript, the seat to the first on the waitlist in the same transaction, the student
told, and out of the course's chat at once (a real socket stops receiving the room)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.blueprints.enrollments import services
from app.extensions import db
from app.models import ChatMessage, ChatRoom, Enrollment, Notification, User
from tests.chat.test_live import MESSAGE, error_of, open_socket, quiet, send, wait_for


@pytest.fixture
def owner(make_user):
    return make_user("tina", role="teacher", full_name="Tina Teacher")


@pytest.fixture
def course(make_course, make_user, owner):
    """Two seats: ana and bo enrolled, cy and dee waiting in that order."""
    course = make_course(owner, title="Geography", capacity=2)
    for name in ("ana", "bo", "cy", "dee"):
        services.enroll(make_user(name, full_name=f"{name.title()} Student"), course.id)
    return course


def places(course_id: int) -> list[tuple[str, str]]:
    db.session.expire_all()
    return db.session.execute(
        select(User.username, Enrollment.status)
        .join(Enrollment, Enrollment.student_id == User.id)
        .where(Enrollment.course_id == course_id)
        .order_by(Enrollment.id)
    ).all()


def told(kind: str) -> list[tuple[str, str]]:
    return db.session.execute(
        select(User.username, Notification.text)
        .join(User, User.id == Notification.user_id)
        .where(Notification.kind == kind)
        .order_by(Notification.id)
    ).all()


BEFORE = [("ana", "enrolled"), ("bo", "enrolled"), ("cy", "waitlisted"), ("dee", "waitlisted")]


def test_without_javascript_the_roster_asks_to_confirm_first(client, login_as, owner, course):
    login_as(owner)
    roster = client.get(f"/courses/{course.id}/students").text
    url = f"/courses/{course.id}/students/ana/remove"
    row = roster.split('data-username="ana"')[1].split("</tr>")[0]
    assert f'action="{url}"' in row and "hx-confirm=" in row and 'name="confirm"' not in row
    # The row's button posts without `confirm`: the answer is a page that asks.
    asked = client.post_form(url)
    assert asked.status_code == 200
    assert "Remove Ana Student from Geography?" in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    assert client.get(url).text.count('name="confirm" value="yes"') == 1  # a link works too
    assert places(course.id) == BEFORE and told("removed_from_course") == []


def test_removing_gives_the_seat_to_the_first_waiting_and_tells_both(
    client, login_as, owner, course
):
    login_as(owner)
    url = f"/courses/{course.id}/students/ana/remove"
    response = client.post_form(url, {"confirm": "yes"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/courses/{course.id}/students"
    assert places(course.id) == [("bo", "enrolled"), ("cy", "enrolled"), ("dee", "waitlisted")]
    assert told("removed_from_course") == [("ana", "Tina Teacher removed you from “Geography”.")]
    assert [name for name, _ in told("waitlist_promoted")] == ["cy"]
    page = client.get(response.headers["Location"]).text
    assert "ana is removed from “Geography”. cy had the first place" in page


def test_removing_from_the_waitlist_keeps_the_order(client, login_as, owner, course):
    login_as(owner)
    client.post_form(f"/courses/{course.id}/students/cy/remove", {"confirm": "yes"})
    assert places(course.id) == [("ana", "enrolled"), ("bo", "enrolled"), ("dee", "waitlisted")]
    assert told("removed_from_course") == [
        ("cy", "Tina Teacher removed you from the waitlist of “Geography”.")
    ]
    assert told("waitlist_promoted") == []
    dee = db.session.scalar(select(User).filter_by(username="dee"))
    assert services.place_of(dee, course.id).position == 1


def test_htmx_swaps_the_roster(client, login_as, owner, course):
    login_as(owner)
    response = client.post_form(
        f"/courses/{course.id}/students/bo/remove",
        {"confirm": "yes"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="roster-panel">')
    assert 'data-username="bo"' not in response.text and "bo is removed" in response.text


@pytest.mark.parametrize(
    ("who", "role", "status"),
    [(None, None, 302), ("sam", "student", 403), ("olga", "teacher", 403), ("ada", "admin", 303)],
)
def test_who_may_remove_a_student(client, login_as, make_user, course, who, role, status):
    if who:
        login_as(make_user(who, role=role))
    url = f"/courses/{course.id}/students/ana/remove"
    assert client.post_form(url, {"confirm": "yes"}).status_code == status
    if who in ("sam", "olga"):
        assert client.get(url).status_code == 403
    expected = BEFORE if status != 303 else [("bo", "enrolled"), ("cy", "enrolled"), BEFORE[3]]
    assert places(course.id) == expected


def test_someone_not_on_the_roster_or_unknown_is_404_and_archived_is_403(
    client, login_as, make_user, owner, course
):
    make_user("zed")
    login_as(owner)
    for name in ("zed", "nobody"):
        url = f"/courses/{course.id}/students/{name}/remove"
        assert client.post_form(url, {"confirm": "yes"}).status_code == 404
        assert client.get(url).status_code == 404
    client.post_form(f"/courses/{course.id}/archive")
    url = f"/courses/{course.id}/students/ana/remove"
    assert client.post_form(url, {"confirm": "yes"}).status_code == 403
    assert places(course.id) == [("ana", "enrolled"), ("bo", "enrolled")]  # the waitlist closed
    assert "Remove<span" not in client.get(f"/courses/{course.id}/students").text


def test_a_removed_student_stops_receiving_the_room_at_once(
    live_server, client, login_as, owner, course
):
    room_id = db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course.id))
    ana = db.session.scalar(select(User).filter_by(username="ana"))
    bo = db.session.scalar(select(User).filter_by(username="bo"))
    with (
        open_socket(live_server, owner) as t,
        open_socket(live_server, ana) as a,
        open_socket(live_server, bo) as b,
    ):
        for ws in (t, a, b):
            send(ws, {"resume": {str(room_id): 0}})
        send(b, {"room": room_id, "body": "Before: hello everyone"})
        wait_for(a, lambda f: MESSAGE in f and "Before: hello everyone" in f)

        login_as(owner)
        url = f"/courses/{course.id}/students/ana/remove"
        assert client.post_form(url, {"confirm": "yes"}).status_code == 303

        send(b, {"room": room_id, "body": "After: ana has gone"})
        wait_for(t, lambda f: MESSAGE in f and "After: ana has gone" in f)
        wait_for(b, lambda f: MESSAGE in f and "After: ana has gone" in f)
        quiet(a, lambda f: "After: ana has gone" in f, seconds=1.0)
        send(a, {"room": room_id, "body": "Can I still write?"})
        assert "no such chat room" in error_of(a)
    db.session.expire_all()
    bodies = db.session.scalars(select(ChatMessage.body).order_by(ChatMessage.id)).all()
    assert bodies == ["Before: hello everyone", "After: ana has gone"]
    assert db.session.scalar(select(func.count()).select_from(Enrollment)) == 3
