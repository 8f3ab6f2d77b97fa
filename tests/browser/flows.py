"""Steps the browser tests share."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def sign_in(page, username: str, password: str) -> None:
    page.goto("/auth/login")
    page.get_by_label("Username or email").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))
