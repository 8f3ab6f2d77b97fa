"""A teacher adds students by username (DESIGN.md "Rosters and the course's life"): as if each
had enrolled (a full course waitlists them), each told; any bad name refuses them all."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.blueprints.admin import services as admin
from app.blueprints.enrollments import services
from app.extensions import db
from app.models import Enrollment, Notification
from tests.helpers import field_error


@pytest.fixture
def owner(make_user):
    return make_user("tina", role="teacher", full_name="Tina Teacher")


@pytest.fixture
def course(make_course, owner):
    return make_course(owner, title="Geography", capacity=2)


@pytest.fixture
def pupils(make_user):
    return [make_user(name) for name in ("ana", "bo", "cy", "dee")]


def places(course_id: int) -> list[tuple[str, str]]:
    from app.models import User

    db.session.expire_all()
    return db.session.execute(
        select(User.username, Enrollment.status)
        .join(Enrollment, Enrollment.student_id == User.id)
        .where(Enrollment.course_id == course_id)
        .order_by(Enrollment.id)
    ).all()


def notifications() -> list[tuple[int, str, str]]:
    return db.session.execute(
        select(Notification.user_id, Notification.kind, Notification.text).order_by(Notification.id)
    ).all()


def test_names_separated_by_spaces_commas_and_lines_enrol_then_waitlist(
    client, login_as, owner, course, pupils
):
    login_as(owner)
    response = client.post_form(
        f"/courses/{course.id}/students", {"usernames": "ana, BO\r\n@cy  ana"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/courses/{course.id}/students"
    assert places(course.id) == [("ana", "enrolled"), ("bo", "enrolled"), ("cy", "waitlisted")]
    ana, bo, cy, _ = pupils
    told = notifications()
    assert [(user_id, kind) for user_id, kind, _ in told] == [
        (ana.id, "enrolled_by_teacher"),
        (bo.id, "enrolled_by_teacher"),
        (cy.id, "waitlisted_by_teacher"),
    ]
    assert told[0][2] == "Tina Teacher enrolled you in “Geography”."
    assert "number 1" in told[2][2]
    page = client.get(response.headers["Location"]).text
    assert "Enrolled: ana, bo." in page and "cy (number 1)" in page
    assert re.findall(r'data-username="(\w+)"', page.split('id="waitlist"')[1]) == ["cy"]


def test_a_student_already_there_is_left_as_they_are(client, login_as, owner, course, pupils):
    services.enroll(pupils[0], course.id)
    login_as(owner)
    response = client.post_form(f"/courses/{course.id}/students", {"usernames": "ana bo"})
    assert response.status_code == 303
    assert places(course.id) == [("ana", "enrolled"), ("bo", "enrolled")]
    assert [kind for _, kind, _ in notifications()] == ["enrolled_by_teacher"]
    assert "Already on the roster: ana." in client.get(f"/courses/{course.id}/students").text


def test_unknown_names_and_non_students_are_named_and_nobody_is_added(
    client, login_as, make_user, owner, course, pupils
):
    make_user("olga", role="teacher")
    make_user("ada", role="admin")
    gone = make_user("gus")
    admin.deactivate(make_user("boss", role="admin"), gone.username)
    login_as(owner)
    typed = "ana nobody olga, ada\nghost gus"
    response = client.post_form(f"/courses/{course.id}/students", {"usernames": typed})
    assert response.status_code == 422
    message = field_error(response.text, "usernames")
    assert "No student is called nobody, ghost." in message
    assert "Not students: olga, ada." in message
    assert "Deactivated: gus." in message
    assert "Nobody was added." in message
    assert "ana nobody olga, ada" in response.text  # the box keeps what was typed
    assert places(course.id) == []
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0


@pytest.mark.parametrize("typed", ["", "  ,\n ", "ana\x00"])
def test_empty_or_control_characters_are_422(client, login_as, owner, course, pupils, typed):
    login_as(owner)
    response = client.post_form(f"/courses/{course.id}/students", {"usernames": typed})
    assert response.status_code == 422
    assert field_error(response.text, "usernames")
    assert places(course.id) == []


@pytest.mark.parametrize(
    ("who", "role", "status"),
    [(None, None, 302), ("sam", "student", 403), ("olga", "teacher", 403), ("ada", "admin", 303)],
)
def test_who_may_add_students(client, login_as, make_user, course, pupils, who, role, status):
    if who:
        login_as(make_user(who, role=role))
    response = client.post_form(f"/courses/{course.id}/students", {"usernames": "ana"})
    assert response.status_code == status
    assert places(course.id) == ([("ana", "enrolled")] if status == 303 else [])


def test_a_draft_has_no_students_and_an_archived_course_is_403(
    client, login_as, make_course, owner, course, pupils
):
    draft = make_course(owner, published=False)
    login_as(owner)
    response = client.post_form(f"/courses/{draft.id}/students", {"usernames": "ana"})
    assert response.status_code == 422
    assert "Publish the course first" in response.text
    client.post_form(f"/courses/{course.id}/archive")
    response = client.post_form(f"/courses/{course.id}/students", {"usernames": "ana"})
    assert response.status_code == 403
    assert places(draft.id) == places(course.id) == []
    assert 'id="add-heading"' not in client.get(f"/courses/{course.id}/students").text


def test_htmx_gets_the_roster_part_with_the_message(client, login_as, owner, course, pupils):
    login_as(owner)
    response = client.post_form(
        f"/courses/{course.id}/students", {"usernames": "ana"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<div id="roster-panel">')
    assert 'hx-swap-oob="innerHTML:#flashes"' in response.text and "Enrolled: ana." in response.text
    bad = client.post_form(
        f"/courses/{course.id}/students", {"usernames": "zed"}, headers={"HX-Request": "true"}
    )
    assert bad.status_code == 422 and "No student is called zed." in bad.text
    assert "<html" not in bad.text


def test_the_roster_page_has_a_plain_form(client, login_as, owner, course):
    login_as(owner)
    page = client.get(f"/courses/{course.id}/students").text
    form = page.split('id="add-heading"')[1].split("</form>")[0]
    assert f'method="post" action="/courses/{course.id}/students"' in form
    assert 'name="csrf_token"' in form and 'name="usernames"' in form


def suggested(client, course_id: int, typed: str, status: int = 200) -> list[str]:
    response = client.get(
        f"/courses/{course_id}/students/suggestions",
        query_string={"usernames": typed},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == status
    return re.findall(r'data-add-username="([^"]+)"', response.text)


def test_students_the_last_word_may_mean_are_suggested(
    client, login_as, make_user, owner, course, pupils
):
    make_user("anatol", role="teacher")
    make_user("anabel", full_name="Anabel Smith")
    services.enroll(make_user("anders"), course.id)
    login_as(owner)
    assert sorted(suggested(client, course.id, "an")) == ["ana", "anabel"]
    assert sorted(suggested(client, course.id, "bo, an")) == ["ana", "anabel"]
    assert suggested(client, course.id, "ana, anab") == ["anabel"]
    assert suggested(client, course.id, "smi") == ["anabel"]  # by name too
    assert suggested(client, course.id, "ana, ") == []  # the last word is finished
    assert suggested(client, course.id, "") == []


def test_only_who_may_add_gets_suggestions(client, login_as, make_user, course, pupils):
    login_as(make_user("olga", role="teacher"))
    suggested(client, course.id, "an", status=403)
