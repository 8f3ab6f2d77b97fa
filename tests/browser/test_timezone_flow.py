"""Times in the viewer's zone in a real browser: registration presets the zone from the browser
(no inline script: static/js/times.js), and a chat message that arrives live is written in the
zone of the viewer's profile, like the messages the server rendered."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.blueprints.enrollments.services import enroll
from app.extensions import db
from app.models import ChatRoom, User
from tests.browser.conftest import watched_page
from tests.browser.flows import sign_in
from tests.live_client import LiveClient

pytestmark = pytest.mark.browser

PASSWORD = "time-zone-flow-pass"


def test_registration_presets_the_browsers_zone(app, browser, live_server, visit):
    with watched_page(browser, live_server, timezone_id="Asia/Tokyo") as page:
        page.goto("/auth/register")
        zone = page.get_by_label("Time zone")
        expect(zone).to_have_value("Asia/Tokyo")
        visit(page, "register-timezone")

        page.get_by_label("Username").fill("kenji")
        page.get_by_label("Email").fill("kenji@school.example")
        page.get_by_label("Full name").fill("Kenji Sato")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Confirm password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page).to_have_url(re.compile(r"/dashboard$"))
        db.session.expire_all()
        assert db.session.scalar(select(User.timezone).where(User.username == "kenji")) == (
            "Asia/Tokyo"
        )
        page.goto("/profile/edit")
        expect(page.get_by_label("Time zone")).to_have_value("Asia/Tokyo")


def test_a_registration_form_sent_back_keeps_the_zone_chosen(app, browser, live_server):
    """After a refused registration the form shows the zone that was sent, not the browser's."""
    with watched_page(browser, live_server, timezone_id="Asia/Tokyo") as page:
        page.goto("/auth/register")
        page.get_by_label("Time zone").select_option("Europe/Lisbon")
        page.get_by_label("Username").fill("x")
        page.get_by_role("button", name="Create account").click()
        expect(page.locator("#username-error")).to_be_visible()
        expect(page.get_by_label("Time zone")).to_have_value("Europe/Lisbon")


def test_a_live_message_shows_in_the_viewers_profile_zone(
    app, browser, live_server, visit, make_user, make_course
):
    teacher = make_user("tariq", role="teacher", full_name="Tariq Teacher", password=PASSWORD)
    teacher.timezone = "America/New_York"
    db.session.commit()
    course = make_course(teacher, title="Tides")
    enroll(make_user("lena", full_name="Lena Student", password=PASSWORD), course.id)
    room_id = db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course.id))
    new_york = ZoneInfo("America/New_York")

    # The browser runs in Tokyo: the page follows the profile's zone, not the browser's.
    with watched_page(browser, live_server, timezone_id="Asia/Tokyo") as page:
        sign_in(page, "tariq", PASSWORD)
        student = LiveClient(live_server)
        student.sign_in("lena", PASSWORD)
        assert student.post(f"/chat/{room_id}/messages", {"body": "Before you came."}) == 303

        page.goto(f"/chat/{room_id}")
        expect(page.locator("body")).to_have_attribute("data-live", "open")
        page.wait_for_timeout(300)
        assert student.post(f"/chat/{room_id}/messages", {"body": "High tide at six."}) == 303
        expect(page.locator("[data-message-id]")).to_have_count(2)

        for message in page.locator("[data-message-id]").all():
            time = message.locator("time")
            expect(time).not_to_have_attribute("data-localize", re.compile(".*"))
            moment = datetime.fromisoformat(time.get_attribute("datetime"))
            assert moment.utcoffset().total_seconds() == 0  # the attribute carries UTC
            expect(time).to_have_text(moment.astimezone(new_york).strftime("%-d %b, %H:%M"))
        visit(page, "chat-times-new-york")
