"""Every page, checked by axe-core signed out and signed in with each role; the keyboard alone
is enough to register, sign in and edit one's profile."""

from __future__ import annotations

import contextlib
import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from app.blueprints.auth import links
from app.blueprints.enrollments.services import enroll
from app.blueprints.notifications import services as notifications
from app.blueprints.notifications.services import notify
from app.extensions import db
from app.models import ChatMessage, ChatReport, ChatRoom
from tests.browser import flows

pytestmark = pytest.mark.browser

PASSWORD = "keyboard-only-secret"
# Files, a JSON answer, the WebSocket, the data export (a zip), and a fragment only htmx
# asks for.
NOT_PAGES = {
    "static",
    "main.healthz",
    "materials.download",
    "chat.live",
    "profile.export_data",
    "enrollments.suggestions",
}
ROLES = ("student", "teacher", "admin")


def html_endpoints(app) -> set[str]:
    return {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and rule.endpoint not in NOT_PAGES
    }


def test_every_page_passes_axe_for_every_role(app, page, visit, make_user, make_course):
    adapter = app.url_map.bind("localhost")
    seen: set[str] = set()

    def check(name: str) -> None:
        path = re.sub(r"^https?://[^/]+", "", page.url).split("?")[0]
        with contextlib.suppress(HTTPException):  # an error page has no endpoint
            seen.add(adapter.match(path)[0])
        visit(page, name)

    def sign_in(username: str) -> None:
        flows.sign_in(page, username, PASSWORD)

    make_user("ada", full_name="Ada Lovelace", password=PASSWORD)
    users = {role: make_user(f"a{role}", role=role, password=PASSWORD) for role in ROLES}
    course = make_course(users["teacher"], title="Accessible Astronomy", capacity=1)
    enroll(make_user("early", password=PASSWORD), course.id)
    enroll(users["student"], course.id)  # on the waitlist: the page shows a position
    notify([users["student"].id], "test", "A seat may open soon.", f"/courses/{course.id}")
    room = db.session.scalar(select(ChatRoom).where(ChatRoom.course_id == course.id))
    db.session.add_all(
        ChatMessage(room_id=room.id, author_id=author.id, body=body)
        for author, body in [
            (users["teacher"], "Welcome! Bring binoculars on Friday."),
            (users["teacher"], "The observatory opens at 8 pm.\nDress warmly."),
        ]
    )
    db.session.commit()
    reported = db.session.scalar(select(ChatMessage).where(ChatMessage.room_id == room.id))
    db.session.add(
        ChatReport(
            message_id=reported.id, room_id=room.id, reporter_id=users["teacher"].id,
            body=reported.body, reason="Checking the reports page reads well.",
        )
    )  # fmt: skip
    db.session.commit()

    # Signed out, including the forms shown again with their messages and the error pages.
    page.goto("/")
    check("home")
    page.goto("/auth/login")
    check("login")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_be_visible()
    check("login-422")
    page.goto("/auth/register")
    check("register")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#username-error")).to_be_visible()
    check("register-422")
    page.goto("/no/such/page")
    check("error-404")
    page.goto("/auth/logout")
    check("error-405")
    page.goto("/auth/login")
    page.evaluate("document.querySelector('input[name=csrf_token]').value = 'forged'")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Bad request")).to_be_visible()
    check("error-400")
    for _ in range(11):
        page.goto("/auth/login")
        page.get_by_label("Username or email").fill("ada")
        page.get_by_label("Password").fill("not-her-password")
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Too many attempts")).to_be_visible()
    check("error-429")

    page.goto("/courses")
    check("courses")
    page.goto("/search/courses?q=astronomy")
    check("search-courses-visitor")
    page.goto(f"/courses/{course.id}")
    check("course")

    # Signed in, each role.
    for role in ROLES:
        sign_in(f"a{role}")
        check(f"dashboard-{role}")
        page.goto("/profile")
        check(f"profile-{role}")
        page.goto("/users/ada")
        check(f"public-profile-{role}")
        page.goto("/profile/edit")
        check(f"profile-edit-{role}")
        page.goto("/profile/notifications")
        check(f"profile-notifications-{role}")
        page.goto("/profile/delete")
        check(f"profile-delete-{role}")
        if role == "student":  # a wrong confirmation: the page again with its message
            page.get_by_label("Your password").fill(PASSWORD)
            page.get_by_label("Type your username to confirm").fill("someone-else")
            page.get_by_role("button", name="Erase my account").click()
            expect(page.locator("#confirm-error")).to_be_visible()
            check("profile-delete-422")
        page.goto("/courses")
        check(f"courses-{role}")
        page.goto(f"/courses/{course.id}")
        check(f"course-{role}")
        page.goto("/notifications")
        check(f"notifications-{role}")
        page.goto("/chat")
        check(f"chat-{role}")
        page.goto(f"/courses/{course.id}/feedback")
        check(f"feedback-{role}")
        if role != "student":
            page.goto(f"/courses/{course.id}/materials")
            check(f"materials-{role}")
            page.goto("/courses/new")
            check(f"course-new-{role}")
            page.goto(f"/courses/{course.id}/edit")
            check(f"course-edit-{role}")
            page.goto(f"/courses/{course.id}/students")
            check(f"roster-{role}")
            page.goto(f"/courses/{course.id}/students/early/remove")
            check(f"roster-remove-confirm-{role}")
            page.goto("/search/users?q=a")
            check(f"search-users-{role}")
        if role == "teacher":
            page.goto(f"/chat/{room.id}")
            check("chat-room-teacher")
            page.goto("/admin/reports")
            check("reports-teacher")
        if role == "admin":
            page.goto("/admin/users")
            check("admin-users")
            page.goto("/admin/users/astudent")
            check("admin-user")
            page.goto("/admin/import")
            check("admin-import-empty")
            page.goto("/admin/audit")
            check("admin-audit-empty")
            page.goto("/admin/reports")
            check("reports-admin")
        page.get_by_role("button", name="Sign out").click()

    with app.test_request_context():
        reset_link = f"/auth/reset/{links.make_token(users['student'])}"
    page.goto(reset_link)
    check("reset")
    page.get_by_role("button", name="Set password").click()
    expect(page.locator("#new_password-error")).to_be_visible()
    check("reset-422")
    with app.test_request_context():
        unsubscribe = notifications.unsubscribe_url(users["student"].id, "chat")
    page.goto(unsubscribe.removeprefix("http://localhost"))
    check("unsubscribe")
    page.get_by_role("button", name="Stop these mails").click()
    expect(page.get_by_role("status")).to_contain_text("no longer mails")
    check("unsubscribe-done")
    page.goto("/auth/reset/not-a-link")
    expect(page.get_by_role("link", name="Ask for a new link")).to_be_visible()
    check("error-410")
    page.goto("/auth/login")
    page.get_by_role("link", name="Forgot your password?").click()
    check("forgot")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.locator("#login-error")).to_be_visible()
    check("forgot-422")

    sign_in("early")  # enrolled: may rate and download
    page.goto(f"/courses/{course.id}/materials")
    check("materials-enrolled-student")
    page.goto(f"/courses/{course.id}/feedback")
    page.get_by_role("button", name="Send feedback").click()  # no rating: 422 through htmx
    expect(page.get_by_text("Choose a rating from 1 to 5 stars.")).to_be_visible()
    check("feedback-422")
    page.get_by_role("radio", name="4 stars").check()
    page.get_by_role("button", name="Send feedback").click()
    expect(page.locator("[data-rating-count]")).to_have_attribute("data-rating-count", "1")
    check("feedback-rated")
    page.goto(f"/chat/{room.id}")
    expect(page.locator("[data-message-id]")).to_have_count(2)
    # Over the limit (past the box's own maxlength): refused over the socket, shown in the page.
    page.evaluate("document.getElementById('body').removeAttribute('maxlength')")
    page.get_by_label("Write a message").fill("x" * 2001)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#live-error")).to_contain_text("at most 2,000 characters")
    check("chat-room-live-error")
    page.get_by_label("Write a message").fill("Thank you!")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("[data-message-id]")).to_have_count(3)
    check("chat-room-student")
    page.get_by_role("button", name="Sign out").click()

    sign_in("ateacher")
    page.goto(f"/courses/{course.id}/materials")
    page.get_by_role("button", name="Upload").click()  # no file chosen: 422 through htmx
    expect(page.locator("#file-error")).to_be_visible()
    check("materials-422")
    page.goto("/courses/new")
    page.get_by_label("Capacity").fill("ten")
    page.get_by_role("button", name="Create course").click()
    expect(page.locator("#title-error")).to_be_visible()
    check("course-new-422")
    page.get_by_role("button", name="Sign out").click()

    sign_in("astudent")
    page.goto("/profile/edit")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_role("button", name="Save profile").click()  # through htmx: 422 swapped in
    expect(page.locator("#email-error")).to_be_visible()
    check("profile-edit-422")
    page.get_by_role("button", name="Change password").click()  # a plain form: the whole page
    expect(page.locator("#current_password-error")).to_be_visible()
    check("password-422")

    assert html_endpoints(app) <= seen, f"pages never checked: {html_endpoints(app) - seen}"


def focus_is_visible(page) -> bool:
    """The focused element shows it: an outline or a focus ring (box-shadow)."""
    return page.evaluate(
        """() => {
          const el = document.activeElement;
          if (!el || el === document.body) return false;
          const style = getComputedStyle(el);
          const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
          return outline || style.boxShadow !== "none";
        }"""
    )


def tab_to(page, locator, backwards: bool = False, limit: int = 40) -> None:
    """Press Tab (or Shift+Tab) until the locator has focus; focus must show at every stop."""
    key = "Shift+Tab" if backwards else "Tab"
    for _ in range(limit):
        page.keyboard.press(key)
        assert focus_is_visible(page), "focus is not visible on " + page.evaluate(
            "document.activeElement.outerHTML.slice(0, 120)"
        )
        if locator.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{locator} never took focus with {key}")


def test_register_sign_in_and_edit_profile_with_the_keyboard_alone(page):
    page.goto("/auth/register")

    # The first stop is the skip link; Enter takes focus past the navigation.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    assert focus_is_visible(page)
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    tab_to(page, page.get_by_label("Username"))
    page.keyboard.type("Keys.Only")
    page.keyboard.press("Tab")
    page.keyboard.type("keys@school.example")
    page.keyboard.press("Tab")
    page.keyboard.type("Kim Keys")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    page.keyboard.type("a typo here")
    page.keyboard.press("Enter")

    # The mismatch comes back beside its field, and that field has focus.
    expect(page.locator("#password_confirm-error")).to_contain_text("do not match")
    expect(page.get_by_label("Confirm password")).to_be_focused()
    tab_to(page, page.get_by_label("Password", exact=True), backwards=True)
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    tab_to(page, page.get_by_role("button", name="Create account"))
    page.keyboard.press("Space")
    expect(page).to_have_url(re.compile(r"/dashboard$"))

    tab_to(page, page.get_by_role("button", name="Sign out"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/auth/login$"))

    tab_to(page, page.get_by_label("Username or email"))
    page.keyboard.type("keys.only")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # keep me signed in
    expect(page.get_by_label("Keep me signed in on this device")).to_be_checked()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/dashboard$"))

    tab_to(page, page.get_by_role("link", name="keys.only"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/profile$"))
    tab_to(page, page.get_by_role("link", name="Edit profile"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/profile/edit$"))

    tab_to(page, page.get_by_label("About me"))
    page.keyboard.type("I use the keyboard.")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_label("Full name")).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type("Kim Keyboard")
    tab_to(page, page.get_by_role("button", name="Save profile"))
    page.keyboard.press("Enter")

    # Saved through htmx: announced in the live region, focus on the form's heading.
    expect(page.locator("#flashes")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#flashes").get_by_role("status")).to_contain_text("saved")
    expect(page.get_by_role("heading", name="About you")).to_be_focused()
    assert focus_is_visible(page)
    page.goto("/profile")
    expect(page.get_by_role("heading", name="Kim Keyboard")).to_be_visible()
    expect(page.locator(".bio")).to_have_text("I use the keyboard.")
