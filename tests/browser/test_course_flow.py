"""A teacher creates and publishes a course; a student finds it, enrols through htmx without a
reload, sees it on the dashboard and withdraws."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.flows import sign_in

pytestmark = pytest.mark.browser

PASSWORD = "course-flow-secret"


def test_teacher_publishes_student_enrols_and_withdraws(page, visit, make_user):
    make_user("mrs.bell", role="teacher", full_name="Grace Bell", password=PASSWORD)
    make_user("leo", full_name="Leo Student", password=PASSWORD)

    sign_in(page, "mrs.bell", PASSWORD)
    page.get_by_role("link", name="New course").first.click()
    page.get_by_label("Title").fill("Botany for Beginners")
    page.get_by_label("Description").fill("Seeds, leaves and flowers.\nFieldwork on Fridays.")
    page.get_by_label("Keywords").fill("Plants, biology, outdoors")
    page.get_by_label("Capacity").fill("12")
    page.get_by_label("Published").check()
    visit(page, "course-new-filled")
    page.get_by_role("button", name="Create course").click()
    expect(page.get_by_role("heading", name="Botany for Beginners")).to_be_visible()
    expect(page.locator("[data-seats-left]")).to_have_attribute("data-seats-left", "12")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, "leo", PASSWORD)
    page.get_by_role("link", name="Courses", exact=True).click()
    card = page.locator("[data-course-id]", has_text="Botany for Beginners")
    expect(card).to_contain_text("Grace Bell")
    expect(card).to_contain_text("12 seats left")
    visit(page, "catalogue")
    card.get_by_role("link", name="Botany for Beginners").click()
    expect(page.locator("[data-enrollment]")).to_have_attribute("data-enrollment", "none")

    # Enrol through htmx: the page is not reloaded (a mark left on window survives).
    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Enrol").click()
    expect(page.locator("[data-enrollment]")).to_have_attribute("data-enrollment", "enrolled")
    expect(page.locator("[data-seats-left]")).to_have_attribute("data-seats-left", "11")
    expect(page.locator("#flashes").get_by_role("status")).to_contain_text("You are enrolled")
    expect(page.get_by_role("heading", name="Enrolment")).to_be_focused()
    assert page.evaluate("window.notReloaded === true")
    visit(page, "course-enrolled")

    page.get_by_role("link", name="Dashboard").click()
    expect(page.locator("#enrolled")).to_contain_text("Botany for Beginners")
    visit(page, "dashboard-enrolled")

    page.locator("#enrolled").get_by_role("link", name="Botany for Beginners").click()
    # The course page itself, loaded, before the mark: not the dashboard still leaving.
    expect(page.locator("[data-enrollment]")).to_have_attribute("data-enrollment", "enrolled")
    page.evaluate("window.notReloaded = true")
    page.get_by_role("button", name="Withdraw").click()
    expect(page.locator("[data-enrollment]")).to_have_attribute("data-enrollment", "none")
    expect(page.locator("[data-seats-left]")).to_have_attribute("data-seats-left", "12")
    assert page.evaluate("window.notReloaded === true")
    page.goto("/dashboard")
    expect(page.locator("#enrolled")).not_to_contain_text("Botany for Beginners")


def test_enrolment_works_without_javascript(browser, live_server, make_user, make_course):
    teacher = make_user("t", role="teacher")
    course = make_course(teacher, title="Plain Forms", capacity=3)
    make_user("nojs", password=PASSWORD)
    context = browser.new_context(base_url=live_server, java_script_enabled=False)
    page = context.new_page()
    sign_in(page, "nojs", PASSWORD)
    page.goto(f"/courses/{course.id}")
    page.get_by_role("button", name="Enrol").click()
    expect(page).to_have_url(re.compile(rf"/courses/{course.id}$"))
    expect(page.locator("[data-enrollment]")).to_have_attribute("data-enrollment", "enrolled")
    expect(page.get_by_role("status")).to_contain_text("You are enrolled")
    context.close()
