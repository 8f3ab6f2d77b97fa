"""Notification choices by mail (/profile/notifications), one-click unsubscribe (RFC 8058)
and daily digests (`flask notifications send-digests`), per DESIGN.md "E-mail"."""

from __future__ import annotations

import re
import time

import pytest
from sqlalchemy import select

from app import mail
from app.blueprints.notifications import services
from app.blueprints.notifications.services import notify
from app.extensions import db
from app.models import Notification, NotificationChoice, OutboxMessage
from tests.smtp_server import html_part, text_part

ALL_OFF = {"enrolment": "off", "materials": "off", "feedback": "off", "chat": "off"}


@pytest.fixture
def grace(make_user, login_as):
    user = make_user("grace", email="grace@school.example", full_name="Grace Hopper")
    login_as(user)
    return user


def outbox() -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_the_page_shows_the_defaults_until_chosen_and_saves(client, grace):
    # A seat that opened and a reply to one's feedback at once; the rest in the daily digest.
    defaults = {"enrolment": "immediately", "feedback": "immediately", "materials": "daily",
                "chat": "daily"}  # fmt: skip
    assert services.choices_for(grace) == defaults
    page = client.get("/profile/notifications").get_data(as_text=True)
    for kind, choice in defaults.items():
        number = ("immediately", "daily", "off").index(choice)
        tag = re.search(rf'<input[^>]*id="{kind}-{number}"[^>]*>', page).group(0)
        assert "checked" in tag and f'value="{choice}"' in tag, kind
    chosen = ALL_OFF | {"materials": "immediately", "chat": "daily"}
    response = client.post_form("/profile/notifications", chosen)
    assert response.status_code == 303
    assert services.choices_for(grace) == chosen
    page = client.get("/profile/notifications").get_data(as_text=True)
    assert "checked" in re.search(r'<input[^>]*id="chat-1"[^>]*>', page).group(0)


@pytest.mark.parametrize("bad", [{"chat": "hourly"}, {"chat": ""}])
def test_a_choice_outside_the_three_is_422_and_stores_nothing(client, grace, bad):
    response = client.post_form("/profile/notifications", ALL_OFF | bad)
    assert response.status_code == 422
    assert db.session.scalars(select(NotificationChoice)).all() == []


def test_the_page_needs_a_session(client):
    assert client.get("/profile/notifications").status_code == 302


def test_immediately_mails_with_one_click_unsubscribe(app, client, grace, mail_to):
    services.set_choices(grace, ALL_OFF | {"materials": "immediately"})
    with app.test_request_context():
        notify([grace.id], "material_added", "“Map.pdf” added to “Geography”.", "/courses/7")
        notify([grace.id], "feedback_new", "New feedback on “Geography”.", "/courses/7")
        db.session.commit()
    [message] = mail_to.wait_for(1)
    assert message["To"] == "grace@school.example"
    assert "Map.pdf" in message["Subject"]
    assert "https://campus.school.example/courses/7" in text_part(message)
    assert "https://campus.school.example/courses/7" in html_part(message)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.fullmatch(r"<(https://campus\.school\.example/\S+)>", message["List-Unsubscribe"])[1]
    path = url.removeprefix("https://campus.school.example")
    # A mail client's one-click POST: no session, no CSRF token.
    visitor = app.test_client()
    assert visitor.get(path).status_code == 200
    assert visitor.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert services.choices_for(grace)["materials"] == "off"
    with app.test_request_context():
        notify([grace.id], "material_added", "“More.pdf” added.", "/courses/7")
        db.session.commit()
    time.sleep(0.5)
    assert len(mail_to.messages) == 1
    kept = select(Notification.id).where(Notification.text == "“More.pdf” added.")
    assert db.session.scalar(kept)  # in the app, still


def test_a_forged_unsubscribe_link_is_404(client):
    assert client.get("/notifications/unsubscribe/forged").status_code == 404
    assert client.post("/notifications/unsubscribe/forged").status_code == 404


def test_daily_sends_one_digest_of_what_is_unread_and_twice_sends_nothing_new(
    app, grace, make_user, mail_to
):
    other = make_user("ada")
    services.set_choices(grace, ALL_OFF | {"chat": "daily", "feedback": "daily"})
    services.set_choices(other, ALL_OFF | {"chat": "daily"})  # nothing unread: no mail
    with app.test_request_context():
        notify([grace.id], "chat", "Ada wrote in Geography.", "/chat/3")
        notify([grace.id], "feedback_reply", "Tina replied to your feedback.", "/courses/7")
        notify([grace.id], "material_added", "Not chosen daily.", "/courses/7")
        notify([grace.id], "chat", "Already read.", "/chat/4")
        db.session.commit()
    read = db.session.scalar(select(Notification).where(Notification.text == "Already read."))
    read.read_at = read.created_at
    db.session.commit()
    runner = app.test_cli_runner()
    first = runner.invoke(args=["notifications", "send-digests"])
    assert first.exit_code == 0, first.output
    assert "1 digests written" in first.output
    [message] = mail_to.wait_for(1)
    assert message["To"] == "grace@school.example"
    body = text_part(message)
    assert "Ada wrote in Geography." in body and "Tina replied" in body
    assert "Not chosen daily." not in body and "Already read." not in body
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    again = runner.invoke(args=["notifications", "send-digests"])
    assert "0 digests written" in again.output
    time.sleep(0.3)
    assert len(mail_to.messages) == 1
    # The digest's unsubscribe link turns every daily kind off.
    url = message["List-Unsubscribe"].strip("<>").removeprefix("https://campus.school.example")
    assert app.test_client().post(url).status_code == 200
    assert services.choices_for(grace) == ALL_OFF


def test_digests_need_public_url(app):
    result = app.test_cli_runner().invoke(args=["notifications", "send-digests"])
    assert result.exit_code != 0 and "PUBLIC_URL" in result.output


def test_off_and_unchosen_kinds_send_no_mail(app, grace, mail_to):
    with app.test_request_context():
        notify([grace.id], "chat", "Ada wrote.", "/chat/3")
        notify([grace.id], "account_locked", "Locked.", "/profile/edit")
        db.session.commit()
    assert outbox() == []
    assert mail.send_due() == 0


def test_without_choosing_a_seat_that_opens_is_mailed_at_once_and_materials_wait(
    app, grace, mail_to
):
    with app.test_request_context():
        notify([grace.id], "waitlist_promoted", "A seat opened in “Geography”.", "/courses/7")
        notify([grace.id], "material_added", "“Map.pdf” added to “Geography”.", "/courses/7")
        db.session.commit()
    [message] = mail_to.wait_for(1)
    assert "A seat opened" in message["Subject"]
    time.sleep(0.5)
    assert len(mail_to.messages) == 1  # the material waits for the daily digest
    with app.test_request_context(base_url="https://campus.school.example"):
        app.config["PUBLIC_URL"] = "https://campus.school.example"
        assert services.send_digests() == 1
        db.session.commit()
    digest = mail_to.wait_for(2)[-1]
    assert "Map.pdf" in text_part(digest) and "A seat opened" not in text_part(digest)
