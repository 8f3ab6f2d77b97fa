"""Bad input to registration and login: each answer is 422, 400 or 429 as DESIGN.md says,
never a 500, and nothing is stored and nobody is signed in."""

from __future__ import annotations

import json

import pytest

from tests.conftest import PASSWORD
from tests.helpers import user_count

GOOD = {
    "username": "newcomer",
    "email": "newcomer@school.example",
    "full_name": "New Comer",
    "password": "a-long-fresh-secret",
    "password_confirm": "a-long-fresh-secret",
}
LONG = "x" * 10_000


def without(data: dict, *names: str) -> dict:
    return {k: v for k, v in data.items() if k not in names}


REGISTRATION = [
    ("nothing at all", {}, 422),
    ("no username", without(GOOD, "username"), 422),
    ("no email", without(GOOD, "email"), 422),
    ("no full name", without(GOOD, "full_name"), 422),
    ("no password", without(GOOD, "password"), 422),
    ("no confirmation", without(GOOD, "password_confirm"), 422),
    ("10,000-character username", GOOD | {"username": LONG}, 422),
    ("10,000-character email", GOOD | {"email": LONG + "@school.example"}, 422),
    ("10,000-character full name", GOOD | {"full_name": LONG}, 422),
    ("10,000-character password", GOOD | {"password": LONG, "password_confirm": LONG}, 422),
    ("10,000-character teacher code", GOOD | {"teacher_code": LONG}, 422),
    ("NUL in username", GOOD | {"username": "new\x00comer"}, 422),
    ("NUL in full name", GOOD | {"full_name": "New\x00Comer"}, 422),
    ("escape in full name", GOOD | {"full_name": "New\x1b[31mComer"}, 422),
    ("zero-width space in full name", GOOD | {"full_name": "New\u200bComer"}, 422),
    ("right-to-left override in full name", GOOD | {"full_name": "New \u202eremoC"}, 422),
    ("isolate in full name", GOOD | {"full_name": "\u2067New Comer\u2069"}, 422),
    (
        "NUL in password",
        GOOD | {"password": "a-long\x00secret!", "password_confirm": "a-long\x00secret!"},
        422,
    ),
    ("username with a space", GOOD | {"username": "new comer"}, 422),
    ("username with accents", GOOD | {"username": "nöwcömer"}, 422),
    ("username too short", GOOD | {"username": "ab"}, 422),
    ("email without a domain", GOOD | {"email": "newcomer@"}, 422),
    ("blank full name", GOOD | {"full_name": "    "}, 422),
    ("passwords differ", GOOD | {"password_confirm": "another-long-secret"}, 422),
    ("password too short", GOOD | {"password": "short", "password_confirm": "short"}, 422),
    ("role admin", GOOD | {"role": "admin"}, 422),
    ("role empty", GOOD | {"role": ""}, 422),
    ("role teacher, no code set", GOOD | {"role": "teacher", "teacher_code": "guess"}, 422),
    ("username taken in other case", GOOD | {"username": "TAKEN"}, 422),
    ("email taken in other case", GOOD | {"email": "Taken@SCHOOL.example"}, 422),
]

LOGIN_OK = {"login": "taken", "password": PASSWORD}
LOGIN = [
    ("nothing at all", {}, 422),
    ("no login", {"password": PASSWORD}, 422),
    ("no password", {"login": "taken"}, 422),
    ("10,000-character login", {"login": LONG, "password": PASSWORD}, 422),
    ("10,000-character password", {"login": "taken", "password": LONG}, 422),
    ("NUL in login", {"login": "tak\x00en", "password": PASSWORD}, 422),
    ("NUL in password", {"login": "taken", "password": PASSWORD + "\x00"}, 422),
    (
        "wrong password, remember not a boolean",
        {"login": "taken", "password": "nope-nope-nope", "remember": "maybe"},
        422,
    ),
    ("two logins at once", {"login": ["nobody", "taken"], "password": PASSWORD}, 422),
]


@pytest.fixture
def existing(make_user):
    return make_user("taken", email="taken@school.example")


@pytest.mark.parametrize(("case", "data", "status"), REGISTRATION, ids=[c[0] for c in REGISTRATION])
def test_bad_registration(client, existing, case, data, status):
    before = user_count()
    response = client.post_form("/auth/register", data)
    assert response.status_code == status
    assert user_count() == before
    assert client.get("/dashboard").status_code == 302


@pytest.mark.parametrize(("case", "data", "status"), LOGIN, ids=[c[0] for c in LOGIN])
def test_bad_login(client, existing, case, data, status):
    response = client.post_form("/auth/login", data)
    assert response.status_code == status
    assert client.get("/dashboard").status_code == 302


@pytest.mark.parametrize("url", ["/auth/register", "/auth/login"])
def test_no_csrf_token_is_400(client, existing, url):
    data = GOOD if url == "/auth/register" else LOGIN_OK
    assert client.post(url, data=data).status_code == 400
    assert client.post(url, data=data | {"csrf_token": "forged"}).status_code == 400
    assert user_count() == 1
    assert client.get("/dashboard").status_code == 302


@pytest.mark.parametrize("url", ["/auth/register", "/auth/login"])
def test_a_json_body_is_refused(client, existing, url):
    response = client.post(
        url,
        data=json.dumps(GOOD | {"csrf_token": client.csrf_token()}),
        content_type="application/json",
    )
    assert response.status_code in (400, 422)
    assert user_count() == 1


def test_undecodable_bytes_are_refused(client, existing):
    token = client.csrf_token()
    fields = "username=%FF%FE&email=a%C0%AF@x.example&full_name=%00&password=x"
    body = f"csrf_token={token}&{fields}".encode()
    response = client.post(
        "/auth/register", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 422
    assert user_count() == 1


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "\t//evil.example",
    ],
)
def test_open_redirect_next_values_go_to_the_dashboard(client, existing, target):
    response = client.post_form("/auth/login", LOGIN_OK, query_string={"next": target})
    assert response.status_code == 303
    assert response.headers["Location"] == "/dashboard"


def test_many_bad_logins_from_one_address_end_in_429_not_500(app, client, existing):
    app.config["LOGIN_ADDRESS_LIMIT"] = "8 per minute"
    statuses = {
        client.post_form("/auth/login", {"login": LONG, "password": "x"}).status_code
        for _ in range(10)
    }
    assert statuses == {422, 429}
