"""A real Chromium (Debian's) driven by Playwright against the live server of tests/conftest.py.

The server runs on the same database as the other tests, so the factories set up what a page
needs. Every page checked with `visit` is run through axe-core and saved as screenshots in
tests/browser/screenshots/ at a phone and a desktop width, light and dark.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.browser.accessibility import axe_violations, describe
from tests.conftest import missing

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).with_name("screenshots")
WIDTHS = {"phone": (390, 844), "desktop": (1280, 800)}


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed")
    if not CHROMIUM.exists():
        missing(f"no Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@contextmanager
def watched_page(browser, live_server: str, **options: object) -> Iterator[object]:
    """A page in a browser context of its own (its own cookies: another person), failing the
    test if the page reports an error. `options` go to the context (a `timezone_id`, ...)."""
    width, height = WIDTHS["desktop"]
    # Reduced motion: Pico then skips its transitions, so a colour-scheme switch is complete
    # before the screenshot and the contrast check.
    context = browser.new_context(
        base_url=live_server,
        viewport={"width": width, "height": height},
        reduced_motion="reduce",
        **options,
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def console(message) -> None:
        # A page answered 404 or 422 on purpose is logged too; broken assets are caught below.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def asset(response) -> None:
        # htmx's requests answer 422 on purpose; styles, scripts, images and fonts never fail.
        kinds = ("stylesheet", "script", "image", "font")
        if response.request.resource_type in kinds and response.status >= 400:
            errors.append(f"{response.status} {response.url}")

    page.on("console", console)
    page.on("response", asset)
    yield page
    context.close()
    assert errors == [], f"the page reported errors: {errors}"


@pytest.fixture
def page(app, browser, live_server: str) -> Iterator[object]:
    with watched_page(browser, live_server) as page:
        yield page


@pytest.fixture
def second_page(app, browser, live_server: str) -> Iterator[object]:
    """Someone else's browser, beside `page`."""
    with watched_page(browser, live_server) as page:
        yield page


CHECKED_PAGES: dict[str, int] = {}  # page name -> axe-core violations found on it


@pytest.fixture
def visit(app):
    """Check the page the browser shows with axe-core, at a phone and a desktop width, in the
    light and the dark colour scheme, and save a screenshot of each. Fails on any violation."""
    SCREENSHOTS.mkdir(exist_ok=True)

    def check(page, name: str) -> None:
        original = page.viewport_size
        problems = []
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            for label, (width, height) in WIDTHS.items():
                page.set_viewport_size({"width": width, "height": height})
                suffix = label if scheme == "light" else f"{label}-dark"
                page.screenshot(path=SCREENSHOTS / f"{name}-{suffix}.png", full_page=True)
                violations = axe_violations(page)
                if violations:
                    problems.append(f"{name} ({label}, {scheme}):\n{describe(violations)}")
        page.emulate_media(color_scheme="light")
        page.set_viewport_size(original)
        CHECKED_PAGES[name] = len(problems)
        assert not problems, "axe-core found accessibility violations:\n" + "\n".join(problems)

    return check


def pytest_terminal_summary(terminalreporter) -> None:
    if CHECKED_PAGES:
        failing = sum(1 for count in CHECKED_PAGES.values() if count)
        terminalreporter.write_line(
            f"axe-core: {len(CHECKED_PAGES)} distinct pages checked, {failing} with violations"
        )
