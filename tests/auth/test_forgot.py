"""A forgotten password: the same answer whatever was typed, in the same time; a reset link
by mail that works once, for 30 minutes; throttled per address and per account."""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import mail
from app.blueprints.admin import services as admin
from app.blueprints.auth import links
from app.extensions import db
from app.models import OutboxMessage
from tests.conftest import PASSWORD
from tests.smtp_server import html_part, text_part

LINK = re.compile(r"https://campus\.school\.example(/auth/reset/[A-Za-z0-9._-]+)")
NEW_PASSWORD = "Brand-New-Secret-77"


@pytest.fixture
def quick(app):
    app.config["FORGOT_MIN_SECONDS"] = 0.05


def ask(client, login: str):
    return client.post_form("/auth/forgot", {"login": login})


def status_message(client) -> str:
    page = client.get("/auth/login").get_data(as_text=True)
    return " ".join(re.findall(r'role="status"[^>]*>(.*?)<', page, re.S)).strip()


def reset_path(message) -> str:
    match = LINK.search(text_part(message))
    assert match, text_part(message)
    return match.group(1)


def outbox_rows() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage)))


def test_the_whole_flow_by_mail(client, make_user, mail_to, quick):
    make_user("grace", email="grace@school.example", full_name="Grace Hopper")
    response = ask(client, "Grace@School.example")
    assert response.status_code == 303 and response.headers["Location"] == "/auth/login"
    assert "a link to set a new password is on its way" in status_message(client)
    [message] = mail_to.wait_for(1)
    assert message["To"] == "grace@school.example"
    assert "Grace Hopper" in text_part(message) and "30 minutes" in text_part(message)
    path = reset_path(message)
    assert f'href="https://campus.school.example{path}"' in html_part(message)
    assert client.get(path).status_code == 200
    response = client.post_form(
        path, {"new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD}
    )
    assert response.status_code == 303 and response.headers["Location"] == "/auth/login"
    signed_in = client.post_form("/auth/login", {"login": "grace", "password": NEW_PASSWORD})
    assert signed_in.status_code == 303
    client.post_form("/auth/logout")
    gone = client.get(path)
    assert gone.status_code == 410
    assert 'href="/auth/forgot"' in gone.get_data(as_text=True)  # a way to ask again


def test_an_unknown_login_gets_the_same_answer_and_no_mail(client, make_user, mail_to, quick):
    make_user("grace")
    known = ask(client, "grace")
    known_message = status_message(client)
    unknown = ask(client, "nobody@school.example")
    assert (unknown.status_code, unknown.headers["Location"]) == (
        known.status_code,
        known.headers["Location"],
    )
    assert status_message(client) == known_message
    mail_to.wait_for(1)
    time.sleep(0.5)
    assert mail.send_due() == 0
    assert [m["To"] for m in mail_to.messages] == ["grace@school.example"]
    assert len(outbox_rows()) == 1


def test_a_deactivated_account_gets_nothing(client, make_user, mail_to, quick):
    admin_user = make_user("head", role="admin")
    make_user("grace")
    admin.deactivate(admin_user, "grace")
    response = ask(client, "grace")
    assert response.status_code == 303
    assert outbox_rows() == []


def test_the_sixth_ask_in_15_minutes_sends_nothing_more(client, make_user, mail_to, quick):
    make_user("grace")
    answers = [ask(client, "grace" if n % 2 else "grace@school.example") for n in range(6)]
    assert {(a.status_code, a.headers["Location"]) for a in answers} == {(303, "/auth/login")}
    assert len(outbox_rows()) == 5
    assert len(mail_to.wait_for(5)) == 5


def test_one_address_asking_too_often_is_429(client, app, quick):
    app.config["FORGOT_ADDRESS_LIMIT"] = "3 per minute"
    assert [ask(client, f"nobody{n}").status_code for n in range(3)] == [303] * 3
    refused = ask(client, "nobody4")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("login", ["", " ", "a\x00b", "x" * 255])
def test_bad_input_is_422_and_sends_nothing(client, make_user, login, quick):
    make_user("grace")
    assert ask(client, login).status_code == 422
    assert outbox_rows() == []


def test_the_forgot_page_and_the_login_page_link(client):
    assert 'href="/auth/forgot"' in client.get("/auth/login").get_data(as_text=True)
    page = client.get("/auth/forgot")
    assert page.status_code == 200 and 'name="login"' in page.get_data(as_text=True)


def reset_with(client, path: str):
    return client.post_form(
        path, {"new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD}
    )


def test_a_used_link_is_410(client, make_user, mail_to, quick):
    make_user("grace")
    ask(client, "grace")
    path = reset_path(mail_to.wait_for(1)[0])
    assert reset_with(client, path).status_code == 303
    assert client.get(path).status_code == 410
    assert reset_with(client, path).status_code == 410


def test_an_expired_link_is_410(client, make_user, app, monkeypatch):
    user = make_user("grace")
    with app.test_request_context():
        token = links.make_token(user, "reset")
    later = time.time() + timedelta(minutes=30, seconds=5).total_seconds()
    monkeypatch.setattr(links.time, "time", lambda: later)
    assert client.get(f"/auth/reset/{token}").status_code == 410


def test_a_forged_link_is_410(client, make_user, app):
    user = make_user("grace")
    token = links.make_token(user, "reset")
    payload, _, signature = token.rpartition(".")
    forged = f"{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    assert client.get(f"/auth/reset/{forged}").status_code == 410
    assert client.get("/auth/reset/not-a-link").status_code == 410


def test_an_older_link_dies_once_a_newer_one_was_used(client, make_user, mail_to, quick):
    make_user("grace")
    ask(client, "grace")
    time.sleep(1.1)  # links made in the same second are the same link
    ask(client, "grace")
    first, second = (reset_path(m) for m in mail_to.wait_for(2))
    assert first != second
    assert reset_with(client, second).status_code == 303
    assert client.get(first).status_code == 410


def test_a_refused_password_keeps_the_link(client, make_user, mail_to, quick):
    make_user("grace")
    ask(client, "grace")
    path = reset_path(mail_to.wait_for(1)[0])
    refused = client.post_form(path, {"new_password": "grace", "new_password_confirm": "grace"})
    assert refused.status_code == 422
    assert reset_with(client, path).status_code == 303


def test_known_and_unknown_take_the_same_time(client, make_user, app, mail_to):
    """Median of 50 asks for an account that gets mail, and 50 for one that does not,
    interleaved: within 5 ms of each other."""
    app.config.update(
        FORGOT_ACCOUNT_LIMIT="1000 per minute",
        FORGOT_ADDRESS_LIMIT="1000 per minute",
        FORGOT_MIN_SECONDS=0.1,  # the default is 0.25; the sending path takes a few ms
    )
    make_user("grace")
    token = client.csrf_token()
    times: dict[str, list[float]] = {"grace": [], "nobody": []}
    for _ in range(50):
        for login in times:
            started = time.perf_counter()
            response = client.post("/auth/forgot", data={"login": login, "csrf_token": token})
            times[login].append(time.perf_counter() - started)
            assert response.status_code == 303
    known, unknown = (statistics.median(t) * 1000 for t in times.values())
    print(f"forgot: median known {known:.1f} ms, unknown {unknown:.1f} ms")
    assert abs(known - unknown) < 5
    assert len(outbox_rows()) == 50


def test_sign_in_still_works_with_the_old_password_until_the_link_is_used(
    client, make_user, mail_to, quick
):
    make_user("grace")
    ask(client, "grace")
    mail_to.wait_for(1)
    response = client.post_form("/auth/login", {"login": "grace", "password": PASSWORD})
    assert response.status_code == 303
