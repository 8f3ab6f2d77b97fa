"""A teacher runs a course's roster in a real browser: adds three students by typing their
usernames, one taken from the suggestions (the third waits, the course being full), removes
one after confirming (the waiting student is promoted), and archives the course. Every step
checked with axe-core at both widths."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.flows import sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_a_teacher_adds_removes_and_archives(page, visit, make_user, make_course):
    teacher = make_user("tina", role="teacher", full_name="Tina Teacher")
    for name in ("ana", "bo", "cy"):
        make_user(name, full_name=f"{name.title()} Student")
    course = make_course(teacher, title="Geography", capacity=2)

    sign_in(page, "tina", PASSWORD)
    page.goto(f"/courses/{course.id}")
    page.get_by_role("link", name="Students").click()
    expect(page.get_by_role("heading", name="Add students")).to_be_visible()
    visit(page, "roster-empty")

    page.get_by_label("Usernames").fill("ana, ghost")
    page.get_by_role("button", name="Add students").click()
    expect(page.locator("#usernames-error")).to_contain_text("No student is called ghost.")
    expect(page.locator("#roster tbody tr[data-username]")).to_have_count(0)
    visit(page, "roster-add-422")

    # As the teacher types, the people search suggests students; a click takes the username.
    page.get_by_label("Usernames").fill("an")
    page.get_by_role("button", name="Ana Student @ana").click()
    expect(page.get_by_label("Usernames")).to_have_value("ana, ")
    visit(page, "roster-suggestions-used")
    page.get_by_label("Usernames").press_sequentially("bo\ncy")
    page.get_by_role("button", name="Add students").click()
    expect(page.locator("#flashes")).to_contain_text("Enrolled: ana, bo.")
    expect(page.locator("#roster tbody tr[data-username]")).to_have_count(2)
    expect(page.locator('#waitlist tr[data-username="cy"]')).to_be_visible()
    visit(page, "roster-added")

    dialogs: list[str] = []

    def confirm(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", confirm)
    page.get_by_role("button", name="Remove Ana Student").click()
    expect(page.locator("#flashes")).to_contain_text("cy had the first place on the waitlist")
    assert dialogs == ["Remove Ana Student (ana) from Geography?"]
    expect(page.locator('#roster tr[data-username="ana"]')).to_have_count(0)
    expect(page.locator('#roster tr[data-username="cy"]')).to_be_visible()
    expect(page.locator("#waitlist tr[data-username]")).to_have_count(0)
    visit(page, "roster-removed")

    page.get_by_role("link", name="Geography").click()
    page.get_by_role("button", name="Archive").click()
    expect(page.locator(f'[data-course-id="{course.id}"][data-archived]')).to_be_visible()
    expect(page.locator("[data-archived-notice]")).to_contain_text("Archived")
    visit(page, "course-archived")

    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator(f'#past-courses [data-course-id="{course.id}"]')).to_be_visible()
    visit(page, "dashboard-past-courses")
