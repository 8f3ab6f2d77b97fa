"""Signed-out pages come from a per-process cache, each with the visitor's own CSRF token."""

from __future__ import annotations

import re

from tests.conftest import PASSWORD, CampusClient

TOKEN = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf-token" content="([^"]+)"'
)


def tokens(html: str) -> set[str]:
    return {a or b for a, b in TOKEN.findall(html)}


def test_each_visitor_gets_a_token_that_works_for_them_only(app, make_user):
    make_user("grace")
    first, second = app.test_client(), app.test_client()
    first_tokens = tokens(first.get("/auth/login").get_data(as_text=True))
    second_tokens = tokens(second.get("/auth/login").get_data(as_text=True))
    assert len(first_tokens) == len(second_tokens) == 1
    assert first_tokens != second_tokens
    assert "csrf-placeholder" not in "".join(first_tokens | second_tokens)
    assert len(app.extensions["campus.visitor_pages"]) == 1  # rendered once, sent twice

    # Each page's token posts for its own visitor, not for the other one.
    data = {"login": "grace", "password": PASSWORD}
    assert (
        second.post("/auth/login", data=data | {"csrf_token": first_tokens.pop()}).status_code
        == 400
    )
    assert (
        second.post("/auth/login", data=data | {"csrf_token": second_tokens.pop()}).status_code
        == 303
    )


def test_next_is_kept_per_address(client):
    assert 'action="/auth/login?next=/profile"' in client.get("/auth/login?next=/profile").get_data(
        as_text=True
    )
    assert 'action="/auth/login"' in client.get("/auth/login").get_data(as_text=True)


def test_flash_messages_are_never_cached_away(client: CampusClient):
    client.get("/auth/login")  # cached without a message
    client.get("/profile")  # redirects to sign in with "Please sign in"
    assert "Please sign in" in client.get("/auth/login?next=/profile").get_data(as_text=True)
    assert "Please sign in" not in client.get("/auth/login?next=/profile").get_data(as_text=True)


def test_signed_in_people_never_get_a_cached_page(client, make_user, login_as):
    client.get("/")
    login_as(make_user("grace"))
    response = client.get("/", follow_redirects=True)
    assert "@grace" in response.get_data(as_text=True)
