"""Bulk import of accounts from a class list: a preview that stores nothing, a confirm that
stores all or nothing, the same file twice changing nothing, and hostile files refused
(DESIGN.md "Running the school")."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import func, select

from app.blueprints.admin import imports
from app.extensions import db
from app.models import AuditEvent, Enrollment, User

HEADER = "username;full_name;email;role;courses"


@pytest.fixture
def admin(make_user):
    return make_user("ada", role="admin", full_name="Ada Admin")


@pytest.fixture
def courses(make_course, make_user):
    teacher = make_user("tina", role="teacher")
    return make_course(teacher, title="Geography", capacity=25), make_course(teacher, title="Art")


def class_list(geography: int, art: int, count: int = 30) -> bytes:
    """A spreadsheet's export: a BOM, CRLF line ends, semicolons, accents."""
    lines = [HEADER] + [
        f"pupil{n:02};Élève Número {n};pupil{n}@school.example;student;{geography} {art}"
        for n in range(1, count + 1)
    ]
    return ("\ufeff" + "\r\n".join(lines) + "\r\n").encode()


def snapshot() -> tuple:
    users = db.session.execute(
        select(User.username, User.full_name, User.email, User.role).order_by(User.id)
    ).all()
    enrolments = db.session.execute(
        select(Enrollment.student_id, Enrollment.course_id, Enrollment.status)
    ).all()
    audit = db.session.scalar(select(func.count(AuditEvent.id)))
    return users, sorted(enrolments), audit


def preview(client, content: bytes):
    data = {"file": (io.BytesIO(content), "class.csv")}
    return client.post_form("/admin/import", data, content_type="multipart/form-data")


def outcomes(html: str) -> list[tuple[int, str]]:
    return [(int(n), o) for n, o in re.findall(r'data-line="(\d+)" data-outcome="(\w+)"', html)]


def confirm_fields(html: str) -> dict[str, str]:
    token = re.search(r'name="confirm" value="([^"]+)"', html).group(1)
    content = re.search(r'<textarea name="content"[^>]*>(.*?)</textarea>', html, re.S).group(1)
    import html as markup

    return {"confirm": token, "content": markup.unescape(content)}


def test_a_class_of_thirty_is_previewed_then_imported_and_enrolled(
    client, login_as, admin, courses
):
    geography, art = courses
    login_as(admin)
    before = snapshot()
    response = preview(client, class_list(geography.id, art.id))
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert outcomes(page) == [(n, "create") for n in range(2, 32)]
    assert page.count("(full: waitlisted)") == 5  # Geography has 25 seats
    assert snapshot() == before  # a preview stores nothing

    done = client.post_form(
        "/admin/import", confirm_fields(page), content_type="multipart/form-data"
    )
    result = done.get_data(as_text=True)
    assert done.status_code == 200
    assert "30 accounts created" in result and "55 enrolled and 5 waitlisted" in result
    assert len(re.findall(r'<tr data-username="pupil\d\d"><td>', result)) == 30
    pupil = db.session.scalar(select(User).where(User.username == "pupil07"))
    assert (pupil.full_name, pupil.email, pupil.role) == (
        "Élève Número 7",
        "pupil7@school.example",
        "student",
    )
    statuses = db.session.scalars(
        select(Enrollment.status)
        .where(Enrollment.course_id == geography.id)
        .order_by(Enrollment.id)
    ).all()
    assert statuses == ["enrolled"] * 25 + ["waitlisted"] * 5
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "import"))
    assert event.actor == "ada" and event.details.startswith("30 created, 0 updated")

    # The links, as CSV to print; each sets that pupil's password.
    token = re.search(r'name="links" value="([^"]+)"', result).group(1)
    download = client.post_form(
        "/admin/import", {"links": token}, content_type="multipart/form-data"
    )
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert rows[0] == ["full_name", "username", "email", "set_password_link"]
    assert len(rows) == 31 and all("/auth/reset/" in row[3] for row in rows[1:])


def test_the_same_file_again_changes_nothing(client, login_as, admin, courses):
    geography, art = courses
    login_as(admin)
    content = class_list(geography.id, art.id)
    first = preview(client, content).get_data(as_text=True)
    client.post_form("/admin/import", confirm_fields(first), content_type="multipart/form-data")
    before = snapshot()
    again = preview(client, content)
    page = again.get_data(as_text=True)
    assert again.status_code == 200
    assert outcomes(page) == [(n, "unchanged") for n in range(2, 32)]
    client.post_form("/admin/import", confirm_fields(page), content_type="multipart/form-data")
    users, enrolments, _ = snapshot()
    assert (users, enrolments) == before[:2]


def good_line(n: int = 1) -> str:
    return f"pupil{n};Pupil {n};pupil{n}@school.example;student;"


def file_of(*lines: str) -> bytes:
    return "\n".join([HEADER, *lines]).encode()


MANY = [good_line(n) for n in range(5001)]
BROKEN = {
    "not UTF-8": (file_of("anna;Ånna;anna@school.example;student;").decode().encode("latin-1"),
                  "not UTF-8"),
    "wrong header": (b"username;name;email;role\nanna;Anna;anna@school.example;student", "Line 1"),
    "5,001 rows": (file_of(*MANY), "more than 5,000 lines"),
    "2 MB + 1 byte": (None, "larger than 2 MB"),
    "formula in a name": (file_of(good_line(1), "eve;=cmd|' /C calc'!A0;e@school.example;student;"),
                          "line:3"),
    "control character": (file_of("bell;Ring\x07Ring;bell@school.example;student;"), "line:2"),
    "bad username": (file_of("Bad Name!;Bad;bad@school.example;student;"), "line:2"),
    "duplicate in the file": (file_of(good_line(1), good_line(1)), "line:3"),
    "email of another account": (file_of("newbie;New;tina@school.example;student;"), "line:2"),
    "unknown course": (file_of(good_line(1) + "999999"), "line:2"),
    "bad email": (file_of("nomail;No Mail;not-an-address;student;"), "line:2"),
    "admin role": (file_of("boss;Boss;boss@school.example;admin;"), "line:2"),
}  # fmt: skip


@pytest.mark.parametrize("case", BROKEN)
def test_broken_files_are_422_name_the_line_and_store_nothing(
    client, login_as, admin, courses, case
):
    content, says = BROKEN[case]
    if content is None:
        body = (HEADER + "\n" + good_line(1) + "\n").encode()
        content = body + b"x" * (imports.MAX_BYTES + 1 - len(body))
    login_as(admin)
    before = snapshot()
    response = preview(client, content)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    if says.startswith("line:"):
        number = int(says.split(":")[1])
        assert (number, "error") in outcomes(page)
        assert re.search(
            rf'data-line="{number}" data-outcome="error">.*?Error:</strong> \w', page, re.S
        )
        assert 'name="confirm"' not in page
    else:
        assert says in page
    assert snapshot() == before


def test_one_bad_line_among_five_hundred_blocks_the_confirm(client, login_as, admin, app):
    login_as(admin)
    lines = [good_line(n) for n in range(500)]
    lines[321] = "broken;Broken;not-an-email;student;"
    content = HEADER + "\n" + "\n".join(lines)
    response = preview(client, content.encode())
    assert response.status_code == 422
    assert [o for o in outcomes(response.get_data(as_text=True)) if o[1] == "error"] == [
        (323, "error")
    ]
    # Even a confirm sent by hand for exactly that file is refused whole.
    with app.test_request_context():
        token = imports.sign(content, admin.id)
    forced = client.post_form(
        "/admin/import", {"confirm": token, "content": content}, content_type="multipart/form-data"
    )
    assert forced.status_code == 422
    assert db.session.scalar(select(func.count(User.id))) == 1
    tampered = client.post_form(
        "/admin/import",
        {"confirm": token, "content": content.replace("broken;", "okay;")},
        content_type="multipart/form-data",
    )
    assert tampered.status_code == 422 and "not previewed" in tampered.get_data(as_text=True)


def test_a_class_list_without_the_csrf_token_is_400(client, login_as, admin, courses):
    login_as(admin)
    data = {"file": (io.BytesIO(class_list(*[c.id for c in courses])), "class.csv")}
    response = client.post("/admin/import", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert db.session.scalar(select(func.count(User.id))) == 2


def test_only_admins_may_send_a_class_list(client, login_as, make_user, courses):
    login_as(make_user("tom", role="teacher"))
    response = preview(client, class_list(*[c.id for c in courses]))
    assert response.status_code == 403
    assert db.session.scalar(select(func.count(User.id))) == 2


def test_a_browser_sending_the_list_back_with_crlf_still_confirms(client, login_as, admin):
    login_as(admin)
    content = (HEADER + "\n" + good_line(1) + "\n" + good_line(2)).encode()  # LF only
    fields = confirm_fields(preview(client, content).get_data(as_text=True))
    fields["content"] = fields["content"].replace("\n", "\r\n")  # as a textarea is submitted
    done = client.post_form("/admin/import", fields, content_type="multipart/form-data")
    assert done.status_code == 200
    assert db.session.scalar(select(func.count(User.id))) == 3


def test_the_result_page_reads_the_new_accounts_in_a_fixed_number_of_queries(
    client, login_as, admin, count_queries
):
    login_as(admin)

    def selects_of_users(first: int, count: int) -> int:
        lines = [good_line(n) for n in range(first, first + count)]
        content = (HEADER + "\n" + "\n".join(lines)).encode()
        fields = confirm_fields(preview(client, content).get_data(as_text=True))
        with count_queries() as statements:
            done = client.post_form("/admin/import", fields, content_type="multipart/form-data")
        assert done.get_data(as_text=True).count("/auth/reset/") == count
        return sum(1 for s in statements if s.lstrip().startswith("SELECT") and "FROM users" in s)

    assert selects_of_users(100, 5) == selects_of_users(200, 40)
