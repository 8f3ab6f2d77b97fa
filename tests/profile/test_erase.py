"""Erasing an account: by the person (POST /profile/delete) or by an admin
(POST /admin/users/<username>/delete). Afterwards nothing in the database names them, their
seat went to the waitlist, what they wrote reads "Former member", and their username and
email are free again."""

from __future__ import annotations

import pytest
from sqlalchemy import JSON, String, Text, cast, func, or_, select

from app.blueprints.chat.services import course_room_id
from app.blueprints.enrollments.services import enroll
from app.extensions import db
from app.models import AuditEvent, Enrollment, Feedback, User
from tests.conftest import PASSWORD
from tests.helpers import field_error

NAME, USERNAME, EMAIL = "Zelda Quinnsworth", "zelda.q", "zelda.quinn@school.example"


def rows_naming(*terms: str) -> list[str]:
    """Every (table.column: value) in the database whose text holds one of `terms`."""
    found = []
    for table in db.metadata.sorted_tables:
        for column in table.columns:
            if not isinstance(column.type, String | Text | JSON):
                continue
            text = func.lower(cast(column, Text))
            matches = or_(*(text.contains(term.lower(), autoescape=True) for term in terms))
            for value in db.session.scalars(select(column).where(matches)):
                found.append(f"{table.name}.{column.name}: {value!r}")
    return found


@pytest.fixture
def term(make_user, make_course):
    """A small term around Zelda: a full course with someone waiting, a chat message that
    told the away teacher her name, feedback the teacher replied to (mail and notifications
    naming her), and an admin who deactivated and reactivated her (audit rows)."""
    teacher = make_user("tina", role="teacher", full_name="Tina Teacher")
    admin = make_user("ada", role="admin")
    zelda = make_user(USERNAME, full_name=NAME, email=EMAIL)
    waiting = make_user("wes")
    course = make_course(teacher, title="Geography", capacity=1)
    enroll(zelda, course.id)
    enroll(waiting, course.id)
    return {
        "teacher": teacher,
        "admin": admin,
        "zelda": zelda,
        "waiting": waiting,
        "course": course,
    }


def act_as_zelda(client, login_as, term) -> None:
    """What Zelda does during the term, as she would: through the app's forms."""
    course = term["course"]
    login_as(term["zelda"])
    room = course_room_id(course.id)
    assert (
        client.post_form(
            f"/chat/{room}/messages", {"body": "see you at the field trip"}
        ).status_code
        == 303
    )
    feedback = {"rating": "4", "comment": "the maps were great"}
    assert client.post_form(f"/courses/{course.id}/feedback", feedback).status_code == 303
    client.post_form("/auth/logout")
    login_as(term["teacher"])
    entry = db.session.scalar(select(Feedback.id))
    assert client.post_form(f"/feedback/{entry}/reply", {"body": "Thank you!"}).status_code == 303
    client.post_form("/auth/logout")
    login_as(term["admin"])
    assert client.post_form(f"/admin/users/{USERNAME}/deactivate").status_code == 303
    assert client.post_form(f"/admin/users/{USERNAME}/reactivate").status_code == 303
    client.post_form("/auth/logout")


def test_after_erasing_no_text_column_holds_her_name_username_or_email(app, client, login_as, term):
    act_as_zelda(client, login_as, term)
    assert rows_naming(NAME, EMAIL), "the term should have copied her name somewhere"

    login_as(term["zelda"])
    response = client.post_form(
        "/profile/delete", {"current_password": PASSWORD, "confirm": USERNAME}
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/auth/login")

    assert rows_naming(NAME, EMAIL, USERNAME) == []
    erased = db.session.get(User, term["zelda"].id)
    assert erased.full_name == "Former member" and erased.erased_at is not None
    assert erased.bio == "" and not erased.is_active
    # Her seat went to the first on the waitlist, who was told.
    assert db.session.scalars(select(Enrollment.student_id)).all() == [term["waiting"].id]
    # The audit log kept its rows (ids, actions), only without her name.
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.subject_id == erased.id).order_by(AuditEvent.id)
    ).all()
    assert actions == ["deactivated", "reactivated", "erased"]
    # She is signed out: the session she had opens nothing.
    assert client.get("/dashboard").status_code == 302


def test_what_she_wrote_stays_signed_former_member(app, client, login_as, term):
    act_as_zelda(client, login_as, term)
    login_as(term["zelda"])
    client.post_form("/profile/delete", {"current_password": PASSWORD, "confirm": USERNAME})

    login_as(term["teacher"])
    course = term["course"]
    chat = client.get(f"/chat/{course_room_id(course.id)}").get_data(as_text=True)
    assert "see you at the field trip" in chat and "Former member" in chat and NAME not in chat
    feedback = client.get(f"/courses/{course.id}/feedback").get_data(as_text=True)
    assert "the maps were great" in feedback and "Former member" in feedback
    assert NAME not in feedback
    # Teachers' people search no longer finds her, by name or by email.
    for query in ("Zelda", "quinn"):
        found = client.get(f"/search/users?q={query}").get_data(as_text=True)
        assert f'data-username="{USERNAME}"' not in found and NAME not in found
    # Her public profile is gone.
    assert client.get(f"/users/{USERNAME}").status_code == 404


def test_her_username_and_email_can_be_registered_again(app, client, login_as, term):
    login_as(term["zelda"])
    client.post_form("/profile/delete", {"current_password": PASSWORD, "confirm": USERNAME})
    form = {
        "username": USERNAME,
        "email": EMAIL,
        "full_name": "Zelda Again",
        "password": "A-new-start-2026",
        "password_confirm": "A-new-start-2026",
        "role": "student",
    }
    assert client.post_form("/auth/register", form).status_code == 303
    again = db.session.scalar(select(User).where(User.username == USERNAME))
    assert again.id != term["zelda"].id and again.email == EMAIL
    # Nobody can sign in as the erased account, whatever its placeholder name.
    erased = db.session.get(User, term["zelda"].id)
    client.post_form("/auth/logout")
    login = client.post_form("/auth/login", {"login": erased.username, "password": ""})
    assert login.status_code == 422


@pytest.mark.parametrize(
    ("fields", "field_id"),
    [
        ({"current_password": "not-my-password", "confirm": USERNAME}, "erase_current_password"),
        ({"current_password": PASSWORD, "confirm": "zelda"}, "confirm"),
        ({"current_password": PASSWORD, "confirm": ""}, "confirm"),
        ({"current_password": "", "confirm": USERNAME}, "erase_current_password"),
    ],
)
def test_a_wrong_password_or_confirmation_erases_nothing(
    app, client, login_as, term, fields, field_id
):
    login_as(term["zelda"])
    response = client.post_form("/profile/delete", fields)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), field_id)
    zelda = db.session.get(User, term["zelda"].id)
    assert (zelda.username, zelda.full_name, zelda.erased_at) == (USERNAME, NAME, None)
    assert client.get("/dashboard").status_code == 200  # still signed in


def test_a_teacher_who_still_owns_courses_is_told_which(app, client, login_as, term, make_course):
    make_course(term["teacher"], title="Botany", published=False)
    login_as(term["teacher"])
    page = client.get("/profile/delete").get_data(as_text=True)
    assert "Botany" in page and "Geography" in page
    response = client.post_form(
        "/profile/delete", {"current_password": PASSWORD, "confirm": "tina"}
    )
    assert response.status_code == 422
    message = field_error(response.get_data(as_text=True), "confirm")
    assert "Botany" in message and "Geography" in message
    assert db.session.get(User, term["teacher"].id).erased_at is None


def test_erasing_needs_a_session_and_the_csrf_token(app, client, login_as, term):
    assert client.get("/profile/delete").status_code == 302
    assert client.post("/profile/delete", data={"confirm": USERNAME}).status_code in (302, 400)
    login_as(term["zelda"])
    bare = client.post("/profile/delete", data={"current_password": PASSWORD, "confirm": USERNAME})
    assert bare.status_code == 400
    assert db.session.get(User, term["zelda"].id).erased_at is None


def test_only_an_admin_erases_someone_else(app, client, login_as, term, make_user):
    url = f"/admin/users/{USERNAME}/delete"
    for who in (term["waiting"], term["teacher"]):
        login_as(who)
        assert client.post_form(url, {"confirm": USERNAME}).status_code == 403
        client.post_form("/auth/logout")
    assert client.post_form(url, {"confirm": USERNAME}).status_code == 302
    assert db.session.get(User, term["zelda"].id).erased_at is None

    login_as(term["admin"])
    assert client.post(url, data={"confirm": USERNAME}).status_code == 400  # no CSRF token
    assert client.post_form(url, {"confirm": "zelda"}).status_code == 422
    assert client.post_form("/admin/users/ada/delete", {"confirm": "ada"}).status_code == 422
    assert client.post_form("/admin/users/nobody/delete", {"confirm": "nobody"}).status_code == 404
    teacher_refused = client.post_form("/admin/users/tina/delete", {"confirm": "tina"})
    assert teacher_refused.status_code == 422
    assert "Geography" in teacher_refused.get_data(as_text=True)
    assert db.session.get(User, term["zelda"].id).erased_at is None

    done = client.post_form(url, {"confirm": USERNAME})
    assert done.status_code == 303 and done.headers["Location"].endswith("/admin/users")
    erased = db.session.get(User, term["zelda"].id)
    assert erased.erased_at is not None
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "erased"))
    assert (event.actor, event.subject_id) == ("ada", erased.id)
    assert rows_naming(NAME, EMAIL, USERNAME) == []
    # Erased once: the same username is now nobody's.
    assert client.post_form(url, {"confirm": USERNAME}).status_code == 404


def test_the_last_admin_cannot_erase_themselves(app, client, login_as, term):
    login_as(term["admin"])
    response = client.post_form("/profile/delete", {"current_password": PASSWORD, "confirm": "ada"})
    assert response.status_code == 422
    assert "last active admin" in response.get_data(as_text=True)
    assert db.session.get(User, term["admin"].id).erased_at is None
