"""The account lockout cannot lock the owner out: a browser that signed in to the account
before (its device cookie, OWASP's "device cookies") still may, with a lockout of its own."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from app.blueprints.auth.services import DEVICE_COOKIE_SALT
from app.extensions import db
from app.models import Notification
from tests.conftest import PASSWORD

DEVICE = "campus_device"
SIGN_IN = "/auth/login"


def sign_in(client, login: str, password: str = PASSWORD) -> object:
    return client.post_form(SIGN_IN, {"login": login, "password": password})


def lock(client, login: str) -> None:
    """Ten wrong passwords from a browser that never signed in to the account."""
    statuses = [sign_in(client, login, "wrong-guess-1").status_code for _ in range(10)]
    assert statuses == [422] * 10


def device_of(client) -> str | None:
    cookie = client.get_cookie(DEVICE, path=SIGN_IN)
    return cookie.value if cookie else None


@pytest.fixture
def owners_browser(app, make_user):
    """Grace has signed in from this browser before, and signed out."""
    make_user("grace", email="grace@school.example")
    browser = app.test_client()
    response = sign_in(browser, "grace")
    assert response.status_code == 303
    browser.post_form("/auth/logout")
    return browser, response


def test_a_sign_in_gives_the_browser_a_lasting_http_only_device_cookie(owners_browser):
    browser, response = owners_browser
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{DEVICE}=")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and f"Path={SIGN_IN}" in cookie
    assert "Max-Age=31536000" in cookie
    assert "Secure" not in cookie  # plain HTTP in tests; production below
    assert device_of(browser)


def test_registering_is_signing_in_from_that_browser(app, client):
    password = "analytical-engine-1843"
    account = {"username": "ada", "email": "ada@school.example", "full_name": "Ada Lovelace"}
    form = {**account, "password": password, "password_confirm": password}
    assert client.post_form("/auth/register", form).status_code == 303
    client.post_form("/auth/logout")
    lock(app.test_client(), "ada")
    assert sign_in(client, "ada", password).status_code == 303


def test_a_locked_account_still_signs_in_from_a_browser_that_signed_in_before(
    client, owners_browser
):
    browser, _ = owners_browser
    lock(client, "grace")
    stranger = sign_in(client, "grace")
    assert stranger.status_code == 429
    assert 60 < int(stranger.headers["Retry-After"]) <= 15 * 60
    owner = sign_in(browser, "grace@school.example")  # by email: the same account
    assert owner.status_code == 303
    assert browser.get("/dashboard").status_code == 200
    assert client.get("/dashboard").status_code == 302
    # Still locked to strangers: the owner's sign-in does not lift it.
    assert sign_in(client, "grace").status_code == 429


def test_a_device_cookie_for_another_account_does_not_help(app, client, make_user, owners_browser):
    make_user("bo")
    bos_browser = app.test_client()
    assert sign_in(bos_browser, "bo").status_code == 303
    bos_browser.post_form("/auth/logout")
    lock(client, "grace")
    refused = sign_in(bos_browser, "grace")
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def altered(cookie: str) -> str:
    """One character of the signed part changed (not the last, whose low bits are padding)."""
    return cookie[:5] + ("A" if cookie[5] != "A" else "B") + cookie[6:]


def forged(_cookie: str) -> str:
    """Well formed, naming grace, but signed with another key."""
    return URLSafeTimedSerializer("not-the-secret-key", salt=DEVICE_COOKIE_SALT).dumps(
        {"account": "grace", "nonce": "made-up"}
    )


@pytest.mark.parametrize("change", [altered, forged, lambda cookie: "garbage"])
def test_a_forged_or_altered_device_cookie_does_not_help(app, client, owners_browser, change):
    browser, _ = owners_browser
    lock(client, "grace")
    other = app.test_client()
    other.set_cookie(DEVICE, change(device_of(browser)), path=SIGN_IN)
    refused = sign_in(other, "grace")
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert other.get("/dashboard").status_code == 302


def test_ten_wrong_passwords_from_the_device_lock_the_device_too(client, owners_browser):
    browser, _ = owners_browser
    lock(client, "grace")
    statuses = [sign_in(browser, "grace", "wrong-guess-2").status_code for _ in range(10)]
    assert statuses == [422] * 10
    refused = sign_in(browser, "grace")
    assert refused.status_code == 429
    assert 60 < int(refused.headers["Retry-After"]) <= 15 * 60
    assert browser.get("/dashboard").status_code == 302


def test_an_unlocked_account_counts_a_known_browsers_failures_apart(client, owners_browser):
    """A known browser's failures count against that browser, not against the account."""
    browser, _ = owners_browser
    for _ in range(9):
        assert sign_in(browser, "grace", "wrong-guess-3").status_code == 422
    for _ in range(9):
        assert sign_in(client, "grace", "wrong-guess-4").status_code == 422
    assert sign_in(client, "grace").status_code == 303


def notifications_of(user_id: int | None = None) -> list[Notification]:
    query = select(Notification).order_by(Notification.id)
    if user_id is not None:
        query = query.where(Notification.user_id == user_id)
    return list(db.session.scalars(query))


def test_the_owner_is_told_once_when_the_account_locks(client, make_user):
    grace = make_user("grace")
    for _ in range(9):
        sign_in(client, "grace", "wrong-guess-5")
    assert notifications_of() == []
    sign_in(client, "grace", "wrong-guess-5")  # the tenth locks it
    statuses = [sign_in(client, "grace", "wrong-guess-5").status_code for _ in range(5)]
    assert statuses == [429] * 5
    [notice] = notifications_of()
    assert notice.user_id == grace.id and notice.kind == "account_locked"
    assert "new browsers are paused" in notice.text
    assert "signed in with before still work" in notice.text


def test_no_one_is_told_when_an_unknown_account_locks(client, make_user):
    make_user("grace")
    for _ in range(12):
        sign_in(client, "nobody", "wrong-guess-6")
    assert sign_in(client, "nobody").status_code == 429
    assert notifications_of() == []


def test_production_device_cookie_is_secure(monkeypatch, migrated_database, make_user):
    from app import create_app
    from config import ProductionConfig
    from tests.conftest import CampusClient

    make_user("grace")
    monkeypatch.setenv("SECRET_KEY", "a-real-secret-for-this-test")
    app = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI=migrated_database)
    app.test_client_class = CampusClient
    browser = app.test_client()
    response = sign_in(browser, "grace")
    assert response.status_code == 303
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(f"{DEVICE}=")]
    assert "Secure" in cookie and "HttpOnly" in cookie
