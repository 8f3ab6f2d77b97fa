"""Who may open what, for every page: anonymous, student, teacher, admin."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import ChatRoom

ROLES = ["anonymous", "student", "teacher", "admin"]

# url -> status for each role, in the order of ROLES
PAGES = {
    "/": [200, 302, 302, 302],
    "/auth/login": [200, 302, 302, 302],
    "/auth/register": [200, 302, 302, 302],
    "/dashboard": [302, 200, 200, 200],
    "/profile": [302, 200, 200, 200],
    "/profile/edit": [302, 200, 200, 200],
    "/users/someone": [302, 200, 200, 200],
    "/healthz": [200, 200, 200, 200],
    "/courses": [200, 200, 200, 200],
    "/courses/new": [302, 403, 200, 200],
    "/courses/{course}": [200, 200, 200, 200],
    "/courses/{draft}": [404, 404, 404, 200],
    # The course's owner is another teacher: "teacher" here is someone else's colleague.
    "/courses/{course}/edit": [302, 403, 403, 200],
    "/courses/{course}/students": [302, 403, 403, 200],
    "/courses/{course}/students?format=csv": [302, 403, 403, 200],
    "/notifications": [302, 200, 200, 200],
    "/chat": [302, 200, 200, 200],
    # The owner's course room: none of these is its teacher or enrolled, admins included.
    "/chat/{room}": [302, 404, 404, 404],
    "/chat/{room}?before=999": [302, 404, 404, 404],
    "/search/courses?q=astronomy": [200, 200, 200, 200],
    "/search/users?q=o": [302, 403, 200, 200],
    "/search/users?course={course}": [302, 403, 403, 200],  # another teacher's course
}


@pytest.fixture(params=ROLES)
def role(request, make_user, make_course, login_as) -> str:
    make_user("someone")
    owner = make_user("owner", role="teacher")
    course = make_course(owner)
    request.node.courses = {
        "course": course.id,
        "draft": make_course(owner, published=False).id,
        "room": db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course.id)),
    }
    if request.param != "anonymous":
        login_as(make_user(f"my{request.param}", role=request.param))
    return request.param


@pytest.mark.parametrize("url", PAGES)
def test_page_access(request, client, role, url):
    response = client.get(url.format(**request.node.courses))
    assert response.status_code == PAGES[url][ROLES.index(role)]


def test_profile_edit_only_changes_my_own_account(client, make_user, login_as):
    other = make_user("other", full_name="Other Person")
    login_as(make_user("mallory"))
    client.post_form(
        "/profile/edit",
        {
            "full_name": "Hacked",
            "email": "mallory@school.example",
            "bio": "",
            "id": other.id,
            "username": "other",
        },
    )
    from app.extensions import db
    from app.models import User

    assert db.session.get(User, other.id).full_name == "Other Person"
    assert (
        db.session.scalar(db.select(User.full_name).where(User.username == "mallory")) == "Hacked"
    )


@pytest.mark.parametrize("url", ["/auth/logout", "/profile/edit", "/profile/password"])
def test_anonymous_posts_are_refused(client, url):
    response = client.post_form(url, {"full_name": "x", "email": "x@school.example"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


def test_admin_cannot_be_made_through_registration_even_with_the_teacher_code(app, client):
    app.config["TEACHER_SIGNUP_CODE"] = "the-code"
    response = client.post_form(
        "/auth/register",
        {
            "username": "sneaky",
            "email": "sneaky@school.example",
            "full_name": "Sneaky",
            "password": "a-long-fresh-secret",
            "password_confirm": "a-long-fresh-secret",
            "role": "admin",
            "teacher_code": "the-code",
        },
    )
    assert response.status_code == 422
