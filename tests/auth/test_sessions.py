"""Ending sessions for real: a cookie captured before logout, a password change or a role
change opens nothing afterwards."""

from __future__ import annotations

from flask.testing import FlaskClient

from app.blueprints.auth import services
from app.extensions import db
from app.models import User
from tests.conftest import PASSWORD


def cookies_of(client: FlaskClient) -> dict[str, str]:
    return {
        name: client.get_cookie(name).value
        for name in ("session", "remember_token")
        if client.get_cookie(name)
    }


def replay(app, cookies: dict[str, str]) -> int:
    """Open the dashboard in a fresh client carrying only these captured cookies."""
    thief = app.test_client()
    for name, value in cookies.items():
        thief.set_cookie(name, value)
    return thief.get("/dashboard").status_code


def test_session_cookie_replayed_after_logout_is_refused(app, client, make_user, login_as):
    login_as(make_user("grace"))
    captured = cookies_of(client)
    assert replay(app, captured) == 200

    client.post_form("/auth/logout")

    assert replay(app, captured) == 302


def test_remember_cookie_replayed_after_logout_is_refused(app, client, make_user, login_as):
    login_as(make_user("grace"), remember=True)
    remember_only = {"remember_token": cookies_of(client)["remember_token"]}
    assert replay(app, remember_only) == 200

    client.post_form("/auth/logout")

    assert replay(app, remember_only) == 302


def test_password_change_ends_other_sessions_but_keeps_this_one(app, client, make_user, login_as):
    login_as(make_user("grace"), remember=True)
    captured = cookies_of(client)
    other_device = app.test_client()
    for name, value in captured.items():
        other_device.set_cookie(name, value)

    response = client.post_form(
        "/profile/password",
        {
            "current_password": PASSWORD,
            "new_password": "a-brand-new-secret",
            "new_password_confirm": "a-brand-new-secret",
        },
    )

    assert response.status_code == 303
    assert client.get("/dashboard").status_code == 200  # the device that changed it
    assert other_device.get("/dashboard").status_code == 302
    assert replay(app, captured) == 302
    assert replay(app, {"remember_token": captured["remember_token"]}) == 302


def test_role_change_ends_sessions(app, client, make_user, login_as):
    user = make_user("grace")
    login_as(user)
    captured = cookies_of(client)

    services.set_role(db.session.get(User, user.id), "teacher")

    assert replay(app, captured) == 302
    assert client.get("/dashboard").status_code == 302


def test_a_forged_version_in_the_cookie_is_refused(app, client, make_user, login_as):
    user = make_user("grace")
    login_as(user)
    with client.session_transaction() as session:
        session["_user_id"] = f"{user.id}:999"
    assert client.get("/dashboard").status_code == 302
    with client.session_transaction() as session:
        session["_user_id"] = f"{user.id}"
    assert client.get("/dashboard").status_code == 302
