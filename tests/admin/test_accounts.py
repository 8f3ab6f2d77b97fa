"""The admin pages for accounts: who may open them, the list, role changes, deactivation,
password links and the audit rows each change writes (DESIGN.md "Running the school")."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEvent, User
from app.models.audit import AuditLogIsAppendOnly
from tests.conftest import PASSWORD

ROLES = ["anonymous", "student", "teacher", "admin"]
GETS = {
    "/admin/users": [302, 403, 403, 200],
    "/admin/users?q=tar&role=student&status=active": [302, 403, 403, 200],
    "/admin/users/target": [302, 403, 403, 200],
    "/admin/users/nobody": [302, 403, 403, 404],
    "/admin/audit": [302, 403, 403, 200],
    "/admin/audit?format=csv": [302, 403, 403, 200],
}
POSTS = {
    "/admin/users/target/role": ({"role": "teacher"}, [302, 403, 403, 303]),
    "/admin/users/target/deactivate": ({}, [302, 403, 403, 303]),
    "/admin/users/target/reactivate": ({}, [302, 403, 403, 303]),
    "/admin/users/target/password-link": ({}, [302, 403, 403, 200]),
}


def audit_count() -> int:
    return db.session.scalar(select(func.count(AuditEvent.id)))


def state(username: str) -> tuple:
    user = db.session.scalar(select(User).where(User.username == username))
    return user.role, user.deactivated_at, user.session_version


@pytest.fixture
def admin(make_user):
    return make_user("ada", role="admin", full_name="Ada Admin")


@pytest.fixture(params=ROLES)
def role(request, make_user, login_as) -> str:
    make_user("target", full_name="Tara Target")
    make_user("head", role="admin")  # an admin other than the one signed in
    if request.param != "anonymous":
        login_as(make_user(f"my{request.param}", role=request.param))
    return request.param


@pytest.mark.parametrize("url", GETS)
def test_admin_pages_are_for_admins(client, role, url):
    response = client.get(url)
    assert response.status_code == GETS[url][ROLES.index(role)]
    if response.status_code == 302:
        assert response.headers["Location"].startswith("/auth/login")


@pytest.mark.parametrize("url", POSTS)
def test_admin_changes_are_for_admins_and_need_the_csrf_token(client, role, url):
    data, statuses = POSTS[url]
    before, audited = state("target"), audit_count()
    # Without the token: 400 for everyone, nothing changed.
    assert client.post(url, data=data).status_code == 400
    assert (state("target"), audit_count()) == (before, audited)
    response = client.post_form(url, data)
    assert response.status_code == statuses[ROLES.index(role)]
    if role != "admin":
        assert (state("target"), audit_count()) == (before, audited)


def test_the_list_finds_by_name_username_or_email_and_filters(client, login_as, admin, make_user):
    make_user("tara", full_name="Tara Okafor", email="t.okafor@school.example")
    make_user("tom", role="teacher", full_name="Tom Tailor")
    make_user("zed", full_name="Zed Zulu", email="zed@tarn.example")
    login_as(admin)

    def usernames(url: str) -> list[str]:
        return re.findall(r'<tr data-username="([^"]+)"', client.get(url).get_data(as_text=True))

    assert usernames("/admin/users?q=tar") == ["tara", "zed"]
    assert usernames("/admin/users?q=OKAFOR") == ["tara"]
    assert usernames("/admin/users?q=tarn") == ["zed"]
    assert usernames("/admin/users?role=teacher") == ["tom"]
    assert usernames("/admin/users?q=%25") == []  # a wildcard typed is a character
    client.post_form("/admin/users/zed/deactivate")
    page = client.get("/admin/users?status=deactivated").get_data(as_text=True)
    assert re.findall(r'data-username="([^"]+)" data-status="([^"]+)"', page) == [
        ("zed", "deactivated")
    ]
    assert "Zed Zulu (deactivated)" in page
    assert "zed" not in usernames("/admin/users?status=active")


def test_the_list_has_twenty_a_page_and_htmx_gets_only_the_list(client, login_as, admin):
    db.session.add_all(
        User(username=f"pupil{n:02}", email=f"p{n}@school.example", full_name=f"Pupil {n:02}",
             role="student", password_hash="!", bio="")
        for n in range(45)
    )  # fmt: skip
    db.session.commit()
    login_as(admin)
    first = client.get("/admin/users?role=student").get_data(as_text=True)
    assert first.count("<tr data-username=") == 20
    assert "page 1 of 3" in first
    partial = client.get("/admin/users?role=student&page=3", headers={"HX-Request": "true"})
    html = partial.get_data(as_text=True)
    assert html.strip().startswith('<section id="accounts"')
    assert html.count("<tr data-username=") == 5


def test_a_role_change_ends_the_sessions_and_is_audited(app, client, login_as, admin, make_user):
    sam = make_user("sam")
    other = app.test_client()
    other.post_form("/auth/login", {"login": "sam", "password": PASSWORD})
    assert other.get("/dashboard").status_code == 200
    login_as(admin)
    response = client.post_form("/admin/users/sam/role", {"role": "teacher"})
    assert response.status_code == 303
    assert state("sam")[0] == "teacher"
    assert other.get("/dashboard").status_code == 302  # signed out
    event = db.session.scalar(select(AuditEvent))
    assert (event.actor, event.action, event.subject, event.details) == (
        "ada",
        "role_changed",
        sam.username,
        "student → teacher",
    )


def test_a_bad_role_is_422_and_changes_nothing(client, login_as, admin, make_user):
    make_user("sam")
    login_as(admin)
    response = client.post_form("/admin/users/sam/role", {"role": "overlord"})
    assert response.status_code == 422
    assert "Choose student, teacher or admin" in response.get_data(as_text=True)
    assert state("sam")[0] == "student" and audit_count() == 0


def test_the_last_active_admin_keeps_the_role(client, login_as, admin):
    login_as(admin)
    response = client.post_form("/admin/users/ada/role", {"role": "teacher"})
    assert response.status_code == 422
    assert "last active admin" in response.get_data(as_text=True)
    assert state("ada")[0] == "admin" and audit_count() == 0


def test_an_admin_cannot_deactivate_themself(client, login_as, admin, make_user):
    make_user("head", role="admin")
    login_as(admin)
    response = client.post_form("/admin/users/ada/deactivate")
    assert response.status_code == 422
    assert "your own account" in response.get_data(as_text=True)
    assert state("ada")[1] is None


def test_a_teacher_with_courses_stays_a_teacher_until_they_are_handed_over(
    client, login_as, admin, make_user, make_course
):
    tina = make_user("tina", role="teacher")
    make_course(tina, title="Geography")
    login_as(admin)
    response = client.post_form("/admin/users/tina/role", {"role": "student"})
    assert response.status_code == 422
    assert "still teaches Geography" in response.get_data(as_text=True)
    assert state("tina")[0] == "teacher"


def test_deactivation_signs_out_and_keeps_out_until_reactivated(
    app, client, login_as, admin, make_user
):
    make_user("sam", full_name="Sam Student")
    captured = app.test_client()
    captured.post_form("/auth/login", {"login": "sam", "password": PASSWORD, "remember": "y"})
    cookies = {cookie.key: cookie.value for cookie in captured._cookies.values()}
    assert "remember_token" in cookies
    login_as(admin)
    assert client.post_form("/admin/users/sam/deactivate").status_code == 303
    # The captured session and remember cookies open nothing.
    replay = app.test_client()
    for name, value in cookies.items():
        replay.set_cookie(name, value)
    assert replay.get("/dashboard").status_code == 302
    page = client.get("/admin/users/sam").get_data(as_text=True)
    assert "Sam Student (deactivated)" in page and 'data-status="deactivated"' in page
    assert client.post_form("/admin/users/sam/reactivate").status_code == 303
    assert state("sam")[1] is None
    actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    assert actions == ["deactivated", "reactivated"]


def test_a_password_link_is_shown_once_sets_the_password_and_signs_nobody_in(
    app, client, login_as, admin, make_user
):
    make_user("sam")
    login_as(admin)
    page = client.post_form("/admin/users/sam/password-link").get_data(as_text=True)
    url = re.search(r'id="password-link" type="text" readonly value="([^"]+)"', page).group(1)
    path = url.split("://", 1)[1].split("/", 1)[1]
    assert 'id="password-link"' not in client.get("/admin/users/sam").get_data(as_text=True)
    visitor = app.test_client()
    assert visitor.get(f"/{path}").status_code == 200
    token = visitor.csrf_token()
    # A refused password does not use the link up.
    weak = {"new_password": "password123", "new_password_confirm": "password123"}
    assert visitor.post(f"/{path}", data={**weak, "csrf_token": token}).status_code == 422
    good = {"new_password": "A-new-pass-2026", "new_password_confirm": "A-new-pass-2026"}
    response = visitor.post(f"/{path}", data={**good, "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == "/auth/login"
    assert visitor.get("/dashboard").status_code == 302  # nobody signed in
    assert visitor.get(f"/{path}").status_code == 410  # used: dead
    assert visitor.post_form("/auth/login", {"login": "sam", "password": "A-new-pass-2026"})
    assert db.session.scalar(select(AuditEvent.action)) == "password_link"


def test_forged_and_expired_links_are_410(app, client, login_as, admin, make_user, monkeypatch):
    from app.blueprints.auth import links

    sam = make_user("sam")
    assert client.get("/auth/reset/not-a-token").status_code == 410
    with app.test_request_context():
        token = links.make_token(sam, "admin")
        reset_token = links.make_token(sam, "reset")
    assert client.get(f"/auth/reset/{token}").status_code == 200
    import itsdangerous.timed

    later = itsdangerous.timed.time.time() + 31 * 60
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: later)
    assert client.get(f"/auth/reset/{reset_token}").status_code == 410  # 30 minutes
    assert client.get(f"/auth/reset/{token}").status_code == 200  # 72 hours
    later += 72 * 3600
    assert client.get(f"/auth/reset/{token}").status_code == 410


def test_audit_rows_cannot_be_changed_or_deleted(client, login_as, admin, make_user):
    make_user("sam")
    login_as(admin)
    client.post_form("/admin/users/sam/deactivate")
    event = db.session.scalar(select(AuditEvent))
    event.details = "nothing happened"
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.commit()
    db.session.rollback()
    db.session.delete(db.session.scalar(select(AuditEvent)))
    with pytest.raises(AuditLogIsAppendOnly):
        db.session.commit()
    db.session.rollback()
    assert audit_count() == 1


def test_the_audit_log_lists_newest_first_and_downloads_as_csv(client, login_as, admin, make_user):
    make_user("sam", full_name="=cmd|' /C calc'!A0")
    login_as(admin)
    client.post_form("/admin/users/sam/deactivate")
    client.post_form("/admin/users/sam/reactivate")
    page = client.get("/admin/audit").get_data(as_text=True)
    assert re.findall(r'data-action="([^"]+)"', page) == ["reactivated", "deactivated"]
    csv = client.get("/admin/audit?format=csv")
    assert csv.mimetype == "text/csv"
    lines = csv.get_data(as_text=True).splitlines()
    assert lines[0] == "when,who,action,subject,course_id,details"
    assert [line.split(",")[2] for line in lines[1:]] == ["reactivated", "deactivated"]


def test_a_deactivated_name_says_so_where_others_see_it(
    client, login_as, admin, make_user, make_course
):
    from app.blueprints.chat.services import course_room_id
    from app.blueprints.enrollments.services import enroll
    from app.models import ChatMessage

    tina = make_user("tina", role="teacher", full_name="Tina Teacher")
    course = make_course(tina, title="Geography")
    sam = make_user("sam", full_name="Sam Student")
    enroll(sam, course.id)
    room_id = course_room_id(course.id)
    db.session.add(ChatMessage(room_id=room_id, author_id=tina.id, body="Welcome"))
    db.session.commit()
    login_as(admin)
    client.post_form("/admin/users/tina/deactivate")
    client.post_form("/auth/logout")
    login_as(sam)
    client.post_form("/auth/logout")
    login_as(admin)
    people = client.get("/search/users?q=tina").get_data(as_text=True)
    assert re.search(r'data-username="tina">\s*<a [^>]+>.*?\(deactivated\)</a>', people)
    courses = client.get("/search/courses?q=geography").get_data(as_text=True)
    assert "Tina Teacher (deactivated)" in courses
    client.post_form("/auth/logout")
    login_as(sam)
    for url in (f"/courses/{course.id}", f"/chat/{room_id}", "/courses"):
        assert "Tina Teacher (deactivated)" in client.get(url).get_data(as_text=True), url


def test_a_deactivated_account_is_told_so_only_with_the_right_password(
    client, login_as, admin, make_user
):
    make_user("sam")
    login_as(admin)
    client.post_form("/admin/users/sam/deactivate")
    client.post_form("/auth/logout")
    right = client.post_form("/auth/login", {"login": "sam", "password": PASSWORD})
    assert right.status_code == 422 and "deactivated" in right.get_data(as_text=True)
    wrong = client.post_form("/auth/login", {"login": "sam", "password": "not-the-password"})
    assert wrong.status_code == 422 and "deactivated" not in wrong.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302


def test_the_account_page_shows_the_last_sign_in(app, client, login_as, admin, make_user):
    make_user("sam")
    login_as(admin)
    assert "Never" in client.get("/admin/users/sam").get_data(as_text=True)
    app.test_client().post_form("/auth/login", {"login": "sam", "password": PASSWORD})
    page = client.get("/admin/users/sam").get_data(as_text=True)
    assert "<dt>Last sign-in</dt><dd>Never" not in page
    assert db.session.scalar(select(User.last_sign_in_at).where(User.username == "sam"))
