"""The roster: who may see it, the waitlist in order, and a CSV safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
import re

import pytest

from app.blueprints.enrollments import services


@pytest.fixture
def course_with_students(make_user, make_course):
    owner = make_user("owner", role="teacher")
    course = make_course(owner, capacity=2)
    for name, full in (
        ("zoe", "Zoe Z"),
        ("adam", "Adam A"),
        ("wait1", "=HYPERLINK(1)"),
        ("wait2", "Bea B"),
    ):
        services.enroll(make_user(name, full_name=full), course.id)
    return owner, course


def usernames(html: str, table: str) -> list[str]:
    body = html.split(f'id="{table}"')[1].split("</table>")[0]
    return re.findall(r'data-username="([^"]+)"', body)


def test_owner_sees_enrolled_and_the_waitlist_in_order(client, login_as, course_with_students):
    owner, course = course_with_students
    login_as(owner)
    html = client.get(f"/courses/{course.id}/students").get_data(as_text=True)
    assert usernames(html, "roster") == ["adam", "zoe"]
    assert usernames(html, "waitlist") == ["wait1", "wait2"]


def test_roster_csv_is_quoted_and_guarded_against_formulas(client, login_as, course_with_students):
    owner, course = course_with_students
    login_as(owner)
    response = client.get(f"/courses/{course.id}/students?format=csv")
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == ["status", "position", "username", "full_name", "email", "since"]
    waiting = [row for row in table if row[0] == "waitlisted"]
    assert [row[1] for row in waiting] == ["1", "2"]
    assert waiting[0][3] == "'=HYPERLINK(1)"


@pytest.mark.parametrize(("who", "role", "status"), [
    ("sam", "student", 403), ("other", "teacher", 403), ("boss", "admin", 200),
])  # fmt: skip
def test_roster_permissions(client, make_user, login_as, course_with_students, who, role, status):
    _, course = course_with_students
    login_as(make_user(who, role=role))
    assert client.get(f"/courses/{course.id}/students").status_code == status
    assert client.get(f"/courses/{course.id}/students?format=csv").status_code == status


def test_roster_anonymous_and_draft(client, make_user, make_course, login_as):
    draft = make_course(make_user("owner", role="teacher"), published=False)
    assert client.get(f"/courses/{draft.id}/students").status_code == 302
    login_as(make_user("other", role="teacher"))
    assert client.get(f"/courses/{draft.id}/students").status_code == 404


def test_spreadsheet_guard():
    for risky in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx"):
        assert services.spreadsheet_safe(risky).startswith("'")
    assert services.spreadsheet_safe("Ada") == "Ada"
