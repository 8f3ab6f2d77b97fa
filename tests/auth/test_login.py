"""Signing in and out: by username or email, remember me, safe `next`, throttling."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD
from tests.helpers import field_error


def test_login_by_username_or_email_ignoring_case(client, make_user):
    make_user("grace", email="grace@school.example")
    for login in ("grace", "GRACE", "Grace@School.Example", "  grace  "):
        response = client.post_form("/auth/login", {"login": login, "password": PASSWORD})
        assert response.status_code == 303, login
        assert client.get("/dashboard").status_code == 200
        client.post_form("/auth/logout")


def test_wrong_password_and_unknown_account_get_the_same_answer(client, make_user):
    make_user("grace")
    wrong = client.post_form("/auth/login", {"login": "grace", "password": "not-the-password"})
    unknown = client.post_form("/auth/login", {"login": "nobody", "password": "not-the-password"})
    assert wrong.status_code == unknown.status_code == 422
    assert field_error(wrong.get_data(as_text=True), "login") == field_error(
        unknown.get_data(as_text=True), "login"
    )
    assert client.get("/dashboard").status_code == 302


def test_remember_me_sets_a_lasting_http_only_cookie(client, make_user, login_as):
    response = login_as(make_user("grace"), remember=True)
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if "remember_token" in c)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie


def test_without_remember_me_no_remember_cookie(client, make_user, login_as):
    response = login_as(make_user("grace"))
    assert not any("remember_token" in c for c in response.headers.getlist("Set-Cookie"))


@pytest.mark.parametrize("target", ["/profile", "/users/grace?tab=1"])
def test_next_goes_to_a_local_path(client, make_user, target):
    make_user("grace")
    response = client.post_form(
        f"/auth/login?next={target}", {"login": "grace", "password": PASSWORD}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == target


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "/\r\nSet-Cookie:x=1",
        "",
    ],
)
def test_next_never_leaves_the_site(client, make_user, target):
    make_user("grace")
    response = client.post_form(
        "/auth/login", {"login": "grace", "password": PASSWORD}, query_string={"next": target}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard"


def test_logout_is_post_only(client, make_user, login_as):
    login_as(make_user("grace"))
    assert client.get("/auth/logout").status_code == 405
    assert client.get("/dashboard").status_code == 200
    response = client.post_form("/auth/logout")
    assert response.status_code == 303
    assert client.get("/dashboard").status_code == 302


def test_account_locks_after_ten_failures_even_with_the_right_password(client, make_user):
    make_user("grace", email="grace@school.example")
    for attempt in range(10):
        # Alternate username and email: both count against the same account.
        login = "grace" if attempt % 2 else "grace@school.example"
        response = client.post_form("/auth/login", {"login": login, "password": "wrong-guess"})
        assert response.status_code == 422
    locked = client.post_form("/auth/login", {"login": "grace", "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed sign-ins" in locked.get_data(as_text=True)
    # The lockout lasts 15 minutes from the first failure: the answer says how long is left.
    assert 60 < int(locked.headers["Retry-After"]) <= 15 * 60
    assert client.get("/dashboard").status_code == 302


def test_a_success_clears_the_failure_count(client, make_user):
    make_user("grace")
    for _ in range(9):
        client.post_form("/auth/login", {"login": "grace", "password": "wrong-guess"})
    assert (
        client.post_form("/auth/login", {"login": "grace", "password": PASSWORD}).status_code == 303
    )
    client.post_form("/auth/logout")
    for _ in range(9):
        response = client.post_form("/auth/login", {"login": "grace", "password": "wrong-guess"})
        assert response.status_code == 422


def test_one_address_is_throttled_across_accounts(app, client):
    app.config["LOGIN_ADDRESS_LIMIT"] = "5 per minute"
    responses = [
        client.post_form("/auth/login", {"login": f"guess{n}", "password": "x" * 12})
        for n in range(7)
    ]
    assert [response.status_code for response in responses] == [422] * 5 + [429, 429]
    assert all("Retry-After" not in response.headers for response in responses[:5])
    assert 0 < int(responses[-1].headers["Retry-After"]) <= 60


def test_signed_in_user_visiting_login_goes_to_dashboard(client, make_user, login_as):
    login_as(make_user("grace"))
    response = client.get("/auth/login")
    assert response.status_code == 302
    assert response.headers["Location"] == "/dashboard"


def other_app(database_url: str, **config) -> object:
    from app import create_app
    from tests.conftest import CampusClient

    app = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url, **config)
    app.test_client_class = CampusClient
    return app


def test_sign_in_works_when_the_limit_store_is_down(migrated_database, make_user):
    make_user("grace")
    # Nothing listens on port 9: every count fails, and signing in must not.
    app = other_app(migrated_database, RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0")
    client = app.test_client()
    response = client.post_form("/auth/login", {"login": "grace", "password": PASSWORD})
    assert response.status_code == 303


def test_behind_a_trusted_proxy_each_client_address_has_its_own_limit(migrated_database):
    app = other_app(migrated_database, TRUSTED_PROXIES=1, LOGIN_ADDRESS_LIMIT="2 per minute")
    client = app.test_client()

    def attempt(address: str) -> int:
        data = {"login": "nobody", "password": "wrong-password"}
        headers = {"X-Forwarded-For": address}
        return client.post_form("/auth/login", data, headers=headers).status_code

    assert [attempt("203.0.113.7") for _ in range(3)] == [422, 422, 429]
    assert attempt("198.51.100.4") == 422
