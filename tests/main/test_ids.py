"""Ids beyond what the database holds are 404, never 500, on every route that takes one."""

from __future__ import annotations

import re

import pytest

from app import create_app


def id_routes() -> list[tuple[str, str]]:
    """(method, rule) for every GET and POST route with an `<int:...>` part."""
    app = create_app("testing", SEARCH_CHECK_ON_START=False)
    return sorted(
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if "<int:" in rule.rule
        for method in ("GET", "POST")
        if method in rule.methods
    )


ID_ROUTES = id_routes()
TOO_BIG = [2**63, 10**20 - 1]  # one past a signed 64-bit integer; twenty digits


def test_the_routes_with_ids_are_found():
    assert {
        ("GET", "/courses/<int:course_id>"),
        ("POST", "/courses/<int:course_id>/enroll"),
        ("GET", "/chat/<int:room_id>"),
        ("GET", "/materials/<int:material_id>/download"),
        ("POST", "/notifications/<int:notification_id>/read"),
    } <= set(ID_ROUTES)


@pytest.mark.parametrize("number", TOO_BIG)
@pytest.mark.parametrize(("method", "rule"), ID_ROUTES, ids=[f"{m} {r}" for m, r in ID_ROUTES])
def test_an_id_too_big_for_the_database_is_404(client, make_user, login_as, method, rule, number):
    login_as(make_user("boss", role="admin"))
    url = re.sub(r"<int:\w+>", str(number), rule)
    response = client.get(url) if method == "GET" else client.post_form(url)
    assert response.status_code == 404
