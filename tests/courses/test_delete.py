"""Deleting a course (DESIGN.md "Rosters and the course's life"): its teacher deletes a draft,
an admin a draft or an archived course, after typing its title; afterwards no row, no file and
no search hit refers to it, and the audit log says who did it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, or_, select

from app import search
from app.blueprints.enrollments.services import enroll
from app.blueprints.feedback import services as feedback
from app.extensions import db
from app.models import (
    AuditEvent,
    ChatMessage,
    ChatRead,
    ChatRoom,
    Course,
    Enrollment,
    Feedback,
    Material,
    Notification,
)
from tests.helpers import field_error

TEXT = b"Week 1: bring a notebook.\nWeek 2: field trip.\n" * 50
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n" * 20


def count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def stored_files(app) -> list[Path]:
    return [p for p in (Path(app.config["UPLOAD_DIR"]) / "files").glob("*") if p.is_file()]


@pytest.fixture
def people(make_user):
    return {
        "owner": make_user("tina", role="teacher", full_name="Tina Teacher"),
        "teacher": make_user("olga", role="teacher"),
        "admin": make_user("ada", role="admin"),
        "student": make_user("sam"),
    }


def post_delete(client, course, typed: str | None = None):
    return client.post_form(
        f"/courses/{course.id}/delete", {"confirm": course.title if typed is None else typed}
    )


@pytest.mark.parametrize(
    ("state", "who", "status"),
    [
        ("draft", None, 302),
        ("draft", "student", 403),
        ("draft", "teacher", 404),  # someone else's draft is missing to them
        ("draft", "owner", 303),
        ("draft", "admin", 303),
        ("published", "student", 403),
        ("published", "teacher", 403),
        ("published", "owner", 403),
        ("published", "admin", 403),
        ("archived", "teacher", 403),
        ("archived", "owner", 403),
        ("archived", "admin", 303),
    ],
)
def test_who_may_delete_which_course(client, login_as, make_course, people, state, who, status):
    course = make_course(people["owner"], title="Seismology", published=state != "draft")
    course_id = course.id
    if state == "archived":
        login_as(people["owner"])
        client.post_form(f"/courses/{course.id}/archive")
        client.post_form("/auth/logout")
    if who:
        login_as(people[who])
    response = post_delete(client, course)
    assert response.status_code == status
    assert count(Course) == (0 if status == 303 else 1)
    if status == 303:
        assert response.headers["Location"] == "/dashboard"
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "course_deleted"))
        assert (event.actor, event.subject, event.course_id) == (
            people[who].username,
            "Seismology",
            course_id,
        )


@pytest.mark.parametrize("typed", ["", "seismology", "Seismology!", "Other"])
def test_the_title_must_be_typed_exactly(client, login_as, make_course, people, typed):
    course = make_course(people["owner"], title="Seismology", published=False)
    login_as(people["owner"])
    response = post_delete(client, course, typed)
    assert response.status_code == 422
    assert "title exactly" in field_error(response.text, "confirm")
    assert '<details class="danger-zone" open>' in response.text
    assert count(Course) == 1 and count(AuditEvent) == 0


def test_the_course_page_offers_deletion_only_to_those_who_may(
    client, login_as, make_course, people
):
    draft = make_course(people["owner"], title="Draft course", published=False)
    running = make_course(people["owner"], title="Running course")
    login_as(people["owner"])
    assert f'action="/courses/{draft.id}/delete"' in client.get(f"/courses/{draft.id}").text
    assert "/delete" not in client.get(f"/courses/{running.id}").text


def test_deleting_leaves_no_row_no_file_and_no_search_hit(
    app, client, login_as, make_user, make_course, people
):
    owner, admin, sam = people["owner"], people["admin"], people["student"]
    course = make_course(owner, title="Seismology", keywords=["earthquakes"], capacity=1)
    keep = make_course(owner, title="Volcanology", keywords=["earthquakes"])
    course_id, keep_id = course.id, keep.id
    waiting = make_user("wes")
    enroll(sam, course.id)
    enroll(waiting, course.id)
    enroll(sam, keep.id)
    login_as(owner)
    files = [(TEXT, "weeks.txt"), (PDF, "syllabus.pdf"), (TEXT, "reading.txt")]
    for content, name in files:
        data = {"file": [(io.BytesIO(content), name)]}
        response = client.post_form(
            f"/courses/{course.id}/materials", data, content_type="multipart/form-data"
        )
        assert response.status_code == 303
    first = db.session.scalar(select(Material.id).order_by(Material.id))
    response = client.post_form(
        f"/materials/{first}/replace",
        {"file": (io.BytesIO(TEXT + b"v2"), "weeks.txt")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    feedback.save(sam, course.id, 5, "Shaken, not stirred")
    feedback.reply(owner, db.session.scalar(select(Feedback.id)), "Thanks!")
    room_id = db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course.id))
    db.session.add_all(
        ChatMessage(room_id=room_id, author_id=(sam, owner)[n % 2].id, body=f"Message {n}")
        for n in range(100)
    )
    db.session.add(ChatRead(room_id=room_id, user_id=sam.id, last_read_id=1))
    db.session.add(Notification(user_id=sam.id, kind="chat", text="x", link=f"/chat/{room_id}"))
    db.session.commit()
    client.post_form(f"/courses/{course.id}/archive")
    assert (count(Material), len(stored_files(app)), count(ChatMessage)) == (4, 4, 100)
    keep_files = count(Material, Material.course_id == keep_id)
    assert search.courses("seismology", "", owner.id, 1, 20).ids == [course.id]
    assert search.users("", None, course.id, 1, 20).ids
    told_before = count(Notification, Notification.link.like(f"/courses/{course.id}%"))
    assert told_before >= 4  # files added, feedback, reply, the waitlist closed

    client.post_form("/auth/logout")
    login_as(admin)
    response = client.post_form(f"/courses/{course_id}/delete", {"confirm": "Seismology"})
    assert response.status_code == 303

    refers = {
        "courses": count(Course, Course.id == course_id),
        "enrolments": count(Enrollment, Enrollment.course_id == course_id),
        "materials": count(Material, Material.course_id == course_id),
        "feedback": count(Feedback, Feedback.course_id == course_id),
        "rooms": count(ChatRoom, ChatRoom.course_id == course_id),
        "messages": count(ChatMessage, ChatMessage.room_id == room_id),
        "read marks": count(ChatRead, ChatRead.room_id == room_id),
        "notifications": count(
            Notification,
            or_(
                Notification.link.like(f"/courses/{course_id}%"),
                Notification.link.like(f"/chat/{room_id}%"),
            ),
        ),
        "files": len(stored_files(app)) - keep_files,
        "course hits": len(search.courses("seismology", "", owner.id, 1, 20).ids),
        "teacher's hits": len(search.courses("", "tina", owner.id, 1, 20).ids),
        "member hits": len(search.users("", None, course_id, 1, 20).ids),
    }
    assert refers == {
        "courses": 0,
        "enrolments": 0,
        "materials": 0,
        "feedback": 0,
        "rooms": 0,
        "messages": 0,
        "read marks": 0,
        "notifications": 0,
        "files": 0,
        "course hits": 0,
        "teacher's hits": 1,  # Volcanology stays
        "member hits": 0,
    }
    assert not list((Path(app.config["UPLOAD_DIR"]) / "tmp").glob("*"))
    assert count(Enrollment) == 1  # sam in Volcanology
    # Those who were on the course are told, without a link into it.
    told = db.session.execute(
        select(Notification.user_id, Notification.link).where(Notification.kind == "course_deleted")
    ).all()
    assert sorted(told) == [(sam.id, "/dashboard")]  # the waitlist was closed by the archive
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "course_deleted"))
    assert event.details == "1 enrolments, 4 files, 1 feedback, 100 messages"
    assert client.get(f"/courses/{course_id}").status_code == 404
