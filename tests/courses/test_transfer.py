"""Handing a course to another teacher (DESIGN.md "Rosters and the course's life"): admins
only; the course, its room and roster move; both teachers are told; the old one loses
management at once; audited. It is the way to demote a teacher who still teaches."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.blueprints.admin import services as admin_services
from app.blueprints.enrollments.services import enroll
from app.extensions import db
from app.models import AuditEvent, ChatRoom, Course, Notification, User
from tests.helpers import field_error
from tests.search.helpers import course_ids


@pytest.fixture
def people(make_user):
    return {
        "old": make_user("tina", role="teacher", full_name="Tina Teacher"),
        "new": make_user("nora", role="teacher", full_name="Nora Newton"),
        "admin": make_user("ada", role="admin", full_name="Ada Admin"),
        "student": make_user("sam"),
    }


@pytest.fixture
def course(make_course, people):
    course = make_course(people["old"], title="Seismology")
    enroll(people["student"], course.id)
    return course


def teacher_of(course_id: int) -> str:
    db.session.expire_all()
    return db.session.scalar(
        select(User.username)
        .join(Course, Course.teacher_id == User.id)
        .where(Course.id == course_id)
    )


@pytest.mark.parametrize(
    ("who", "status"),
    [(None, 302), ("student", 403), ("old", 403), ("new", 403), ("admin", 303)],
)
def test_only_admins_transfer(client, login_as, people, course, who, status):
    if who:
        login_as(people[who])
    response = client.post_form(f"/courses/{course.id}/transfer", {"teacher": "nora"})
    assert response.status_code == status
    assert teacher_of(course.id) == ("nora" if status == 303 else "tina")


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "Type the new teacher"),
        ("nobody", "No teacher is called “nobody”."),
        ("sam", "No teacher is called “sam”."),
        ("tina", "tina already teaches this course."),
        ("gone", "gone is deactivated"),
    ],
)
def test_a_non_teacher_or_unknown_is_422_and_nothing_changes(
    client, login_as, make_user, people, course, typed, says
):
    make_user("gone", role="teacher")
    admin_services.deactivate(people["admin"], "gone")
    login_as(people["admin"])
    response = client.post_form(f"/courses/{course.id}/transfer", {"teacher": typed})
    assert response.status_code == 422
    assert says in field_error(response.text, "teacher")
    assert teacher_of(course.id) == "tina"
    assert db.session.scalars(select(AuditEvent.action)).all() == ["deactivated"]
    assert (
        db.session.scalar(select(Notification).where(Notification.kind == "course_transferred"))
        is None
    )


def test_the_course_room_and_roster_move_and_both_are_told(client, login_as, people, course):
    room_id = db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course.id))
    login_as(people["admin"])
    response = client.post_form(f"/courses/{course.id}/transfer", {"teacher": "NORA"})
    assert response.status_code == 303
    assert "now taught by Nora Newton" in client.get(response.headers["Location"]).text
    told = db.session.execute(
        select(User.username, Notification.text)
        .join(User, User.id == Notification.user_id)
        .where(Notification.kind == "course_transferred")
        .order_by(User.username)
    ).all()
    assert told == [
        ("nora", "Ada Admin handed “Seismology” to you; Tina Teacher taught it before."),
        ("tina", "Ada Admin handed “Seismology” to Nora Newton."),
    ]
    event = db.session.scalar(select(AuditEvent))
    assert (event.action, event.actor, event.subject, event.course_id, event.details) == (
        "course_transferred",
        "ada",
        "nora",
        course.id,
        "tina → nora",
    )
    client.post_form("/auth/logout")

    login_as(people["old"])  # signed in before? No matter: management is read per request
    for url in (f"/courses/{course.id}/edit", f"/courses/{course.id}/students"):
        assert client.get(url).status_code == 403
    assert client.post_form(f"/courses/{course.id}/archive").status_code == 403
    assert client.get(f"/chat/{room_id}").status_code == 404
    client.post_form("/auth/logout")

    login_as(people["new"])
    assert client.get(f"/courses/{course.id}/edit").status_code == 200
    roster = client.get(f"/courses/{course.id}/students").text
    assert 'data-username="sam"' in roster
    assert client.get(f"/chat/{room_id}").status_code == 200
    assert course_ids(client.get("/search/courses?teacher=nora")) == [course.id]
    assert course_ids(client.get("/search/courses?teacher=tina")) == []


def test_a_teacher_who_handed_over_every_course_can_become_a_student(
    client, login_as, people, course
):
    from app.errors import InvalidInput

    with pytest.raises(InvalidInput, match="give those courses to another teacher"):
        admin_services.change_role(people["admin"], "tina", "student")
    login_as(people["admin"])
    client.post_form(f"/courses/{course.id}/transfer", {"teacher": "nora"})
    assert admin_services.change_role(people["admin"], "tina", "student").role == "student"


def test_the_course_page_offers_the_transfer_to_admins_only(client, login_as, people, course):
    login_as(people["admin"])
    assert f'action="/courses/{course.id}/transfer"' in client.get(f"/courses/{course.id}").text
    client.post_form("/auth/logout")
    login_as(people["old"])
    assert "/transfer" not in client.get(f"/courses/{course.id}").text
