"""A student rates a course through htmx (the chart and average change without a reload) and
the teacher replies."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from app.blueprints.enrollments.services import enroll
from app.blueprints.feedback.services import save
from tests.browser.flows import sign_in

pytestmark = pytest.mark.browser

PASSWORD = "feedback-flow-secret"


def test_student_rates_through_htmx_and_teacher_replies(page, visit, make_user, make_course):
    teacher = make_user("mr.oak", role="teacher", full_name="Mr Oak", password=PASSWORD)
    course = make_course(teacher, title="Woodwork", capacity=20)
    for n, stars in enumerate((5, 3)):
        classmate = make_user(f"classmate{n}", full_name=f"Classmate {n}")
        enroll(classmate, course.id)
        save(classmate, course.id, stars, f"Classmate {n} thinks it is worth {stars}.")
    enroll(make_user("rita", full_name="Rita Rater", password=PASSWORD), course.id)

    sign_in(page, "rita", PASSWORD)
    page.goto(f"/courses/{course.id}")
    page.get_by_role("link", name="Read the feedback").click()
    summary = page.locator("#feedback-summary")
    expect(summary).to_have_attribute("data-average-rating", "4.0")
    expect(summary).to_have_attribute("data-rating-count", "2")

    page.evaluate("window.notReloaded = true")
    page.get_by_role("radio", name="1 star", exact=True).check()
    page.get_by_label("Comment (optional)").fill("Too fast for me.\nMore practice, please.")
    page.get_by_role("button", name="Send feedback").click()

    expect(summary).to_have_attribute("data-rating-count", "3")
    expect(summary).to_have_attribute("data-average-rating", "3.0")
    expect(page.locator("#flashes").get_by_role("status")).to_contain_text("your feedback is saved")
    expect(page.locator("#chart-desc")).to_contain_text("1 star: 1")
    assert page.evaluate("window.notReloaded === true")
    visit(page, "feedback-chart")

    # A second post updates the same entry.
    page.get_by_role("radio", name="2 stars").check()
    page.get_by_role("button", name="Update my feedback").click()
    expect(summary).to_have_attribute("data-rating-count", "3")
    expect(summary).to_have_attribute("data-average-rating", "3.3")
    assert page.evaluate("window.notReloaded === true")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, "mr.oak", PASSWORD)
    expect(page.locator("#notification-count")).to_have_text("1")
    page.goto(f"/courses/{course.id}/feedback?sort=lowest")
    rita = page.locator("[data-feedback-id]").first
    expect(rita).to_contain_text("Rita Rater")
    rita.locator("summary").click()
    rita.get_by_label("Your reply").fill("Thank you, Rita: extra practice on Thursdays.")
    rita.get_by_role("button", name="Post reply").click()
    expect(page.locator("[data-reply]")).to_contain_text("extra practice on Thursdays")
    visit(page, "feedback-replied")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, "rita", PASSWORD)
    expect(page.locator("#notification-count")).to_have_text("1")
