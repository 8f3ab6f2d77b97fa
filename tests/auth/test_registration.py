"""Registration: who may register as what, and every rule on the fields."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from app.blueprints.auth import services
from app.errors import InvalidInput
from app.extensions import db
from app.models import User
from tests.helpers import field_error, input_tag, user_count

GOOD = {
    "username": "Ada.Lovelace",
    "email": "Ada@School.Example",
    "full_name": "Ada Lovelace",
    "password": "analytical-engine-1843",
    "password_confirm": "analytical-engine-1843",
}


def test_register_makes_a_signed_in_student(client):
    response = client.post_form("/auth/register", GOOD)

    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard"
    user = db.session.scalar(select(User))
    assert (user.username, user.email, user.role) == (
        "ada.lovelace",
        "ada@school.example",
        "student",
    )
    dashboard = client.get("/dashboard")
    assert dashboard.status_code == 200
    assert "@ada.lovelace" in dashboard.get_data(as_text=True)


@pytest.mark.parametrize(
    "full_name",
    [
        "مهدی\u200cزاده",  # Persian: the zero-width non-joiner is part of the spelling
        "Ada 👩\u200d🏫",  # an emoji made of two joined by a zero-width joiner
        "\u200fعلی\u200e Ada",  # direction marks
    ],
    ids=["persian-zwnj", "emoji-zwj", "direction-marks"],
)
def test_names_keep_joiners_and_direction_marks(client, full_name):
    response = client.post_form("/auth/register", GOOD | {"full_name": full_name})
    assert response.status_code == 303
    assert db.session.scalar(select(User.full_name)) == full_name


def test_hidden_characters_in_a_name_are_named_beside_it(client):
    response = client.post_form("/auth/register", GOOD | {"full_name": "Ada\u200b Lovelace"})
    assert response.status_code == 422
    message = field_error(response.get_data(as_text=True), "full_name")
    assert message == "Remove the invisible zero-width spaces from this field."
    response = client.post_form("/auth/register", GOOD | {"full_name": "Ada \u202eecalevoL"})
    message = field_error(response.get_data(as_text=True), "full_name")
    assert (
        message
        == "Remove the invisible characters that change the direction of text from this field."
    )
    assert user_count() == 0


def test_password_is_stored_as_argon2id(client):
    client.post_form("/auth/register", GOOD)
    user = db.session.scalar(select(User))
    assert user.password_hash.startswith("$argon2id$")
    assert PasswordHasher().verify(user.password_hash, GOOD["password"])


def test_teacher_registration_needs_the_school_code(app, client):
    app.config["TEACHER_SIGNUP_CODE"] = "maple-syrup-77"
    wrong = client.post_form("/auth/register", GOOD | {"role": "teacher", "teacher_code": "maple"})
    assert wrong.status_code == 422
    assert "teacher code is not right" in field_error(wrong.get_data(as_text=True), "teacher_code")
    assert user_count() == 0

    right = client.post_form(
        "/auth/register", GOOD | {"role": "teacher", "teacher_code": "maple-syrup-77"}
    )
    assert right.status_code == 303
    assert db.session.scalar(select(User.role)) == "teacher"


def test_teacher_registration_is_closed_without_a_code(app, client):
    app.config["TEACHER_SIGNUP_CODE"] = None
    response = client.post_form("/auth/register", GOOD | {"role": "teacher", "teacher_code": ""})
    assert response.status_code == 422
    assert "closed" in response.get_data(as_text=True)
    assert user_count() == 0


def test_admin_cannot_be_chosen(client):
    response = client.post_form("/auth/register", GOOD | {"role": "admin"})
    assert response.status_code == 422
    assert user_count() == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("username", "ADA.LOVELACE", "username is taken"),
        ("email", "ADA@SCHOOL.EXAMPLE", "already exists"),
    ],
)
def test_username_and_email_are_unique_ignoring_case(client, make_user, field, value, message):
    make_user("ada.lovelace", email="ada@school.example")
    other = {"username": "someone", "email": "someone@school.example"} | {field: value}
    response = client.post_form("/auth/register", GOOD | other)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert user_count() == 1


def test_messages_sit_beside_their_fields(client):
    response = client.post_form(
        "/auth/register",
        {"username": "x", "email": "nope", "full_name": "", "password": "short"},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    for field in ("username", "email", "full_name", "password", "password_confirm"):
        assert field_error(html, field), field
        tag = input_tag(html, field)
        assert f"{field}-error" in tag and 'aria-invalid="true"' in tag, tag
    # The first invalid field takes focus when the page loads, and only that one.
    assert "autofocus" in input_tag(html, "username")
    assert html.count("autofocus") == 1


@pytest.mark.parametrize(
    "password",
    ["ada.lovelace", "ADA@school.example", "password123", "aaaaaaaaaaaaaa", "1234567890"],
)
def test_guessable_passwords_are_refused(client, password):
    response = client.post_form(
        "/auth/register", GOOD | {"password": password, "password_confirm": password}
    )
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "password")
    assert user_count() == 0


def test_service_refuses_a_taken_username_when_the_race_is_lost(app, make_user):
    # Both requests passed the check; the unique index decides and the loser gets a message.
    make_user("taken")
    with pytest.raises(InvalidInput) as error:
        services.create_user("TAKEN", "new@school.example", "New", "long-enough-pass", "student")
    assert "username" in error.value.errors
    assert user_count() == 1
