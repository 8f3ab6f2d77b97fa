"""The dashboard is kept whole for each person (app/web.py `kept_for_person`), under their own
scope and the scopes of the courses it shows. After any change to what it shows the next
request shows it, on every worker: two app instances over one database, each with its own
memory, as two gunicorn workers are (with Redis in CI's second pass, the database otherwise)."""

from __future__ import annotations

import re

import pytest
from flask import Flask

from app.blueprints.courses import lifecycle
from app.blueprints.enrollments import services as enrolment
from app.blueprints.feedback import services as feedback
from app.blueprints.notifications.services import notify
from app.extensions import db
from tests.conftest import CampusClient, read, signed_in


@pytest.fixture
def teacher(make_user):
    return make_user("tina", role="teacher", full_name="Tina Teacher")


def both(app: Flask, other_worker: Flask, user) -> tuple[CampusClient, CampusClient]:
    """`user` signed in on each worker, each worker keeping their dashboard from here on (the
    first page after signing in shows the welcome message, and is not kept)."""
    readers = signed_in(app, user), signed_in(other_worker, user)
    read(readers, "/dashboard")
    read(readers, "/dashboard")
    return readers


def section(html: str, name: str) -> str:
    """The dashboard's section `name` (enrolled, waitlisted, teaching, past-courses)."""
    if f'id="{name}"' not in html:
        return ""
    return html.split(f'id="{name}"')[1].split("</section>")[0]


def sections(readers, name: str) -> list[str]:
    return [section(html, name) for html in read(readers, "/dashboard")]


def marks(readers, name: str, attribute: str) -> list[list[str]]:
    """The values of a data attribute in the section, on each reader's dashboard."""
    return [re.findall(rf'{attribute}="([^"]+)"', part) for part in sections(readers, name)]


def test_enrolling_and_withdrawing_show_on_both_workers(
    app, other_worker, make_user, make_course, teacher
):
    sam = make_user("sam")
    course = make_course(teacher, title="Tide Pools")
    readers = both(app, other_worker, sam)
    assert ["Tide Pools" in part for part in sections(readers, "enrolled")] == [False, False]
    assert readers[0].post_form(f"/courses/{course.id}/enroll").status_code == 303
    assert ["Tide Pools" in part for part in sections(readers, "enrolled")] == [True, True]
    assert readers[1].post_form(f"/courses/{course.id}/withdraw").status_code == 303
    assert ["Tide Pools" in part for part in sections(readers, "enrolled")] == [False, False]


def test_a_place_on_the_waitlist_moves_when_someone_ahead_leaves(
    app, other_worker, make_user, make_course, teacher
):
    """Another person's change: nothing of the waiting student's own rows changes."""
    course = make_course(teacher, title="Tide Pools", capacity=1)
    first, second, wendy = make_user("first"), make_user("second"), make_user("wendy")
    for student in (first, second, wendy):
        enrolment.enroll(student, course.id)
    readers = both(app, other_worker, wendy)
    assert marks(readers, "waitlisted", "data-waitlist-position") == [["2"], ["2"]]
    enrolment.withdraw(first, course.id)  # `second` takes the seat, wendy is next
    assert marks(readers, "waitlisted", "data-waitlist-position") == [["1"], ["1"]]


def test_a_course_edit_rating_and_archive_show_on_both_workers(
    app, other_worker, client, login_as, make_user, make_course, teacher
):
    sam, rita = make_user("sam"), make_user("rita")
    course = make_course(teacher, title="Tide Pools")
    for student in (sam, rita):
        enrolment.enroll(student, course.id)
    readers = both(app, other_worker, sam)
    login_as(teacher)
    form = {"title": "Rock Pools", "description": "Life between the tides.", "published": "y"}
    assert client.post_form(f"/courses/{course.id}/edit", form).status_code == 303
    assert ["Rock Pools" in part for part in sections(readers, "enrolled")] == [True, True]

    feedback.save(rita, course.id, 4, "Lovely.")  # the card's rating
    assert marks(readers, "enrolled", "data-average-rating") == [["4.0"], ["4.0"]]

    assert client.post_form(f"/courses/{course.id}/archive").status_code == 303
    assert ["Rock Pools" in part for part in sections(readers, "enrolled")] == [False, False]
    assert ["Rock Pools" in part for part in sections(readers, "past-courses")] == [True, True]


def test_a_new_course_and_a_handed_over_one_show_on_the_teachers_dashboards(
    app, other_worker, make_user, make_course, teacher
):
    tom = make_user("tom", role="teacher")
    admin = make_user("ada", role="admin")
    tinas, toms = both(app, other_worker, teacher), both(app, other_worker, tom)
    course = make_course(teacher, title="Tide Pools")
    assert ["Tide Pools" in part for part in sections(tinas, "teaching")] == [True, True]
    assert ["Tide Pools" in part for part in sections(toms, "teaching")] == [False, False]
    lifecycle.transfer(admin, course.id, "tom")
    assert ["Tide Pools" in part for part in sections(tinas, "teaching")] == [False, False]
    assert ["Tide Pools" in part for part in sections(toms, "teaching")] == [True, True]


def test_a_notification_shows_and_the_kept_page_forms_carry_each_sessions_token(
    app, other_worker, make_user
):
    sam = make_user("sam")
    readers = both(app, other_worker, sam)
    notify([sam.id], "course_updated", "Bring boots on Friday.", "/dashboard")
    db.session.commit()
    pages = read(readers, "/dashboard")
    assert ["Bring boots on Friday." in html for html in pages] == [True, True]
    # A third session of the same person on the first worker gets the page kept there, with
    # its own token in the forms: marking the notification read works.
    third = signed_in(app, sam)
    third.get("/dashboard")  # the welcome message
    html = read((third,), "/dashboard")[0]
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert token != re.search(r'name="csrf_token" value="([^"]+)"', pages[0]).group(1)
    action = re.search(r'action="(/notifications/\d+/read)"', html).group(1)
    assert third.post(action, data={"csrf_token": token}).status_code == 303
    assert ["Bring boots on Friday." in html for html in read(readers, "/dashboard")] == [
        False,
        False,
    ]


def test_a_kept_dashboard_runs_none_of_its_queries(
    client, make_user, make_course, login_as, count_queries, teacher
):
    sam = make_user("sam")
    for n in range(5):
        enrolment.enroll(sam, make_course(teacher, title=f"Course {n}").id)
    login_as(sam)
    client.get("/dashboard")  # the welcome message: a page not kept
    with count_queries() as first:
        client.get("/dashboard")
    with count_queries() as kept:
        html = client.get("/dashboard").get_data(as_text=True)
    assert len(re.findall(r"data-course-id=", html)) == 5
    assert any("enrollments" in statement for statement in first)
    assert not any("enrollments" in statement for statement in kept), kept
