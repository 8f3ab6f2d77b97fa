"""A teacher looks after the class chat while a student watches, each in a browser of their own:
the student's message disappears from the student's screen without a reload when the teacher
removes it, the teacher mutes the student, who is told until when and cannot post, and the
report made about the message still shows its text on the reports page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app.blueprints.chat import safety
from app.blueprints.enrollments.services import enroll
from app.extensions import db
from app.models import ChatRoom
from tests.browser.flows import sign_in

pytestmark = pytest.mark.browser

PASSWORD = "chat-safety-secret"


def live(page) -> None:
    """Wait until the page's socket is open and has told the server what it shows."""
    expect(page.locator("body")).to_have_attribute("data-live", "open")
    page.wait_for_timeout(300)


def test_teacher_removes_a_message_and_mutes_a_student(
    app, page, second_page, visit, make_user, make_course
):
    teacher = make_user("ms.rivera", role="teacher", full_name="Ines Rivera", password=PASSWORD)
    course = make_course(teacher, title="Marine Biology")
    sam = make_user("sam", full_name="Sam Student", password=PASSWORD)
    lee = make_user("lee", full_name="Lee Student", password=PASSWORD)
    for student in (sam, lee):
        enroll(student, course.id)
    room_id = db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course.id))
    student = second_page

    sign_in(page, "ms.rivera", PASSWORD)
    page.goto(f"/chat/{room_id}")
    live(page)
    page.evaluate("window.notReloaded = true")

    sign_in(student, "sam", PASSWORD)
    student.goto(f"/chat/{room_id}")
    live(student)
    box = student.get_by_label("Write a message")
    box.fill("Copy my homework answers: 42, 17, 9")
    box.press("Enter")
    message = student.locator("[data-message-id]")
    expect(message).to_have_count(1)
    message_id = int(message.get_attribute("data-message-id"))
    with app.test_request_context():
        safety.report(lee, message_id, "Answers to the homework")
    # The author's own live message offers edit and remove, not report.
    expect(message.locator("[data-edit-form]")).to_have_count(1)
    expect(message.locator("[data-report-form]")).to_have_count(0)

    # The teacher's tab got the message live, with the teacher's actions.
    arrived = page.locator(f"#message-{message_id}")
    expect(arrived).to_contain_text("Copy my homework answers")
    expect(arrived.locator("[data-edit-form]")).to_have_count(0)
    expect(arrived.locator("[data-report-form]")).to_have_count(1)
    assert page.evaluate("window.notReloaded === true")
    visit(page, "chat-moderation-teacher")
    student.evaluate("window.notReloaded = true")

    page.locator(f"#message-{message_id} [data-remove-form] button").click()
    expect(page.get_by_role("status").first).to_contain_text("The message was removed")
    stub = student.locator(f"[data-message-id='{message_id}']")
    expect(stub).to_have_attribute("data-removed", "")
    expect(stub).to_contain_text("This message was removed.")
    expect(student.locator(f"#room-{room_id}-messages")).not_to_contain_text("homework answers")
    assert student.evaluate("window.notReloaded === true")  # no reload: it came live

    page.get_by_label("Student", exact=True).select_option("sam")
    page.get_by_label("Minutes").fill("30")
    page.get_by_role("button", name="Mute", exact=True).click()
    expect(page.locator(f"#room-{room_id}-muted [data-username='sam']")).to_be_visible()
    notice = student.locator(f"#room-{room_id}-mute")
    expect(notice).to_contain_text("You are muted in this room")
    assert notice.get_attribute("data-muted-until")
    assert student.evaluate("window.notReloaded === true")
    student.get_by_label("Write a message").fill("Why was that removed?")
    student.get_by_label("Write a message").press("Enter")
    expect(student.locator("#live-error")).to_contain_text("muted in this room until")
    expect(student.get_by_label("Write a message")).to_have_value("Why was that removed?")
    visit(student, "chat-muted-student")

    page.goto("/admin/reports")
    report = page.locator(f"[data-message-id='{message_id}']")
    expect(report).to_have_attribute("data-removed", "")
    expect(report.locator("[data-reported-text]")).to_have_text(
        "Copy my homework answers: 42, 17, 9"
    )
    expect(report).to_contain_text("Answers to the homework")
    visit(page, "admin-reports-teacher")
    report.get_by_role("button", name="Resolve").click()
    expect(page.locator("#reports-empty")).to_be_visible()
