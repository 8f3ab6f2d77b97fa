"""Materials: uploads checked by content and kept only whole, downloads with ranges, and who
may do what."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.blueprints.enrollments.services import enroll
from app.blueprints.materials import services, storage
from app.extensions import db
from app.models import Material, Notification

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n" * 20
TEXT = b"Week 1: bring a notebook.\nWeek 2: field trip.\n" * 50


def upload_dir(app) -> Path:
    return Path(app.config["UPLOAD_DIR"])


def left_on_disk(app) -> list[str]:
    return sorted(p.name for p in upload_dir(app).rglob("*") if p.is_file())


def material_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Material))


@pytest.fixture
def owner(make_user):
    return make_user("tina", role="teacher", full_name="Tina Teacher")


@pytest.fixture
def course(make_course, owner):
    return make_course(owner, title="Geography", capacity=10)


def post_files(client, course_id: int, files: list[tuple[bytes, str]], **fields) -> object:
    data = {"file": [(io.BytesIO(content), name) for content, name in files], **fields}
    return client.post_form(
        f"/courses/{course_id}/materials", data, content_type="multipart/form-data"
    )


def test_owner_uploads_two_files_and_students_are_told_once(
    app, client, login_as, make_user, owner, course
):
    enroll(make_user("sam"), course.id)
    login_as(owner)
    response = post_files(client, course.id, [(PDF, "Syllabus.pdf"), (TEXT, "weeks.txt")])
    assert response.status_code == 303
    rows = db.session.scalars(select(Material).order_by(Material.id)).all()
    assert [(m.original_name, m.content_type, m.size) for m in rows] == [
        ("Syllabus.pdf", "application/pdf", len(PDF)),
        ("weeks.txt", "text/plain; charset=utf-8", len(TEXT)),
    ]
    assert rows[0].sha256 == hashlib.sha256(PDF).hexdigest()
    assert left_on_disk(app) == sorted(m.stored_name for m in rows)  # nothing in tmp
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 1
    page = client.get(f"/courses/{course.id}/materials").get_data(as_text=True)
    assert page.count("data-material-id=") == 2


EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 200 + b"PE\x00\x00"
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + b"\x02\x00\x3e\x00" + b"\x00" * 200
HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
SHELL = b"#!/bin/sh\nrm -rf /\n"


@pytest.mark.parametrize(
    ("files", "status"),
    [
        ([(EXECUTABLE, "notes.pdf")], 415),
        ([(ELF, "notes.pdf")], 415),
        ([(HTML, "notes.pdf")], 415),
        ([(SVG, "diagram.svg")], 415),
        ([(SVG.replace(b"<svg", b"<?xml version='1.0'?><svg"), "diagram.png")], 415),
        ([(SHELL, "notes.txt")], 415),
        ([(b"", "empty.pdf")], 422),
        ([], 422),
        ([(PDF, "evil\x00.pdf")], 422),
        ([(PDF, "good.pdf"), (HTML, "bad.pdf")], 415),  # one bad file: none are kept
    ],
    ids=["exe-as-pdf", "elf-as-pdf", "html-as-pdf", "svg-script", "svg-as-png", "shell-script",
         "empty", "no-file", "nul-in-name", "one-bad-of-two"],
)  # fmt: skip
def test_bad_uploads_keep_nothing(app, client, login_as, owner, course, files, status):
    login_as(owner)
    response = post_files(client, course.id, files)
    assert response.status_code == status
    assert material_count() == 0
    assert left_on_disk(app) == []


@pytest.mark.parametrize(
    ("title", "message"),
    [
        ("Week\x00 1", "Remove the control characters from the title."),
        ("\x1b[31mWeek 1\x07", "Remove the control characters from the title."),
        ("Week 1 \u202efdp.exe", "change the direction of text"),
        ("\u2066Week 1\u2069", "change the direction of text"),
        ("Week\u200b 1", "zero-width spaces"),
    ],
    ids=["nul", "escape-and-bell", "right-to-left-override", "isolate", "zero-width-space"],
)
def test_a_title_with_hidden_characters_is_422_and_nobody_is_told(
    app, client, login_as, make_user, owner, course, title, message
):
    enroll(make_user("sam"), course.id)
    login_as(owner)
    response = post_files(client, course.id, [(PDF, "syllabus.pdf")], title=title)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="title-error"' in html and message in html
    assert material_count() == 0
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0
    assert left_on_disk(app) == []


def test_a_title_with_joiners_and_direction_marks_is_kept(client, login_as, owner, course):
    login_as(owner)
    title = "مقدمه\u200cای بر جغرافیا \u200f— 👩\u200d🏫"
    assert post_files(client, course.id, [(PDF, "intro.pdf")], title=title).status_code == 303
    assert db.session.scalar(select(Material.title)) == title


def test_over_the_limit_is_413_and_keeps_nothing(app, client, login_as, owner, course):
    login_as(owner)
    app.config["MAX_UPLOAD_MB"] = 1
    response = post_files(client, course.id, [(PDF * 800, "big.pdf")])
    assert response.status_code == 413
    assert f"at most {app.config['MAX_UPLOAD_MB']} MB" in response.get_data(as_text=True)
    assert material_count() == 0
    assert left_on_disk(app) == []


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\boot.ini.txt", "boot.ini.txt"),
        ("x" * 296 + ".pdf", "x" * 247 + ".pdf"),
        ("Überblick – Erdkunde 🌍.pdf", "Überblick – Erdkunde 🌍.pdf"),
    ],
)
def test_names_are_cleaned_for_display_and_never_used_on_disk(
    app, client, login_as, owner, course, name, shown
):
    login_as(owner)
    content = TEXT if name.endswith(".txt") else PDF
    assert post_files(client, course.id, [(content, name)]).status_code == 303
    material = db.session.scalar(select(Material))
    assert material.original_name == shown
    assert left_on_disk(app) == [material.stored_name]
    response = client.get(f"/materials/{material.id}/download")
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert "/" not in response.headers["Content-Disposition"].split("filename", 1)[1]


def test_download_is_identical_with_ranges_and_etag(client, login_as, make_user, owner, course):
    login_as(owner)
    post_files(client, course.id, [(PDF, "Syllabus.pdf")])
    material = db.session.scalar(select(Material))
    client.post_form("/auth/logout")
    sam = make_user("sam")
    enroll(sam, course.id)
    login_as(sam)
    url = f"/materials/{material.id}/download"
    full = client.get(url)
    assert full.status_code == 200 and full.data == PDF
    assert full.headers["Content-Length"] == str(len(PDF))
    assert full.headers["X-Content-Type-Options"] == "nosniff"
    assert full.headers["Content-Disposition"] == "attachment; filename=Syllabus.pdf"
    part = client.get(url, headers={"Range": "bytes=100-149"})
    assert part.status_code == 206 and part.data == PDF[100:150]
    assert part.headers["Content-Range"] == f"bytes 100-149/{len(PDF)}"
    assert client.get(url, headers={"If-None-Match": f'"{material.sha256}"'}).status_code == 304
    assert client.get(url, headers={"Range": f"bytes={len(PDF) + 10}-"}).status_code == 416


def test_downloads_say_their_type_and_charset_once(client, login_as, owner, course):
    login_as(owner)
    post_files(client, course.id, [(TEXT, "weeks.txt"), (PDF, "Syllabus.pdf")])
    text, pdf = db.session.scalars(select(Material).order_by(Material.id))
    response = client.get(f"/materials/{text.id}/download")
    assert response.data == TEXT
    assert response.headers.getlist("Content-Type") == ["text/plain; charset=utf-8"]
    response = client.get(f"/materials/{pdf.id}/download")
    assert response.headers.getlist("Content-Type") == ["application/pdf"]


def test_unicode_name_is_sent_per_rfc_6266(client, login_as, owner, course):
    login_as(owner)
    post_files(client, course.id, [(PDF, "Résumé.pdf")])
    material = db.session.scalar(select(Material))
    disposition = client.get(f"/materials/{material.id}/download").headers["Content-Disposition"]
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9.pdf" in disposition


ROLES = ["anonymous", "outsider", "enrolled", "waiting", "other-teacher", "owner", "admin"]
# (list, download, upload, replace, delete) for each role
EXPECTED = {
    "anonymous": (302, 302, 302, 302, 302),
    "outsider": (403, 403, 403, 403, 403),
    "enrolled": (200, 200, 403, 403, 403),
    "waiting": (403, 403, 403, 403, 403),
    "other-teacher": (403, 403, 403, 403, 403),
    "owner": (200, 200, 303, 303, 303),
    "admin": (200, 200, 303, 303, 303),
}


@pytest.mark.parametrize("role", ROLES)
def test_permissions(client, make_user, make_course, login_as, owner, role):
    course = make_course(owner, capacity=1)
    enroll(make_user("first"), course.id)
    material = services.upload(owner, course.id, [_file(PDF, "a.pdf")], "")[0]
    users = {
        "outsider": lambda: make_user("outsider"),
        "enrolled": lambda: db.session.get(type(owner), _id("first")),
        "waiting": lambda: _waiting(make_user, course.id),
        "other-teacher": lambda: make_user("other", role="teacher"),
        "owner": lambda: owner,
        "admin": lambda: make_user("boss", role="admin"),
    }
    if role != "anonymous":
        login_as(users[role]())
    expected = EXPECTED[role]
    assert client.get(f"/courses/{course.id}/materials").status_code == expected[0]
    assert client.get(f"/materials/{material.id}/download").status_code == expected[1]
    assert post_files(client, course.id, [(PDF, "b.pdf")]).status_code == expected[2]
    replace = client.post_form(
        f"/materials/{material.id}/replace",
        {"file": (io.BytesIO(TEXT), "a.txt")},
        content_type="multipart/form-data",
    )
    assert replace.status_code == expected[3]
    assert client.post_form(f"/materials/{material.id}/delete").status_code == expected[4]


def test_draft_materials_are_404_to_others(client, make_user, make_course, login_as, owner):
    draft = make_course(owner, published=False)
    login_as(make_user("other", role="teacher"))
    assert client.get(f"/courses/{draft.id}/materials").status_code == 404
    assert client.get("/materials/99999/download").status_code == 404


def test_sweep_removes_leftovers_and_orphans_only(app, owner, course):
    material = services.upload(owner, course.id, [_file(PDF, "keep.pdf")], "")[0]
    (upload_dir(app) / "tmp").mkdir(exist_ok=True)
    (upload_dir(app) / "tmp" / "upload-partial").write_bytes(b"half a file")
    (upload_dir(app) / "files" / "orphan").write_bytes(b"no row")
    assert services.sweep(app) == 2
    assert left_on_disk(app) == [material.stored_name]


def _file(content: bytes, name: str):
    """A FileStorage as the streaming request makes it: backed by a file in UPLOAD_DIR/tmp."""
    from werkzeug.datastructures import FileStorage

    directory = storage.tmp_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"upload-test-{name}"
    path.write_bytes(content)
    return FileStorage(stream=path.open("rb+"), filename=name)


def _id(username: str) -> int:
    from app.models import User

    return db.session.scalar(select(User.id).where(User.username == username))


def _waiting(make_user, course_id: int):
    student = make_user("waiting")
    enroll(student, course_id)
    return student


def test_replace_keeps_history_for_the_teacher_and_gives_students_the_current(
    app, client, login_as, make_user, owner, course
):
    sam = make_user("sam")
    enroll(sam, course.id)
    first = services.upload(owner, course.id, [_file(PDF, "plan.pdf")], "Plan")[0]
    login_as(owner)
    response = client.post_form(
        f"/materials/{first.id}/replace",
        {"file": (io.BytesIO(TEXT), "plan-v2.txt")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    versions = db.session.scalars(select(Material).order_by(Material.version)).all()
    assert [(m.version, m.is_current, m.title) for m in versions] == [
        (1, False, "Plan"),
        (2, True, "Plan"),
    ]
    teacher_page = client.get(f"/courses/{course.id}/materials").get_data(as_text=True)
    assert teacher_page.count("data-material-id=") == 1 and 'data-version="1"' in teacher_page
    assert client.get(f"/materials/{first.id}/download").data == PDF  # the teacher: old one too
    kinds = db.session.scalars(select(Notification.kind).order_by(Notification.id)).all()
    assert kinds == ["material_added", "material_replaced"]

    client.post_form("/auth/logout")
    login_as(sam)
    student_page = client.get(f"/courses/{course.id}/materials").get_data(as_text=True)
    assert student_page.count("data-material-id=") == 1 and "data-version" not in student_page
    assert client.get(f"/materials/{first.id}/download").status_code == 404
    assert client.get(f"/materials/{versions[1].id}/download").data == TEXT
    assert client.post_form(f"/materials/{versions[1].id}/replace", {}).status_code == 403


def test_replacing_with_a_bad_file_changes_nothing(app, client, login_as, owner, course):
    first = services.upload(owner, course.id, [_file(PDF, "plan.pdf")], "Plan")[0]
    login_as(owner)
    for data, status in (({"file": (io.BytesIO(HTML), "plan.pdf")}, 415), ({}, 422)):
        response = client.post_form(
            f"/materials/{first.id}/replace", data, content_type="multipart/form-data"
        )
        assert response.status_code == status
    assert [(m.version, m.is_current) for m in db.session.scalars(select(Material))] == [(1, True)]
    assert left_on_disk(app) == [first.stored_name]


def test_delete_removes_every_version_and_its_files(app, client, login_as, owner, course):
    first = services.upload(owner, course.id, [_file(PDF, "plan.pdf")], "Plan")[0]
    services.replace(owner, first.id, _file(TEXT, "plan.txt"))
    current = db.session.scalar(select(Material).where(Material.is_current))
    login_as(owner)
    assert client.post_form(f"/materials/{current.id}/delete").status_code == 303
    assert material_count() == 0
    assert left_on_disk(app) == []
