"""A teacher uploads two files with the progress bar showing; a student downloads one."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from app.blueprints.enrollments.services import enroll
from tests.browser.flows import sign_in

pytestmark = pytest.mark.browser

PASSWORD = "materials-flow-secret"
NOTES = b"Chapter 1: rivers.\nChapter 2: mountains.\n" * 20_000  # about 800 KB


def test_upload_two_files_then_download_as_a_student(page, visit, make_user, make_course, tmp_path):
    teacher = make_user("ms.river", role="teacher", full_name="Ms River", password=PASSWORD)
    course = make_course(teacher, title="Geography", capacity=10)
    enroll(make_user("leo", password=PASSWORD), course.id)
    notes = tmp_path / "notes.txt"
    notes.write_bytes(NOTES)
    syllabus = tmp_path / "syllabus.pdf"
    syllabus.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")

    sign_in(page, "ms.river", PASSWORD)
    page.goto(f"/courses/{course.id}/materials")
    page.locator("#file").set_input_files([str(notes), str(syllabus)])
    # Record what the progress bar shows while the files go up.
    page.evaluate(
        """() => {
          window.notReloaded = true;
          window.progressShown = [];
          document.addEventListener("htmx:xhr:progress", () => {
            const bar = document.querySelector("[data-upload-progress]");
            if (bar && !bar.hidden) window.progressShown.push(bar.value);
          });
        }"""
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("[data-material-id]")).to_have_count(2)
    shown = page.evaluate("window.progressShown")
    assert shown and shown[-1] == 100, shown
    expect(page.locator("#flashes").get_by_role("status")).to_contain_text("2 files added")
    assert page.evaluate("window.notReloaded === true")
    visit(page, "materials-uploaded")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, "leo", PASSWORD)
    expect(page.locator("#notification-count")).to_have_text("1")
    page.goto(f"/courses/{course.id}/materials")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="notes").click()
    download = download_info.value
    assert download.suggested_filename == "notes.txt"
    assert Path(download.path()).read_bytes() == NOTES
    visit(page, "materials-student")
