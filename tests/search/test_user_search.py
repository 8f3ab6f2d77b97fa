"""User search: teachers and admins find people by name, username and email, with filters."""

from __future__ import annotations

import pytest

from app import search
from app.blueprints.enrollments.services import enroll
from tests.search.helpers import marks, usernames


def find(client, q: str = "", **args) -> list[str]:
    return usernames(client.get("/search/users", query_string={"q": q, **args}))


@pytest.fixture
def teacher(make_user, login_as):
    user = make_user("tina", role="teacher", full_name="Tina Teacher")
    login_as(user)
    return user


def test_students_get_403_and_visitors_sign_in(client, make_user, login_as):
    response = client.get("/search/users?q=a")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    login_as(make_user("sam"))
    assert client.get("/search/users?q=a").status_code == 403


def test_admins_may_search(client, make_user, login_as):
    make_user("lena", full_name="Lena Fischer")
    login_as(make_user("root", role="admin"))
    assert find(client, "fischer") == ["lena"]


def test_name_username_and_email_match(client, make_user, teacher):
    make_user("lena.f", full_name="Lena Fischer", email="lf@north.example")
    make_user("noah", full_name="Noah Williams", email="noah.w@south.example")
    assert find(client, "fischer") == ["lena.f"]
    assert find(client, "lena.f") == ["lena.f"]
    assert find(client, "south") == ["noah"]
    assert find(client, "noah.w@south.example") == ["noah"]
    assert find(client, "wil") == ["noah"]  # prefix
    assert find(client, "wiliams") == ["noah"]  # one typo


def test_results_link_to_profiles_and_mark_matches(client, make_user, teacher):
    make_user("lena", full_name="Lena Fischer")
    response = client.get("/search/users?q=fisch")
    assert 'href="/users/lena"' in response.text
    assert marks(response) == ["Fischer"]


def test_role_filter(client, make_user, teacher):
    make_user("kim", full_name="Kim Student")
    make_user("kit", role="teacher", full_name="Kit Teacher")
    assert set(find(client, "ki")) == {"kim", "kit"}
    assert find(client, "ki", role="teacher") == ["kit"]
    assert set(find(client, "", role="teacher")) == {"kit", "tina"}
    assert set(find(client, "ki", role="nonsense")) == {"kim", "kit"}  # ignored


def test_course_filter(client, make_user, make_course, teacher):
    course = make_course(teacher, title="Geology")
    other = make_course(teacher, title="Botany")
    enroll(make_user("ann", full_name="Ann Alder"), course.id)
    enroll(make_user("abe", full_name="Abe Alder"), other.id)
    search.wait_for_all()  # an enrolment's answer does not wait for the index
    assert set(find(client, "alder")) == {"ann", "abe"}
    assert find(client, "alder", course=str(course.id)) == ["ann"]
    assert set(find(client, "", course=str(course.id))) == {"ann", "tina"}  # and who teaches it
    assert set(find(client, "alder", course="x1")) == {"ann", "abe"}  # not a number: ignored


def test_empty_search_asks_for_words(client, teacher):
    response = client.get("/search/users")
    assert response.status_code == 200 and usernames(response) == []
    assert "Type a name" in response.text


def test_a_teacher_narrows_people_to_their_own_courses_only(
    client, make_user, make_course, login_as, teacher
):
    """A roster is its teacher's (DESIGN.md): another teacher's course, or a draft of theirs,
    cannot be used to list its students; an admin may use any."""
    others = make_user("olga", role="teacher")
    theirs = make_course(others, title="Chemistry")
    draft = make_course(others, title="Secret plans", published=False)
    enroll(make_user("cleo", full_name="Cleo Chem"), theirs.id)
    search.wait_for_all()
    for course_id in (theirs.id, draft.id, 999_999):
        response = client.get("/search/users", query_string={"q": "", "course": str(course_id)})
        assert response.status_code == 403
        assert "cleo" not in response.text
    page = client.get("/search/users").text
    assert "Chemistry" not in page and "Secret plans" not in page  # not offered either
    client.post_form("/auth/logout")
    login_as(make_user("root", role="admin"))
    assert set(find(client, "", course=str(theirs.id))) == {"cleo", "olga"}
