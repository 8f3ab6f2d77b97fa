"""A person registers, signs out and in, edits the profile, changes the password, signs out."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.live_client import CSRF_META, LiveClient

pytestmark = pytest.mark.browser

PASSWORD = "my-first-campus-pass"
NEW_PASSWORD = "my-second-campus-pass"


def test_register_login_edit_profile_change_password_logout(page, visit, make_user):
    page.goto("/")
    visit(page, "home")
    page.get_by_role("navigation").get_by_role("link", name="Register").click()
    expect(page.get_by_role("heading", name="Create an account")).to_be_visible()
    visit(page, "register")

    # A mistake first: the messages appear beside the fields and the first one takes focus.
    page.get_by_label("Username").fill("x")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#username-error")).to_contain_text("3 to 32 characters")
    expect(page.locator("#username")).to_be_focused()
    visit(page, "register-errors")

    page.get_by_label("Username").fill("Marie.Curie")
    page.get_by_label("Email").fill("marie@school.example")
    page.get_by_label("Full name").fill("Marie Curie")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()

    expect(page).to_have_url(re.compile(r"/dashboard$"))
    expect(page.get_by_role("status")).to_contain_text("Welcome to Campus, Marie Curie")
    expect(page.locator("#notification-count")).to_have_text("0")
    visit(page, "dashboard")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/auth/login$"))
    visit(page, "login")

    page.get_by_label("Username or email").fill("MARIE@school.example")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))

    page.get_by_role("link", name="marie.curie").click()
    expect(page.get_by_role("heading", name="Marie Curie")).to_be_visible()
    visit(page, "profile")

    page.get_by_role("link", name="Edit profile").click()
    page.get_by_label("Full name").fill("Marie Skłodowska-Curie")
    page.get_by_label("About me").fill("Physicist and chemist.\nTwo Nobel prizes.")
    visit(page, "profile-edit")
    page.get_by_role("button", name="Save profile").click()
    # Saved through htmx: the form is swapped in place, the message lands in the live region
    # and focus on the form's heading.
    expect(page.locator("#flashes").get_by_role("status")).to_contain_text("Your profile is saved")
    expect(page.get_by_role("heading", name="About you")).to_be_focused()
    expect(page).to_have_url(re.compile(r"/profile/edit$"))
    page.goto("/profile")
    expect(page.get_by_role("heading", name="Marie Skłodowska-Curie")).to_be_visible()
    expect(page.locator(".bio")).to_contain_text("Two Nobel prizes.")

    page.goto("/profile/edit")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Confirm new password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is changed")

    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Username or email").fill("marie.curie")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_contain_text("do not match")
    visit(page, "login-errors")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))

    make_user("ada", full_name="Ada Lovelace")
    page.goto("/users/ada")
    expect(page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()
    visit(page, "public-profile")

    page.goto("/no/such/page")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    visit(page, "error-404")


def test_a_page_behind_login_comes_back_after_signing_in(page, make_user):
    make_user("grace", password=PASSWORD)
    page.goto("/profile/edit")
    expect(page).to_have_url(re.compile(r"/auth/login\?next="))
    expect(page.get_by_role("status")).to_contain_text("Please sign in")
    page.get_by_label("Username or email").fill("grace")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/profile/edit$"))


def test_a_locked_account_still_signs_in_from_a_browser_used_before(
    page, second_page, live_server, make_user
):
    make_user("lina", full_name="Lina Lock", password=PASSWORD)

    def sign_in(browser_page) -> None:
        browser_page.goto("/auth/login")
        browser_page.get_by_label("Username or email").fill("lina")
        browser_page.get_by_label("Password").fill(PASSWORD)
        browser_page.get_by_role("button", name="Sign in").click()

    sign_in(page)
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    page.get_by_role("button", name="Sign out").click()
    stranger = LiveClient(live_server)  # ten wrong guesses from elsewhere lock the account
    _, form = stranger.request("GET", "/auth/login")
    token = CSRF_META.search(form).group(1)
    guess = {"login": "lina", "password": "not-her-password", "csrf_token": token}
    guesses = [stranger.request("POST", "/auth/login", guess)[0] for _ in range(10)]
    assert guesses == [422] * 10

    sign_in(second_page)  # a browser lina never used: paused
    expect(second_page.get_by_role("heading", name="Too many attempts")).to_be_visible()
    sign_in(page)  # hers
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    expect(page.locator("#notifications")).to_contain_text("new browsers are paused")
