"""Courses: creating, editing, drafts, the catalogue and the course page."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Course
from tests.helpers import field_error

GOOD = {
    "title": "Marine Biology",
    "description": "Life in the oceans.\r\nTide pools, reefs and the deep sea.",
    "keywords": " Biology, OCEANS ,, biology , reefs",
    "capacity": "25",
    "published": "y",
}


def course_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Course))


@pytest.fixture
def teacher(make_user, login_as):
    user = make_user("tina", role="teacher", full_name="Tina Teacher")
    login_as(user)
    return user


def test_teacher_creates_a_course(client, teacher):
    response = client.post_form("/courses", GOOD)
    course = db.session.scalar(select(Course))
    assert response.status_code == 303
    assert response.headers["Location"] == f"/courses/{course.id}"
    assert (course.title, course.capacity, course.published) == ("Marine Biology", 25, True)
    assert course.keywords == "biology, oceans, reefs"
    assert course.description == "Life in the oceans.\nTide pools, reefs and the deep sea."
    page = client.get(f"/courses/{course.id}").get_data(as_text=True)
    assert 'data-seats-left="25"' in page and "Tina Teacher" in page


def test_empty_capacity_means_unlimited(client, teacher):
    client.post_form("/courses", GOOD | {"capacity": ""})
    course = db.session.scalar(select(Course))
    assert course.capacity is None
    assert "data-seats-left" not in client.get(f"/courses/{course.id}").get_data(as_text=True)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "ab"}, "title"),
        ({"title": "x" * 121}, "title"),
        ({"title": "Nul\x00byte"}, "title"),
        ({"title": "Marine \u202eygoloiB"}, "title"),
        ({"title": "Marine\u200b Biology"}, "title"),
        ({"description": "Life in the \u2066oceans\u2069."}, "description"),
        ({"description": "d" * 10_001}, "description"),
        ({"capacity": "0"}, "capacity"),
        ({"capacity": "-1"}, "capacity"),
        ({"capacity": "ten"}, "capacity"),
        ({"capacity": "10001"}, "capacity"),
        ({"capacity": "3.5"}, "capacity"),
        ({"capacity": "²"}, "capacity"),  # a digit to str.isdigit, not to int()
        ({"keywords": ", ".join(f"word{n}" for n in range(21))}, "keywords"),
        ({"keywords": "k" * 41}, "keywords"),
    ],
)
def test_bad_course_input_is_422_and_stores_nothing(client, teacher, changes, field):
    response = client.post_form("/courses", GOOD | changes)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), field)
    assert course_count() == 0


def test_html_in_a_description_is_shown_as_text(client, teacher):
    client.post_form("/courses", GOOD | {"description": "<script>alert(1)</script><b>bold</b>"})
    course = db.session.scalar(select(Course))
    page = client.get(f"/courses/{course.id}").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page


def test_students_cannot_create_courses(client, make_user, login_as):
    login_as(make_user("sam"))
    assert client.get("/courses/new").status_code == 403
    assert client.post_form("/courses", GOOD).status_code == 403
    assert course_count() == 0


def test_anonymous_cannot_create_courses(client):
    assert client.get("/courses/new").status_code == 302
    assert client.post_form("/courses", GOOD).status_code == 302
    assert course_count() == 0


def test_drafts_are_visible_only_to_their_owner_and_admins(
    client, make_user, make_course, login_as
):
    owner = make_user("owner", role="teacher")
    draft = make_course(owner, published=False, title="Secret Plans")
    url = f"/courses/{draft.id}"
    assert client.get(url).status_code == 404
    for who, status in (("sam", 404), ("other", 404), ("boss", 200), ("owner", 200)):
        role = {"sam": "student", "other": "teacher", "boss": "admin"}.get(who)
        user = owner if who == "owner" else make_user(who, role=role)
        login_as(user)
        assert client.get(url).status_code == status, who
        assert ("Secret Plans" in client.get("/courses").get_data(as_text=True)) is False
        client.post_form("/auth/logout")


def test_edit_permissions(client, make_user, make_course, login_as):
    owner = make_user("owner", role="teacher")
    course = make_course(owner, title="Algebra")
    url = f"/courses/{course.id}/edit"
    change = GOOD | {"title": "Hacked"}
    cases = [("anon", None, 302), ("sam", "student", 403), ("other", "teacher", 403)]
    for name, role, status in cases:
        if role:
            login_as(make_user(name, role=role))
        assert client.get(url).status_code == status, name
        assert client.post_form(url, change).status_code == status, name
        assert db.session.get(Course, course.id).title == "Algebra"
        client.post_form("/auth/logout") if role else None
    login_as(make_user("boss", role="admin"))
    assert client.post_form(url, GOOD | {"title": "Algebra I"}).status_code == 303
    client.post_form("/auth/logout")
    login_as(owner)
    assert client.post_form(url, GOOD | {"title": "Algebra II"}).status_code == 303
    assert db.session.get(Course, course.id).title == "Algebra II"


def test_editing_a_missing_or_foreign_draft_is_404(client, make_user, make_course, login_as):
    draft = make_course(make_user("owner", role="teacher"), published=False)
    login_as(make_user("other", role="teacher"))
    assert client.get(f"/courses/{draft.id}/edit").status_code == 404
    assert client.get("/courses/99999/edit").status_code == 404
    assert client.get("/courses/99999").status_code == 404


def test_catalogue_lists_published_courses_newest_first_20_a_page(client, make_user, make_course):
    teacher = make_user("t", role="teacher")
    for n in range(25):
        make_course(teacher, title=f"Course {n:02}")
    make_course(teacher, title="Hidden draft", published=False)
    first = client.get("/courses").get_data(as_text=True)
    assert first.count("data-course-id=") == 20
    assert first.index("Course 24") < first.index("Course 23")
    assert "Hidden draft" not in first
    second = client.get("/courses?page=2").get_data(as_text=True)
    assert second.count("data-course-id=") == 5 and "Course 00" in second
    for odd in ("0", "-1", "x", "99999999999"):
        assert client.get(f"/courses?page={odd}").status_code == 200


def test_catalogue_paging_through_htmx_answers_the_list_alone(client, make_user, make_course):
    teacher = make_user("t", role="teacher")
    for n in range(21):
        make_course(teacher, title=f"Course {n:02}")
    response = client.get("/courses?page=2", headers={"HX-Request": "true"})
    html = response.get_data(as_text=True)
    assert "<html" not in html and 'id="course-list"' in html and html.count("data-course-id=") == 1
    assert "HX-Request" in response.headers["Vary"]


def test_catalogue_runs_the_same_queries_for_5_or_45_courses(
    client, make_user, make_course, count_queries, login_as
):
    teacher = make_user("t", role="teacher")
    login_as(make_user("sam"))
    client.get("/dashboard")  # the signed-in person is kept from here on
    counts = []
    for batch in (5, 40):
        for n in range(batch):
            make_course(teacher, title=f"Course {n:03}", capacity=30)
        for _ in range(2):  # the first renders the list (new courses), the second reuses it
            with count_queries() as statements:
                assert client.get("/courses").status_code == 200
            counts.append(len(statements))
    # Rendering: the list's versions, its count and its page (with the teacher, seats and
    # ratings); reused: only the versions (none on SQLite or with Redis: not through the
    # session).
    assert counts[0] == counts[2] <= 6 and counts[1] == counts[3] <= counts[0] - 2, counts


def test_lowering_capacity_below_the_enrolled_is_refused(client, make_user, make_course, login_as):
    from app.blueprints.enrollments import services as enrolment

    owner = make_user("owner", role="teacher")
    course = make_course(owner, capacity=10)
    for n in range(3):
        enrolment.enroll(make_user(f"s{n}"), course.id)
    login_as(owner)
    response = client.post_form(f"/courses/{course.id}/edit", GOOD | {"capacity": "2"})
    assert response.status_code == 422
    assert "3 students are enrolled" in field_error(response.get_data(as_text=True), "capacity")
    assert db.session.get(Course, course.id).capacity == 10
