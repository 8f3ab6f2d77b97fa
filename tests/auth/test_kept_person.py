"""The signed-in person (their row and unread count) is kept in each worker's memory between
their requests (app/fragments.py). Every change to them counts at their next request on any
worker: here two app instances over one database, each with its own memory, as two gunicorn
workers are (with Redis in CI's second pass, the database otherwise)."""

from __future__ import annotations

import re

from flask import Flask

from app.blueprints.courses import lifecycle
from app.blueprints.enrollments import services as enrolment
from app.blueprints.notifications.services import notify
from app.extensions import db
from tests.conftest import PASSWORD, CampusClient, signed_in

NEW_PASSWORD = "a-new-password-2026"


def both(app: Flask, other_worker: Flask, user) -> tuple[CampusClient, CampusClient]:
    """The person signed in on each worker, each worker's memory holding them by now."""
    clients = signed_in(app, user), signed_in(other_worker, user)
    for client in clients:
        for _ in range(2):
            assert client.get("/dashboard").status_code == 200
    return clients


def badge(client: CampusClient) -> str:
    html = client.get("/dashboard").get_data(as_text=True)
    return re.search(r'id="notification-count"[^>]*>(\d+)<', html).group(1)


def signed_out(client: CampusClient) -> bool:
    response = client.get("/dashboard")
    return response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_a_deactivated_person_is_signed_out_on_every_worker_at_once(app, other_worker, make_user):
    sam = make_user("sam")
    here, there = both(app, other_worker, sam)
    admin = signed_in(app, make_user("ada", role="admin"))
    assert admin.post_form("/admin/users/sam/deactivate").status_code == 303
    assert signed_out(here) and signed_out(there)


def test_a_new_password_ends_the_persons_other_sessions_on_every_worker(
    app, other_worker, make_user
):
    sam = make_user("sam")
    here, there = both(app, other_worker, sam)
    form = {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password_confirm": NEW_PASSWORD,
    }
    assert here.post_form("/profile/password", form).status_code == 303
    assert here.get("/dashboard").status_code == 200  # this session carries on
    assert signed_out(there)
    assert signed_in(other_worker, sam, NEW_PASSWORD).get("/dashboard").status_code == 200


def test_a_role_change_counts_on_every_worker(app, other_worker, make_user):
    tina = make_user("tina", role="teacher")
    teacher_here, _ = both(app, other_worker, tina)
    admin = signed_in(other_worker, make_user("ada", role="admin"))
    assert admin.post_form("/admin/users/tina/role", {"role": "student"}).status_code == 303
    assert signed_out(teacher_here)  # a role change ends the sessions
    student_again = signed_in(app, tina)
    assert student_again.get("/courses/new").status_code == 403


def test_a_profile_edit_shows_on_the_other_worker(app, other_worker, make_user):
    sam = make_user("sam", full_name="Sam Stone")
    here, there = both(app, other_worker, sam)
    assert "Sam Stone" in there.get("/profile").get_data(as_text=True)
    form = {"full_name": "Sam Rivers", "email": sam.email, "bio": "", "timezone": "Asia/Tokyo"}
    assert here.post_form("/profile/edit", form).status_code == 303
    page = there.get("/profile").get_data(as_text=True)
    assert "Sam Rivers" in page and "Sam Stone" not in page


def test_the_unread_count_follows_notifications_on_every_worker(
    app, other_worker, make_user, make_course
):
    sam = make_user("sam")
    here, there = both(app, other_worker, sam)
    assert [badge(here), badge(there)] == ["0", "0"]
    notify([sam.id], "course_changed", "“Tide Pools” moved to Tuesdays.", "/dashboard")
    db.session.commit()
    assert [badge(here), badge(there)] == ["1", "1"]
    assert here.post_form("/notifications/read-all").status_code == 303
    assert [badge(here), badge(there)] == ["0", "0"]


def test_the_unread_count_drops_on_every_worker_when_a_course_takes_its_notifications(
    app, other_worker, make_user, make_course
):
    """A deleted course takes the notifications that lead into it; its teacher's badge counts
    again on both workers though nothing was sent to them."""
    tina = make_user("tina", role="teacher")
    course = make_course(tina, title="Tide Pools", published=False)
    notify([tina.id], "feedback_new", "A new rating.", f"/courses/{course.id}/feedback")
    db.session.commit()
    here, there = both(app, other_worker, tina)
    assert [badge(here), badge(there)] == ["1", "1"]
    lifecycle.delete(make_user("ada", role="admin"), course.id, "Tide Pools")
    assert [badge(here), badge(there)] == ["0", "0"]


def test_a_kept_person_and_place_cost_a_signed_in_course_page_no_statement(
    app, make_user, make_course, count_queries
):
    """The second look at a course page runs no SQL statement at all when the versions are
    read without the database's session (Redis, or SQLite's own connection); the place still
    moves with the student's own enrolment."""
    course = make_course(title="Tide Pools")
    sam = make_user("sam")
    client = signed_in(app, sam)
    path = f"/courses/{course.id}"
    assert 'data-enrollment="none"' in client.get(path).get_data(as_text=True)
    fragments = app.extensions["campus.fragments"]
    with count_queries() as statements:
        page = client.get(path).get_data(as_text=True)
    assert 'data-enrollment="none"' in page
    through_session = fragments.redis is None and fragments.sqlite is None
    assert len(statements) == (1 if through_session else 0), statements
    enrolment.enroll(sam, course.id)
    assert 'data-enrollment="enrolled"' in client.get(path).get_data(as_text=True)


def test_a_signed_in_page_is_kept_per_person_with_their_own_token(
    app, other_worker, make_user, make_course
):
    """The catalogue and a course page are kept whole for each signed-in person too: the kept
    page carries this request's token (its enrol form works), each person sees their own
    navigation, and a change to the person (their zone, their unread count) shows on the next
    request on either worker."""
    course = make_course(title="Tide Pools")
    sam, ann = make_user("sam"), make_user("ann")
    path = f"/courses/{course.id}"
    here, there = both(app, other_worker, sam)
    pages = [here.get(path).text for _ in range(3)]
    assert all("csrf-placeholder" not in page for page in pages)
    (token,) = set(re.findall(r'name="csrf_token" value="([^"]+)"', pages[2]))  # sign out, enrol
    response = here.post(f"{path}/enroll", data={"csrf_token": token})
    assert response.status_code == 303
    assert 'data-enrollment="enrolled"' in there.get(path).text
    ann_page = signed_in(app, ann).get(path).text
    assert ">ann</a>" in ann_page and ">sam</a>" not in ann_page
    assert 'data-enrollment="none"' in ann_page

    form = {"full_name": "Sam", "email": sam.email, "bio": "", "timezone": "Asia/Tokyo"}
    assert all('data-time-zone="UTC"' in client.get(path).text for client in (here, there))
    assert here.post_form("/profile/edit", form).status_code == 303
    assert all('data-time-zone="Asia/Tokyo"' in client.get(path).text for client in (here, there))
    notify([sam.id], "course_changed", "“Tide Pools” moved to Tuesdays.", path)
    db.session.commit()
    for client in (here, there):
        for page in (path, "/courses"):
            html = client.get(page).text
            assert re.search(r'id="notification-count"[^>]*>1<', html), page


def test_a_signed_in_page_is_not_kept_for_an_ended_session(app, make_user, make_course):
    course = make_course(title="Tide Pools")
    sam = make_user("sam")
    client = signed_in(app, sam)
    path = f"/courses/{course.id}"
    assert all(">sam</a>" in client.get(path).text for _ in range(2))
    sam.end_sessions()
    db.session.commit()
    page = client.get(path).text
    assert ">sam</a>" not in page and "Sign in" in page  # read as a visitor, not as Sam
