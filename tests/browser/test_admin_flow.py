"""An admin runs the school's accounts in a real browser: imports a class and prints its
links, makes a password link that a person opens, and deactivates a student who has a page
open. Every new page is checked with axe-core at both widths."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS
from tests.browser.flows import sign_in
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_an_admin_imports_a_class_and_prints_the_links(
    page, visit, make_user, make_course, tmp_path
):
    make_user("headteacher", role="admin", full_name="Ada Admin")
    course = make_course(make_user("tina", role="teacher"), title="Geography", capacity=3)
    rows = [
        f"pupil{n};Pupil Número {n};pupil{n}@school.example;student;{course.id}"
        for n in range(1, 5)
    ]
    class_list = tmp_path / "class.csv"
    class_list.write_bytes(
        ("\ufeffusername;full_name;email;role;courses\r\n" + "\r\n".join(rows)).encode()
    )

    sign_in(page, "headteacher", PASSWORD)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Accounts")).to_be_visible()
    visit(page, "admin-accounts")

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Import").click()
    visit(page, "admin-import")
    page.locator("#file").set_input_files(str(class_list))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-summary")).to_contain_text("4 to create")
    expect(page.locator('[data-line="5"]')).to_contain_text("(full: waitlisted)")
    visit(page, "admin-import-preview")

    page.get_by_role("button", name=re.compile("Confirm")).click()
    expect(page.get_by_role("status")).to_contain_text("4 accounts created")
    expect(page.locator("table.links tbody tr")).to_have_count(4)
    visit(page, "admin-import-result")
    page.emulate_media(media="print")
    page.screenshot(path=SCREENSHOTS / "admin-import-links-print.png", full_page=True)
    expect(page.locator(".site-header")).to_be_hidden()
    page.emulate_media(media="screen")

    # The first pupil opens their link, sets a password, and signs in with it.
    link = page.locator('table.links tr[data-username="pupil1"] code').inner_text()
    page.get_by_role("button", name="Sign out").click()
    page.goto("/" + link.split("/", 3)[3])
    expect(page.get_by_role("heading", name="Set your password")).to_be_visible()
    visit(page, "reset-password")
    page.get_by_label("New password", exact=True).fill("pupil-one-2026!")
    page.get_by_label("Confirm new password").fill("pupil-one-2026!")
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is set")
    sign_in(page, "pupil1", "pupil-one-2026!")


def test_an_admin_deactivates_a_student_who_has_a_page_open(page, second_page, visit, make_user):
    make_user("headteacher", role="admin", full_name="Ada Admin")
    make_user("sam", full_name="Sam Student")
    sign_in(second_page, "sam", PASSWORD)
    second_page.goto("/notifications")

    sign_in(page, "headteacher", PASSWORD)
    page.goto("/admin/users")
    page.get_by_label("Name, username or email").fill("sam")
    expect(page.locator("#accounts tbody tr")).to_have_count(1)
    page.get_by_role("link", name="Sam Student").click()
    expect(page.get_by_role("heading", name="Sam Student")).to_be_visible()
    visit(page, "admin-account")

    page.get_by_role("button", name="Make a password link").click()
    expect(page.locator("#password-link")).to_have_value(re.compile(r"/auth/reset/"))
    visit(page, "admin-password-link")

    page.get_by_role("button", name="Deactivate").click()
    expect(page.get_by_role("status").first).to_contain_text("sam is deactivated")
    expect(page.get_by_role("heading", name="Sam Student (deactivated)")).to_be_visible()

    # Sam's open page: the next step leads to the sign-in page, and signing in is refused.
    second_page.get_by_role("link", name="Dashboard").click()
    expect(second_page).to_have_url(re.compile(r"/auth/login"))
    second_page.get_by_label("Username or email").fill("sam")
    second_page.get_by_label("Password").fill(PASSWORD)
    second_page.get_by_role("button", name="Sign in").click()
    expect(second_page.locator("#login-error")).to_contain_text("deactivated")

    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Audit log").click()
    expect(page.locator('[data-action="deactivated"]')).to_have_count(1)
    visit(page, "admin-audit")
