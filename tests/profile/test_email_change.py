"""Changing one's email needs one's password, and the old address is told by mail (DESIGN.md
"E-mail")."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxMessage, User
from tests.conftest import PASSWORD
from tests.helpers import field_error
from tests.smtp_server import html_part, text_part

NEW = {"full_name": "Grace Hopper", "email": "Hopper@Navy.example", "bio": ""}


@pytest.fixture
def grace(make_user, login_as):
    user = make_user("grace", email="grace@school.example", full_name="Grace Hopper")
    login_as(user)
    return user


def outbox() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage)))


@pytest.mark.parametrize(
    ("password", "message"),
    [("", "Enter your password to change your email."), ("wrong-password-1", "That is not")],
)
def test_a_new_email_without_the_right_password_is_422(client, grace, password, message):
    response = client.post_form("/profile/edit", NEW | {"current_password": password})
    assert response.status_code == 422
    error = field_error(response.get_data(as_text=True), "email_current_password")
    assert error and error.startswith(message)
    assert 'aria-describedby="email_current_password-error' in response.get_data(as_text=True)
    assert db.session.get(User, grace.id).email == "grace@school.example"
    assert outbox() == []


def test_htmx_gets_the_422_in_the_form_alone(client, grace):
    headers = {"HX-Request": "true", "X-CSRFToken": client.csrf_token()}
    response = client.post("/profile/edit", data=NEW, headers=headers)
    assert response.status_code == 422 and "<html" not in response.get_data(as_text=True)
    assert field_error(response.get_data(as_text=True), "email_current_password")


def test_with_the_password_the_email_changes_and_the_old_address_is_told(client, grace, mail_to):
    response = client.post_form("/profile/edit", NEW | {"current_password": PASSWORD})
    assert response.status_code == 303
    assert db.session.get(User, grace.id).email == "hopper@navy.example"
    [message] = mail_to.wait_for(1)
    assert message["To"] == "grace@school.example"  # the old address, not the new one
    for part in (text_part(message), html_part(message)):
        assert "grace@school.example" in part and "hopper@navy.example" in part
    assert "https://campus.school.example/profile/edit" in text_part(message)
    # The new address signs in.
    client.post_form("/auth/logout")
    signed_in = client.post_form(
        "/auth/login", {"login": "hopper@navy.example", "password": PASSWORD}
    )
    assert signed_in.status_code == 303


def test_other_changes_need_no_password_and_send_no_mail(client, grace):
    same_email = {"full_name": "Grace B. Hopper", "email": "GRACE@school.example", "bio": "Hi"}
    assert client.post_form("/profile/edit", same_email).status_code == 303
    assert db.session.get(User, grace.id).full_name == "Grace B. Hopper"
    assert outbox() == []


def test_a_taken_email_is_422_even_with_the_password_and_sends_nothing(client, grace, make_user):
    make_user("ada", email="ada@school.example")
    data = NEW | {"email": "ada@school.example", "current_password": PASSWORD}
    response = client.post_form("/profile/edit", data)
    assert response.status_code == 422
    assert "already exists" in field_error(response.get_data(as_text=True), "email")
    assert outbox() == []
