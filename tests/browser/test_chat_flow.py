"""A teacher and a student, each in a browser of their own, chat live: messages appear without a
reload, the student's badge counts the message while they are elsewhere, typing and "seen by"
show."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.blueprints.enrollments.services import enroll
from app.extensions import db
from app.models import ChatRoom
from tests.browser.flows import sign_in

pytestmark = pytest.mark.browser

PASSWORD = "chat-flow-secret"


def live(page) -> None:
    """Wait until the page's socket is open and has told the server what it shows."""
    expect(page.locator("body")).to_have_attribute("data-live", "open")
    page.wait_for_timeout(300)


def test_teacher_and_student_chat_live(page, second_page, visit, make_user, make_course):
    teacher = make_user("ms.rivera", role="teacher", full_name="Ines Rivera", password=PASSWORD)
    course = make_course(teacher, title="Marine Biology")
    enroll(make_user("sam", full_name="Sam Student", password=PASSWORD), course.id)
    room_id = db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course.id))
    student = second_page

    sign_in(page, "ms.rivera", PASSWORD)
    page.get_by_role("link", name="Chat").click()
    page.locator(f"[data-room-id='{room_id}']").get_by_role("link").click()
    expect(page.get_by_role("heading", name="Marine Biology")).to_be_visible()
    page.evaluate("window.notReloaded = true")
    live(page)

    sign_in(student, "sam", PASSWORD)  # the student is on the dashboard
    student.evaluate("window.notReloaded = true")
    live(student)
    expect(student.locator("#notification-count")).to_have_text("0")

    box = page.get_by_label("Write a message")
    box.fill("Welcome aboard! <b>Bring</b> a notebook.")
    box.press("Enter")
    expect(page.locator("[data-message-id]")).to_have_count(1)
    expect(box).to_have_value("")
    # The student is not in the room: the badge counts the message, live.
    expect(student.locator("#notification-count")).to_have_text("1")
    assert student.evaluate("window.notReloaded === true")
    visit(student, "chat-live-badge")

    student.get_by_role("link", name="Chat").click()
    expect(student.locator(f"#room-{room_id}-unread")).to_have_text("1")
    student.locator(f"[data-room-id='{room_id}']").get_by_role("link").click()
    expect(student.locator("#notification-count")).to_have_text("0")
    message = student.locator("[data-message-id]").first
    expect(message).to_contain_text("Welcome aboard! <b>Bring</b> a notebook.")  # as text
    student.evaluate("window.notReloaded = true")
    live(student)

    student.get_by_label("Write a message").press_sequentially("Thank you", delay=20)
    expect(page.locator(f"#room-{room_id}-typing")).to_have_text("Sam Student is typing…")
    student.get_by_role("button", name="Send").click()
    expect(page.locator("[data-message-id]")).to_have_count(2)
    expect(page.locator("[data-message-id]").last).to_contain_text("Sam Student")
    expect(page.locator(f"#room-{room_id}-typing")).to_have_text("")

    page.get_by_label("Write a message").fill("See you on Monday.\nIn the lab.")
    page.get_by_role("button", name="Send").click()
    expect(student.locator("[data-message-id]")).to_have_count(3)
    expect(student.locator("[data-message-id]").last).to_contain_text("In the lab.")
    expect(page.locator(f"#room-{room_id}-seen")).to_have_text("Seen by 1")  # read receipt
    assert page.evaluate("window.notReloaded === true")
    assert student.evaluate("window.notReloaded === true")
    # Both were in the room: nobody was notified of these.
    expect(student.locator("#notification-count")).to_have_text("0")
    expect(page.locator("#notification-count")).to_have_text("0")
    visit(page, "chat-live-teacher")
    visit(student, "chat-live-student")
