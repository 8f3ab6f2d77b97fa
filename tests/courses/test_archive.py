"""Archiving a course (DESIGN.md "Rosters and the course's life"): who may, what an archived
course refuses (403, nothing stored), what stays readable, and where it is no longer listed."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.blueprints.enrollments.services import enroll
from app.blueprints.feedback import services as feedback
from app.blueprints.materials import services as materials
from app.extensions import db
from app.models import (
    AuditEvent,
    ChatMessage,
    ChatRoom,
    Course,
    Enrollment,
    Feedback,
    Material,
    Notification,
)
from tests.search.helpers import course_ids

TEXT = b"Week 1: bring a notebook.\nWeek 2: field trip.\n" * 50


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def files_on_disk(app) -> list[str]:
    return sorted(p.name for p in Path(app.config["UPLOAD_DIR"]).rglob("*") if p.is_file())


@pytest.fixture
def people(make_user):
    return {
        "owner": make_user("tina", role="teacher", full_name="Tina Teacher"),
        "teacher": make_user("olga", role="teacher"),
        "admin": make_user("ada", role="admin"),
        "student": make_user("sam"),
    }


@pytest.fixture
def course(make_course, people):
    return make_course(people["owner"], title="Seismology", keywords=["earthquakes"], capacity=5)


def archive_now(client, login_as, people, course) -> None:
    login_as(people["owner"])
    assert client.post_form(f"/courses/{course.id}/archive").status_code == 303
    client.post_form("/auth/logout")


def archived_at(course_id: int):
    db.session.expire_all()
    return db.session.get(Course, course_id).archived_at


@pytest.mark.parametrize("action", ["archive", "unarchive"])
@pytest.mark.parametrize(
    ("who", "status"),
    [(None, 302), ("student", 403), ("teacher", 403), ("owner", 303), ("admin", 303)],
)
def test_archive_and_unarchive_permissions(client, login_as, people, course, action, who, status):
    if action == "unarchive":
        archive_now(client, login_as, people, course)
    before = archived_at(course.id)
    if who is not None:
        login_as(people[who])
    response = client.post_form(f"/courses/{course.id}/{action}")
    assert response.status_code == status
    if who is None:
        assert "/auth/login" in response.headers["Location"]
    after = archived_at(course.id)
    if status == 303:
        assert response.headers["Location"] == f"/courses/{course.id}"
        assert (after is not None) == (action == "archive")
        audited = db.session.scalar(
            select(AuditEvent.action)
            .where(AuditEvent.course_id == course.id)
            .order_by(AuditEvent.id.desc())
        )
        assert audited == f"course_{action}d"
    else:
        assert after == before


def test_someone_elses_draft_is_404_to_a_teacher(client, login_as, make_course, people):
    draft = make_course(people["owner"], published=False)
    login_as(people["teacher"])
    assert client.post_form(f"/courses/{draft.id}/archive").status_code == 404


def test_archiving_twice_changes_nothing_more(client, login_as, people, course):
    login_as(people["owner"])
    client.post_form(f"/courses/{course.id}/archive")
    first = archived_at(course.id)
    assert client.post_form(f"/courses/{course.id}/archive").status_code == 303
    assert archived_at(course.id) == first
    assert count(AuditEvent) == 1


def test_archiving_closes_the_waitlist_and_tells_those_waiting(
    client, login_as, make_user, make_course, people
):
    course = make_course(people["owner"], capacity=1)
    seated, waiting = make_user("seated"), make_user("waiting")
    enroll(seated, course.id)
    enroll(waiting, course.id)
    login_as(people["owner"])
    client.post_form(f"/courses/{course.id}/archive")
    rows = db.session.execute(select(Enrollment.student_id, Enrollment.status)).all()
    assert rows == [(seated.id, "enrolled")]
    told = db.session.scalars(select(Notification).where(Notification.kind == "waitlist_closed"))
    assert [(n.user_id, n.link) for n in told] == [(waiting.id, f"/courses/{course.id}")]
    event = db.session.scalar(select(AuditEvent))
    assert (event.action, event.actor, event.details) == (
        "course_archived",
        "tina",
        "1 removed from the waitlist",
    )


@pytest.fixture
def archived_course(app, client, login_as, make_user, people, course):
    """An archived course with an enrolled student, a file, feedback and a chat message."""
    student = people["student"]
    enroll(student, course.id)
    checked = materials.CheckedFile
    upload = Path(app.config["UPLOAD_DIR"]) / "tmp"
    upload.mkdir(parents=True)
    (upload / "notes").write_bytes(TEXT)
    material = checked(upload / "notes", "notes.txt", "text/plain", len(TEXT), "0" * 64)
    row = material.kept_as(course.id, people["owner"].id, "Notes")
    db.session.add(row)
    db.session.commit()
    feedback.save(student, course.id, 4, "Good course")
    room_id = db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course.id))
    db.session.add(ChatMessage(room_id=room_id, author_id=student.id, body="See you all"))
    db.session.commit()
    archive_now(client, login_as, people, course)
    return course, row.id, room_id


def test_an_archived_course_stays_readable(client, login_as, people, archived_course):
    course, material_id, room_id = archived_course
    for who in ("student", "owner"):
        login_as(people[who])
        page = client.get(f"/courses/{course.id}")
        assert page.status_code == 200
        assert f'data-course-id="{course.id}" data-archived=' in page.text
        assert "data-archived-notice" in page.text and "Archived" in page.text
        assert f'action="/courses/{course.id}/enroll"' not in page.text
        listing = client.get(f"/courses/{course.id}/materials")
        assert f'data-material-id="{material_id}"' in listing.text
        assert f'action="/courses/{course.id}/materials"' not in listing.text
        download = client.get(f"/materials/{material_id}/download")
        assert download.status_code == 200 and download.data == TEXT
        reviews = client.get(f"/courses/{course.id}/feedback")
        assert reviews.status_code == 200 and "Good course" in reviews.text
        assert "feedback-form" not in reviews.text and "Post reply" not in reviews.text
        chat = client.get(f"/chat/{room_id}")
        assert chat.status_code == 200 and "See you all" in chat.text
        assert "data-room-form" not in chat.text and "data-archived-notice" in chat.text
        client.post_form("/auth/logout")
    login_as(people["teacher"])
    assert client.get(f"/courses/{course.id}").status_code == 200
    assert client.get(f"/courses/{course.id}/materials").status_code == 403


def stored() -> tuple:
    db.session.expire_all()
    return (
        db.session.execute(select(Enrollment.student_id, Enrollment.status)).all(),
        db.session.execute(select(Material.id, Material.is_current, Material.title)).all(),
        db.session.execute(select(Feedback.rating, Feedback.comment, Feedback.reply)).all(),
        db.session.scalars(select(ChatMessage.body)).all(),
        db.session.execute(select(Course.title, Course.capacity)).all(),
    )


def test_every_change_to_an_archived_course_is_403_and_stores_nothing(
    app, client, login_as, make_user, people, archived_course
):
    course, material_id, room_id = archived_course
    newcomer = make_user("nina")
    feedback_id = db.session.scalar(select(Feedback.id))
    before, disk, told = stored(), files_on_disk(app), count(Notification)
    attempts = [
        (newcomer, f"/courses/{course.id}/enroll", {}),
        (people["student"], f"/courses/{course.id}/withdraw", {}),
        (people["student"], f"/courses/{course.id}/feedback", {"rating": "1", "comment": "x"}),
        (people["student"], f"/feedback/{feedback_id}/delete", {}),
        (people["student"], f"/chat/{room_id}/messages", {"body": "Anyone here?"}),
        (people["owner"], f"/feedback/{feedback_id}/reply", {"body": "Thanks"}),
        (people["owner"], f"/materials/{material_id}/delete", {}),
        (people["owner"], f"/chat/{room_id}/messages", {"body": "Hello again"}),
        (people["owner"], f"/courses/{course.id}/edit", {"title": "Renamed", "capacity": "9"}),
        (people["admin"], f"/courses/{course.id}/edit", {"title": "Renamed", "capacity": "9"}),
    ]
    for who, url, data in attempts:
        login_as(who)
        response = client.post_form(url, data)
        assert response.status_code == 403, (who.username, url, response.status_code)
        assert "archived" in response.text
        client.post_form("/auth/logout")
    login_as(people["owner"])
    assert client.get(f"/courses/{course.id}/edit").status_code == 403
    for url in (f"/courses/{course.id}/materials", f"/materials/{material_id}/replace"):
        upload = {"file": (io.BytesIO(TEXT), "more.txt")}
        response = client.post_form(url, upload, content_type="multipart/form-data")
        assert response.status_code == 403, url
    assert stored() == before
    assert files_on_disk(app) == disk
    assert count(Notification) == told


def test_archived_courses_leave_the_catalogue_and_search_until_unarchived(
    client, login_as, make_course, people, course
):
    other = make_course(people["teacher"], title="Seismic design", keywords=["earthquakes"])
    assert set(course_ids(client.get("/courses"))) == {course.id, other.id}
    assert set(course_ids(client.get("/search/courses?q=earthquakes"))) == {course.id, other.id}
    archive_now(client, login_as, people, course)
    for who in (None, "student", "teacher"):
        if who:
            login_as(people[who])
        assert course_ids(client.get("/courses")) == [other.id]
        assert course_ids(client.get("/search/courses?q=earthquakes")) == [other.id]
        assert course_ids(client.get("/search/courses?q=seismology")) == []
        assert course_ids(client.get("/search/courses?teacher=tina")) == []
        if who:
            client.post_form("/auth/logout")
    login_as(people["owner"])
    client.post_form(f"/courses/{course.id}/unarchive")
    client.post_form("/auth/logout")
    assert set(course_ids(client.get("/courses"))) == {course.id, other.id}
    assert set(course_ids(client.get("/search/courses?q=earthquakes"))) == {course.id, other.id}


def test_search_falls_back_to_sql_without_archived_courses(
    client, login_as, make_course, people, course, monkeypatch
):
    from app import search

    archive_now(client, login_as, people, course)

    def unavailable(*args, **kwargs):
        raise search.SearchUnavailable("index is being rebuilt")

    monkeypatch.setattr(search, "courses", unavailable)
    assert course_ids(client.get("/search/courses?q=seismology")) == []


def test_the_dashboard_shows_past_courses_to_their_teacher_and_students(
    client, login_as, make_course, people, course
):
    current = make_course(people["owner"], title="Volcanology")
    enroll(people["student"], course.id)
    enroll(people["student"], current.id)
    archive_now(client, login_as, people, course)
    for who in ("owner", "student"):
        login_as(people[who])
        html = client.get("/dashboard").text
        past = html.split('id="past-courses"')[1].split("</section>")[0]
        assert "Past courses" in past
        assert course_ids_in(past) == [course.id]
        assert course_ids_in(html.split('id="past-courses"')[0]) == [current.id]
        client.post_form("/auth/logout")


def course_ids_in(html: str) -> list[int]:
    import re

    return [int(i) for i in re.findall(r'data-course-id="(\d+)"', html)]


def test_a_class_list_cannot_enrol_anyone_in_an_archived_course(
    app, client, login_as, people, course
):
    from app.blueprints.admin import imports

    archive_now(client, login_as, people, course)
    header = "username;full_name;email;role;courses"
    raw = f"{header}\nnew1;New One;new1@school.example;student;{course.id}\n"
    with app.test_request_context():
        preview = imports.preview(people["admin"], raw.encode())
    assert [(line.outcome, line.errors) for line in preview.lines] == [
        ("error", [f"course {course.id} is archived"])
    ]
