"""Profiles: one's own page, editing it (never the role), changing the password, public pages."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import User
from tests.conftest import PASSWORD
from tests.helpers import field_error


@pytest.fixture
def grace(make_user, login_as):
    user = make_user("grace", email="grace@school.example", full_name="Grace Hopper")
    login_as(user)
    return user


def test_profile_shows_my_details(client, grace):
    html = client.get("/profile").get_data(as_text=True)
    assert "Grace Hopper" in html and "grace@school.example" in html
    assert 'data-username="grace"' in html


def test_edit_saves_name_email_and_bio_with_line_breaks(client, grace):
    response = client.post_form(
        "/profile/edit",
        {
            "full_name": "Rear Admiral Grace Hopper",
            "email": "Hopper@Navy.Example",
            "bio": "COBOL.\r\nNanoseconds.",
            "current_password": PASSWORD,  # a new email needs it
        },
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/profile"
    user = db.session.get(User, grace.id)
    assert (user.full_name, user.email, user.bio) == (
        "Rear Admiral Grace Hopper",
        "hopper@navy.example",
        "COBOL.\nNanoseconds.",
    )


def test_role_cannot_be_changed_from_the_profile(client, grace):
    response = client.post_form(
        "/profile/edit",
        {"full_name": "Grace", "email": "grace@school.example", "bio": "", "role": "admin"},
    )
    assert response.status_code == 303
    assert db.session.get(User, grace.id).role == "student"
    assert 'name="role"' not in client.get("/profile/edit").get_data(as_text=True)


def test_email_taken_by_someone_else_is_refused(client, make_user, grace):
    make_user("ada", email="ada@school.example")
    response = client.post_form(
        "/profile/edit", {"full_name": "Grace", "email": "ADA@school.example", "bio": ""}
    )
    assert response.status_code == 422
    assert "already exists" in field_error(response.get_data(as_text=True), "email")
    assert db.session.get(User, grace.id).email == "grace@school.example"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"full_name": "", "email": "grace@school.example", "bio": ""}, "full_name"),
        ({"full_name": "G" * 101, "email": "grace@school.example", "bio": ""}, "full_name"),
        ({"full_name": "Grace", "email": "grace@", "bio": ""}, "email"),
        ({"full_name": "Grace", "email": "grace@school.example", "bio": "b" * 1001}, "bio"),
        ({"full_name": "Grace", "email": "grace@school.example", "bio": "nul\x00byte"}, "bio"),
        ({"full_name": "Gr\x07ace", "email": "grace@school.example", "bio": ""}, "full_name"),
        ({"full_name": "Gr\u200bace", "email": "grace@school.example", "bio": ""}, "full_name"),
        ({"full_name": "\u202eGrace", "email": "grace@school.example", "bio": ""}, "full_name"),
        ({"full_name": "Grace", "email": "grace@school.example", "bio": "\u2066hi"}, "bio"),
    ],
)
def test_bad_profile_input_is_422_and_changes_nothing(client, grace, data, field):
    response = client.post_form("/profile/edit", data)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), field)
    user = db.session.get(User, grace.id)
    assert (user.full_name, user.email, user.bio) == ("Grace Hopper", "grace@school.example", "")


def test_a_zero_width_space_stays_allowed_in_the_bio(client, grace):
    data = {"full_name": "Grace", "email": "grace@school.example", "bio": "Nano\u200bseconds"}
    assert client.post_form("/profile/edit", data).status_code == 303
    assert db.session.get(User, grace.id).bio == "Nano\u200bseconds"


def test_bio_is_shown_escaped(client, grace, make_user, login_as):
    client.post_form(
        "/profile/edit",
        {"full_name": "Grace", "email": "grace@school.example", "bio": "<script>alert(1)</script>"},
    )
    html = client.get("/users/grace").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_password_change_needs_the_current_password(client, grace):
    response = client.post_form(
        "/profile/password",
        {
            "current_password": "not-my-password",
            "new_password": "fresh-new-secret",
            "new_password_confirm": "fresh-new-secret",
        },
    )
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "current_password")
    client.post_form("/auth/logout")
    assert (
        client.post_form("/auth/login", {"login": "grace", "password": PASSWORD}).status_code == 303
    )


@pytest.mark.parametrize(
    ("new", "confirm", "field"),
    [
        ("short", "short", "new_password"),
        ("fresh-new-secret", "other-new-secret", "new_password_confirm"),
        ("password123", "password123", "new_password"),
        ("grace@school.example", "grace@school.example", "new_password"),
    ],
)
def test_bad_new_password_is_refused(client, grace, new, confirm, field):
    response = client.post_form(
        "/profile/password",
        {"current_password": PASSWORD, "new_password": new, "new_password_confirm": confirm},
    )
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), field)
    assert client.get("/dashboard").status_code == 200  # still signed in, nothing changed


def test_new_password_works_and_old_one_does_not(client, grace):
    client.post_form(
        "/profile/password",
        {
            "current_password": PASSWORD,
            "new_password": "fresh-new-secret",
            "new_password_confirm": "fresh-new-secret",
        },
    )
    client.post_form("/auth/logout")
    assert (
        client.post_form("/auth/login", {"login": "grace", "password": PASSWORD}).status_code == 422
    )
    assert (
        client.post_form(
            "/auth/login", {"login": "grace", "password": "fresh-new-secret"}
        ).status_code
        == 303
    )


def test_public_profile_hides_the_email(client, grace, make_user):
    make_user("ada", email="ada@school.example", full_name="Ada Lovelace")
    response = client.get("/users/ADA")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Ada Lovelace" in html and 'data-username="ada"' in html
    assert "ada@school.example" not in html


def test_public_profile_of_nobody_is_404(client, grace):
    assert client.get("/users/nobody").status_code == 404
    assert db.session.scalar(select(User.username).where(User.username == "nobody")) is None


def test_htmx_save_answers_the_form_alone_with_the_message_for_the_live_region(client, grace):
    token = client.csrf_token()
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    saved = client.post(
        "/profile/edit",
        data={"full_name": "Grace B. Hopper", "email": "grace@school.example", "bio": ""},
        headers=headers,
    )
    html = saved.get_data(as_text=True)
    assert saved.status_code == 200
    assert "<html" not in html and 'id="profile-form"' in html
    assert 'hx-swap-oob="innerHTML:#flashes"' in html and "Your profile is saved." in html
    assert db.session.get(User, grace.id).full_name == "Grace B. Hopper"

    invalid = client.post(
        "/profile/edit",
        data={"full_name": "", "email": "grace@school.example", "bio": ""},
        headers=headers,
    )
    assert invalid.status_code == 422
    assert "<html" not in invalid.get_data(as_text=True)
    assert "HX-Request" in invalid.headers["Vary"]
    assert field_error(invalid.get_data(as_text=True), "full_name")
