"""The security baseline: CSRF everywhere, headers and CSP, cookies, error pages, start-up."""

from __future__ import annotations

import pytest
from flask import abort

from app import create_app
from config import ProductionConfig
from tests.conftest import PASSWORD


def test_csrf_is_checked_on_htmx_requests_too(client, make_user, login_as):
    login_as(make_user("grace"))
    headers = {"HX-Request": "true"}
    assert client.post("/auth/logout", headers=headers).status_code == 400
    bad = client.post("/auth/logout", headers=headers | {"X-CSRFToken": "forged"})
    assert bad.status_code == 400
    assert client.get("/dashboard").status_code == 200
    good = client.post("/auth/logout", headers=headers | {"X-CSRFToken": client.csrf_token()})
    assert good.status_code == 303
    assert client.get("/dashboard").status_code == 302


def test_every_state_changing_route_refuses_a_missing_token(app, client, make_user, login_as):
    login_as(make_user("grace"))
    posts = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and not rule.arguments
    ]
    # A route that reads a large body first refuses whoever may not send one there (403,
    # before reading it); for those who may, a missing token is 400 (tests/admin).
    large = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if getattr(app.view_functions[rule.endpoint], "large_body", None)
    }
    for url in sorted(large & set(posts)):
        assert client.post(url, data={}).status_code == 403, url
    posts = [url for url in posts if url not in large]
    assert {
        "/auth/login",
        "/auth/register",
        "/auth/logout",
        "/profile/edit",
        "/profile/password",
    } <= set(posts)
    for url in posts:
        assert client.post(url, data={}).status_code == 400, url


def test_security_headers_and_csp(client):
    response = client.get("/auth/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-eval" not in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_scripts_or_hx_on(client, make_user, login_as):
    pages = ["/", "/auth/login", "/auth/register"]
    for url in pages:
        html = client.get(url).get_data(as_text=True)
        assert "<script>" not in html and "hx-on" not in html and " onclick=" not in html, url
        assert '"allowEval": false' in html
    login_as(make_user("grace"))
    for url in ["/dashboard", "/profile", "/profile/edit", "/users/grace"]:
        html = client.get(url).get_data(as_text=True)
        assert "<script>" not in html and "hx-on" not in html, url


def test_session_cookie_is_http_only_and_lax(client, make_user):
    make_user("grace")
    response = client.post_form("/auth/login", {"login": "grace", "password": PASSWORD})
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_production_cookies_are_secure(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "a-real-secret-for-this-test")
    app = create_app(ProductionConfig, SQLALCHEMY_DATABASE_URI="sqlite://")
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["REMEMBER_COOKIE_SECURE"]
    response = app.test_client().get("/auth/login")
    assert "Secure" in response.headers["Set-Cookie"]
    assert "max-age" in response.headers["Strict-Transport-Security"]


def test_production_refuses_to_start_without_a_secret_key(monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app("production")


@pytest.mark.parametrize("status", [400, 403, 404, 405, 413, 415, 422, 429, 500])
def test_error_pages_are_generic(app, client, status):
    @app.get(f"/boom/{status}")
    def boom():
        if status == 500:
            raise RuntimeError("secret internals: db password is hunter2")
        abort(status)

    response = client.get(f"/boom/{status}")
    html = response.get_data(as_text=True)
    assert response.status_code == status
    assert "Traceback" not in html and "hunter2" not in html and "RuntimeError" not in html
    assert "<h1>" in html and 'rel="stylesheet"' in html

    fragment = client.get(f"/boom/{status}", headers={"HX-Request": "true"})
    assert fragment.status_code == status
    assert fragment.get_data(as_text=True).startswith('<div class="error-message" role="alert"')


def test_too_large_body_is_413(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/auth/login", data={"login": "x" * 5000, "password": "y"})
    assert response.status_code == 413


def test_method_not_allowed_keeps_allow_header(client):
    response = client.get("/auth/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_htmx_request_when_signed_out_gets_401_with_redirect(client):
    response = client.get("/profile", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/auth/login?next=")


def test_signed_out_page_request_redirects_to_login_with_next(client):
    response = client.get("/profile/edit")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?next=/profile/edit"
