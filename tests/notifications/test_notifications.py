"""Notifications: the badge, the list, marking read, and nobody else's."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.blueprints.notifications import services
from app.extensions import db
from app.models import Notification


def badge(html: str) -> int:
    return int(re.search(r'id="notification-count"[^>]*>(\d+)<', html).group(1))


def test_badge_list_and_mark_read(client, make_user, login_as):
    sam = make_user("sam")
    services.notify([sam.id], "test", "First thing", "/courses")
    services.notify([sam.id], "test", "Second thing", "")
    db.session.commit()
    login_as(sam)
    html = client.get("/notifications").get_data(as_text=True)
    assert badge(html) == 2
    assert html.index("Second thing") < html.index("First thing")

    first = db.session.scalar(select(Notification).where(Notification.text == "First thing"))
    opened = client.post_form(f"/notifications/{first.id}/read", {"open": "1"})
    assert opened.status_code == 303 and opened.headers["Location"] == "/courses"
    assert badge(client.get("/dashboard").get_data(as_text=True)) == 1

    assert client.post_form("/notifications/read-all").status_code == 303
    assert badge(client.get("/dashboard").get_data(as_text=True)) == 0


def test_someone_elses_notification_is_404_and_stays_unread(client, make_user, login_as):
    owner = make_user("owner")
    services.notify([owner.id], "test", "Private", "")
    db.session.commit()
    note = db.session.scalar(select(Notification))
    login_as(make_user("mallory"))
    assert client.post_form(f"/notifications/{note.id}/read").status_code == 404
    assert client.post_form("/notifications/99999/read").status_code == 404
    client.post_form("/notifications/read-all")
    assert db.session.get(Notification, note.id).read_at is None
    assert "Private" not in client.get("/notifications").get_data(as_text=True)


def test_notifications_need_signing_in(client):
    assert client.get("/notifications").status_code == 302
    assert client.post_form("/notifications/read-all").status_code == 302


def test_an_unsafe_link_is_never_followed(client, make_user, login_as):
    sam = make_user("sam")
    services.notify([sam.id], "test", "Odd", "https://evil.example/")
    db.session.commit()
    note = db.session.scalar(select(Notification))
    login_as(sam)
    response = client.post_form(f"/notifications/{note.id}/read", {"open": "1"})
    assert response.headers["Location"] == "/notifications"


def test_course_renamed_or_unpublished_tells_its_students(make_user, make_course):
    from app.blueprints.courses import services as courses
    from app.blueprints.enrollments import services as enrolment

    teacher = make_user("t", role="teacher")
    course = make_course(teacher, title="Old Name", capacity=1)
    a, b = make_user("a"), make_user("b")
    enrolment.enroll(a, course.id)
    enrolment.enroll(b, course.id)  # waitlisted: told as well
    courses.update(teacher, course.id, courses.CourseDraft("New Name", "", [], 1, True))
    courses.update(teacher, course.id, courses.CourseDraft("New Name", "", [], 1, False))
    kinds = db.session.execute(select(Notification.user_id, Notification.kind)).all()
    assert sorted(kinds) == sorted(
        [(a.id, "course_renamed"), (b.id, "course_renamed"),
         (a.id, "course_unpublished"), (b.id, "course_unpublished")]
    )  # fmt: skip
