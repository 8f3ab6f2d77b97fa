"""Times in the viewer's zone (DESIGN.md): the `timezone` on the profile, UTC until set, and
every page that prints a time (notifications, feedback, materials, chat) showing it in that
zone, with UTC in `<time datetime>`."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from app.blueprints.chat import services as chat
from app.blueprints.enrollments.services import enroll
from app.extensions import db
from app.models import ChatMessage, ChatRoom, Feedback, Material, Notification, User
from tests.conftest import PASSWORD
from tests.helpers import field_error

# 03:30 UTC on 15 January is 22:30 on 14 January in New York (EST, UTC-5).
MOMENT = datetime(2026, 1, 15, 3, 30, tzinfo=UTC)
IN_UTC = "2026-01-15T03:30:00+00:00"
TIME = re.compile(r'<time datetime="([^"]+)"[^>]*>([^<]*)</time>')


def shown_at(html: str, moment: str = IN_UTC) -> list[str]:
    """The text of every `<time>` element of the page that carries this moment."""
    return [text for when, text in TIME.findall(html) if when == moment]


@pytest.fixture
def school(make_user, make_course):
    """A student in a course with something of each kind dated MOMENT: a notification, a
    feedback entry, a material and a chat message."""
    teacher = make_user("tess", role="teacher", full_name="Tess Teacher")
    course = make_course(teacher, title="Night Sky")
    student = make_user("nia", full_name="Nia Student")
    enroll(student, course.id)
    room_id = db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course.id))
    db.session.add_all(
        [
            Notification(user_id=student.id, kind="chat", text="Tess wrote.", created_at=MOMENT),
            Feedback(course_id=course.id, student_id=student.id, rating=5, comment="Stars!",
                     created_at=MOMENT),
            Material(course_id=course.id, title="Star chart", original_name="chart.pdf",
                     stored_name="0" * 64, content_type="application/pdf", size=10,
                     sha256="0" * 64, uploaded_by_id=teacher.id, created_at=MOMENT),
            ChatMessage(room_id=room_id, author_id=teacher.id, body="Look up tonight.",
                        created_at=MOMENT),
        ]
    )  # fmt: skip
    db.session.commit()
    return student, course, room_id


PAGES = {
    "notifications": ("/notifications", "15 January 2026", "14 January 2026"),
    "feedback": ("/courses/{course}/feedback", "15 January 2026", "14 January 2026"),
    "materials": ("/courses/{course}/materials", "15 January 2026", "14 January 2026"),
    "chat": ("/chat/{room}", "15 Jan, 03:30", "14 Jan, 22:30"),
}


def set_zone(client, user: User, zone: str):
    data = {"full_name": user.full_name, "email": user.email, "bio": "", "timezone": zone}
    return client.post_form("/profile/edit", data)


@pytest.mark.parametrize("page", PAGES)
def test_times_are_shown_in_the_viewers_zone_utc_until_set(client, login_as, school, page):
    student, course, room_id = school
    path, in_utc, in_new_york = PAGES[page]
    path = path.format(course=course.id, room=room_id)
    login_as(student)
    assert shown_at(client.get(path).get_data(as_text=True)) == [in_utc]

    assert set_zone(client, student, "America/New_York").status_code == 303
    html = client.get(path).get_data(as_text=True)
    assert shown_at(html) == [in_new_york]  # the attribute stays in UTC


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "utc", "", "../../etc/passwd", "x" * 300])
def test_an_unknown_zone_is_refused_with_422_and_nothing_changes(client, login_as, school, zone):
    student, *_ = school
    login_as(student)
    response = set_zone(client, student, zone)
    assert response.status_code == 422
    assert "Choose a time zone from the list" in field_error(
        response.get_data(as_text=True), "timezone"
    )
    db.session.expire_all()
    assert db.session.get(User, student.id).timezone == "UTC"


def test_the_profile_form_offers_the_zones_with_mine_chosen(client, login_as, school):
    student, *_ = school
    login_as(student)
    html = client.get("/profile/edit").get_data(as_text=True)
    assert '<option value="UTC" selected>' in html
    assert '<option value="Europe/Paris">' in html
    set_zone(client, student, "Asia/Kolkata")
    html = client.get("/profile/edit").get_data(as_text=True)
    assert '<option value="Asia/Kolkata" selected>' in html
    assert '<option value="UTC">' in html
    # The live fragments of this person's pages are written in their zone.
    assert 'data-time-zone="Asia/Kolkata"' in html


def registration(**fields: str) -> dict[str, str]:
    return {
        "username": "newbie",
        "email": "newbie@school.example",
        "full_name": "New Bie",
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "role": "student",
        **fields,
    }


def test_registration_keeps_the_zone_the_browser_preset(client):
    response = client.post_form("/auth/register", registration(timezone="Australia/Sydney"))
    assert response.status_code == 303
    assert db.session.scalar(select(User.timezone).where(User.username == "newbie")) == (
        "Australia/Sydney"
    )


def test_registration_without_a_zone_is_utc(client):
    """Without JavaScript the select stays at UTC; a client that sends no zone gets it too."""
    assert client.post_form("/auth/register", registration()).status_code == 303
    assert db.session.scalar(select(User.timezone).where(User.username == "newbie")) == "UTC"


def test_registration_with_an_unknown_zone_is_422_and_stores_nobody(client):
    response = client.post_form("/auth/register", registration(timezone="Nowhere/At_All"))
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "timezone")
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_a_live_message_carries_utc_for_each_page_to_show_in_its_zone(app, school):
    """A live fragment is rendered once for every member: its time is UTC, marked for the
    page's script (static/js/times.js) to write in the viewer's zone."""
    _, _, room_id = school
    message = db.session.scalar(select(ChatMessage).where(ChatMessage.room_id == room_id))
    with app.test_request_context():
        html = chat.message_fragment(message, "Tess Teacher")
    assert f'<time datetime="{IN_UTC}" data-localize="message_time">15 Jan, 03:30</time>' in html
