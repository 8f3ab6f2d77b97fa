"""Session cookies and CSRF tokens are signed the quicker way (app/signing.py) and still read
as Flask and Flask-WTF wrote them: nobody is signed out, and no open tab's form is refused,
when the server is upgraded."""

from __future__ import annotations

from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf, validate_csrf

from tests.conftest import PASSWORD


def session_of(app, client) -> dict:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    return app.session_interface.get_signing_serializer(app).loads(cookie.value)


def test_a_session_written_by_flask_itself_still_signs_the_person_in(app, client, make_user):
    make_user("grace", full_name="Grace Hopper")
    assert client.post_form("/auth/login", {"login": "grace", "password": PASSWORD}).status_code
    data = session_of(app, client)
    assert "_user_id" in data
    stock = SecureCookieSessionInterface().get_signing_serializer(app).dumps(data)
    assert stock.startswith("."), "Flask compresses a session this size; the test needs that"
    upgraded = app.test_client()
    upgraded.set_cookie(app.config["SESSION_COOKIE_NAME"], stock)
    page = upgraded.get("/dashboard")
    assert page.status_code == 200 and "Grace Hopper" in page.get_data(as_text=True)


def test_our_cookie_is_not_compressed_and_a_forged_one_is_refused(app, client, make_user):
    make_user("grace")
    client.post_form("/auth/login", {"login": "grace", "password": PASSWORD})
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    assert not cookie.startswith(".")
    forged = app.test_client()
    forged.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie[:-2] + "xx")
    assert forged.get("/dashboard").status_code in (302, 303)  # to the sign-in page


def test_tokens_from_either_side_are_accepted_by_the_other(app, client, make_user):
    make_user("grace")
    page_token = client.csrf_token()  # made by app/signing.py, in the sign-in page
    raw = session_of(app, client)["csrf_token"]
    with app.test_request_context():
        from flask import session

        session["csrf_token"] = raw
        validate_csrf(page_token)  # Flask-WTF's own check: raises if refused
        flask_wtf_token = generate_csrf()
    data = {"login": "grace", "password": PASSWORD, "csrf_token": flask_wtf_token}
    assert client.post("/auth/login", data=data).status_code == 303
