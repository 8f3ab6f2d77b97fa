"""Someone who forgot their password, in a real browser against a server that mails through a
real SMTP server: asks for a link, reads the mail, sets a new password, signs in. The mail's
HTML is shown at a phone's width and checked like a page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SCREENSHOTS, watched_page
from tests.browser.flows import sign_in
from tests.conftest import running_server
from tests.mail.test_live_mail import MAIL_SETTINGS
from tests.smtp_server import text_part

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a-brand-new-pass-2026"


@pytest.fixture
def mailing_server(migrated_database: str, search_index_dir: str, smtp_server) -> Iterator[str]:
    settings = MAIL_SETTINGS | {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": str(smtp_server.port)}
    with running_server(migrated_database, **settings) as url:
        yield url


def html_part(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def test_forgot_mail_reset_and_sign_in(browser, visit, mailing_server, smtp_server, make_user):
    make_user("grace", full_name="Grace Hopper", email="grace@school.example")
    with watched_page(browser, mailing_server) as page:
        page.goto("/auth/login")
        page.get_by_role("link", name=re.compile("Forgot your password")).click()
        expect(page).to_have_url(re.compile(r"/auth/forgot$"))
        visit(page, "forgot")
        page.get_by_label("Username or email").fill("grace@school.example")
        page.get_by_role("button", name=re.compile("link", re.I)).click()
        expect(page).to_have_url(re.compile(r"/auth/login$"))
        expect(page.get_by_role("status")).to_be_visible()

        [message] = smtp_server.wait_for(1)
        assert message["To"] == "grace@school.example"
        link = re.search(r"(http://\S+/auth/reset/\S+)", text_part(message)).group(1)
        # The mail as the person sees it, at a phone's width (a mail reader of its own: the
        # mail's inline styles are not the site's).
        reader = browser.new_context(viewport={"width": 390, "height": 844})
        shown = reader.new_page()
        shown.set_content(html_part(message))
        expect(shown.get_by_role("link", name=re.compile("password", re.I)).first).to_be_visible()
        shown.screenshot(path=SCREENSHOTS / "mail-password-reset-phone.png", full_page=True)
        reader.close()

        page.goto(link)
        expect(page.get_by_role("heading", name="Set your password")).to_be_visible()
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("Confirm new password").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Set password").click()
        expect(page.get_by_role("status")).to_contain_text("Your password is set")
        sign_in(page, "grace", NEW_PASSWORD)

        # The link is used: opening it again says so and offers a new one.
        page.goto(link)
        expect(
            page.get_by_role("link", name=re.compile("new link|again|forgot", re.I))
        ).to_be_visible()
