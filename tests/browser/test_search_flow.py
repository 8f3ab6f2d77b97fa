"""Typing in the search box updates the results as you type, without reloading the page; the
address follows, so the back button and a shared link work."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.flows import sign_in

pytestmark = pytest.mark.browser

PASSWORD = "search-flow-secret"


def test_course_results_follow_each_letter_typed(page, visit, make_user, make_course):
    tara = make_user("tara", role="teacher", full_name="Tara Okafor", password=PASSWORD)
    make_course(tara, title="Astronomy Basics", keywords=["stars"], description="The night sky.")
    make_course(tara, title="Astrophysics", keywords=["physics"], description="Stars explained.")
    make_course(title="Art History", keywords=["painting"], description="From caves to cubism.")

    page.goto("/")
    page.get_by_label("Search courses").fill("art")
    page.get_by_label("Search courses").press("Enter")  # the nav's box: a plain GET form
    expect(page).to_have_url(re.compile(r"/search/courses\?q=art$"))
    results = page.locator("#search-results [data-course-id]")
    expect(results).to_have_count(1)

    page.evaluate("window.notReloaded = true")
    box = page.get_by_label("Title, keyword or teacher")
    box.fill("")
    seen = []
    for letter in "astrop":
        box.press_sequentially(letter, delay=40)
        page.wait_for_timeout(450)  # past htmx's 300 ms pause: each letter asks again
        expect(page.locator("#search-indicator")).to_be_hidden()
        seen.append(results.count())
    assert seen[-1] == 1 and 2 in seen, seen  # "as"..."astro": both Astro courses; then one
    expect(results.first).to_contain_text("Astrophysics")
    expect(page.locator("#search-results mark").first).to_have_text("Astrophysics")
    expect(page).to_have_url(re.compile(r"q=astrop"))
    assert page.evaluate("window.notReloaded === true")
    visit(page, "search-courses")

    # The back button shows the earlier list, as a whole page.
    page.go_back()
    expect(page).to_have_url(re.compile(r"q=astro(&|$)"))
    expect(results).to_have_count(2)

    # A typo, and the teacher filter; pasted text (no key pressed) counts too.
    box.fill("astronmy")
    expect(results).to_have_count(1)
    page.get_by_label("Teacher (username or name)").fill("okafor")
    expect(page).to_have_url(re.compile(r"teacher=okafor"))
    expect(results).to_have_count(1)
    box.fill("xqzv")
    expect(page.locator("#search-summary")).to_contain_text("No course matches")
    visit(page, "search-courses-none")


def test_teacher_finds_students_by_role_as_they_type(page, visit, make_user):
    make_user("mrs.bell", role="teacher", full_name="Grace Bell", password=PASSWORD)
    make_user("lena", full_name="Lena Fischer")
    make_user("lennart", role="teacher", full_name="Lennart Berg")

    sign_in(page, "mrs.bell", PASSWORD)
    page.get_by_role("link", name="People").click()
    expect(page.get_by_label("Name, username or email")).to_be_visible()  # the new page
    page.evaluate("window.notReloaded = true")
    page.get_by_label("Name, username or email").press_sequentially("len", delay=60)
    people = page.locator("#search-results [data-username]")
    expect(people).to_have_count(2)
    page.get_by_label("Role").select_option("student")
    expect(people).to_have_count(1)
    expect(people.first).to_have_attribute("data-username", "lena")
    assert page.evaluate("window.notReloaded === true")
    visit(page, "search-users")
