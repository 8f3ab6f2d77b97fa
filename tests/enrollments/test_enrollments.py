"""Enrolling and withdrawing: capacity, the waitlist in order, promotion with a notification,
one row per student, and who may do what."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.blueprints.enrollments import services
from app.errors import NotAllowed, NotFound
from app.extensions import db
from app.models import Enrollment, Notification


def rows(course_id: int) -> list[tuple[str, str]]:
    query = (
        select(Enrollment.student_id, Enrollment.status)
        .where(Enrollment.course_id == course_id)
        .order_by(Enrollment.id)
    )
    return [(str(student), status) for student, status in db.session.execute(query)]


def test_full_course_puts_students_on_the_waitlist_in_order(make_user, make_course):
    course = make_course(capacity=2)
    students = [make_user(f"s{n}") for n in range(5)]
    outcomes = [services.enroll(student, course.id) for student in students]
    assert [o.place.status for o in outcomes] == ["enrolled"] * 2 + ["waitlisted"] * 3
    assert [o.place.position for o in outcomes[2:]] == [1, 2, 3]
    assert "number 2 on the waitlist" in outcomes[3].message


def test_withdrawal_promotes_the_first_waiting_and_notifies_them(make_user, make_course):
    course = make_course(capacity=1, title="Pottery")
    first, second, third = (make_user(name) for name in ("first", "second", "third"))
    for student in (first, second, third):
        services.enroll(student, course.id)

    services.withdraw(first, course.id)

    assert services.place_of(second, course.id).status == "enrolled"
    assert services.place_of(third, course.id).position == 1
    notes = db.session.scalars(select(Notification)).all()
    assert [(n.user_id, n.kind) for n in notes] == [(second.id, "waitlist_promoted")]
    assert "Pottery" in notes[0].text and notes[0].link == f"/courses/{course.id}"


def test_leaving_the_waitlist_promotes_nobody(make_user, make_course):
    course = make_course(capacity=1)
    a, b, c = (make_user(name) for name in "abc")
    for student in (a, b, c):
        services.enroll(student, course.id)
    services.withdraw(b, course.id)
    assert services.place_of(a, course.id).status == "enrolled"
    assert services.place_of(c, course.id).position == 1
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0


def test_raising_capacity_fills_seats_from_the_waitlist(make_user, make_course):
    from app.blueprints.courses import services as courses

    teacher = make_user("t", role="teacher")
    course = make_course(teacher, capacity=1)
    students = [make_user(f"s{n}") for n in range(4)]
    for student in students:
        services.enroll(student, course.id)
    draft = courses.CourseDraft(course.title, "", [], 3, True)
    courses.update(teacher, course.id, draft)
    assert [services.place_of(s, course.id).status for s in students] == [
        "enrolled", "enrolled", "enrolled", "waitlisted",
    ]  # fmt: skip
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 2


def test_enrolling_twice_leaves_one_row(make_user, make_course):
    course = make_course(capacity=5)
    student = make_user("sam")
    services.enroll(student, course.id)
    again = services.enroll(student, course.id)
    assert again.changed is False and again.message == "You are already enrolled."
    assert len(rows(course.id)) == 1


def test_only_students_enrol(make_user, make_course):
    course = make_course()
    for role in ("teacher", "admin"):
        with pytest.raises(NotAllowed):
            services.enroll(make_user(f"a{role}", role=role), course.id)
    assert rows(course.id) == []


def test_drafts_and_missing_courses_cannot_be_joined(make_user, make_course):
    draft = make_course(published=False)
    student = make_user("sam")
    with pytest.raises(NotFound):
        services.enroll(student, draft.id)
    with pytest.raises(NotFound):
        services.enroll(student, 424242)
    assert rows(draft.id) == []


def test_concurrent_double_click_leaves_one_row(app, make_user, make_course):
    course = make_course(capacity=5)
    student_id = make_user("sam").id
    results = []

    def click() -> None:
        with app.app_context():
            from app.models import User

            results.append(services.enroll(db.session.get(User, student_id), course.id).changed)

    threads = [threading.Thread(target=click) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]
    assert len(rows(course.id)) == 1


# Routes -------------------------------------------------------------------------------------


def test_enrol_and_withdraw_through_the_page(client, make_user, make_course, login_as):
    course = make_course(capacity=3)
    login_as(make_user("sam"))
    response = client.post_form(f"/courses/{course.id}/enroll")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/courses/{course.id}"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'data-enrollment="enrolled"' in page and 'data-seats-left="2"' in page
    assert "You are enrolled in" in page

    again = client.post_form(f"/courses/{course.id}/enroll")
    assert again.status_code == 303
    assert "already enrolled" in client.get(again.headers["Location"]).get_data(as_text=True)

    client.post_form(f"/courses/{course.id}/withdraw")
    page = client.get(f"/courses/{course.id}").get_data(as_text=True)
    assert 'data-enrollment="none"' in page and 'data-seats-left="3"' in page


def test_htmx_enrol_answers_the_enrolment_part_alone(client, make_user, make_course, login_as):
    course = make_course(capacity=1)
    make_user("first")
    services.enroll(make_user("ahead"), course.id)
    login_as(make_user("sam"))
    response = client.post(
        f"/courses/{course.id}/enroll",
        headers={"HX-Request": "true", "X-CSRFToken": client.csrf_token()},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<html" not in html and 'id="enrollment"' in html
    assert 'data-enrollment="waitlisted"' in html and 'data-waitlist-position="1"' in html
    assert 'hx-swap-oob="innerHTML:#flashes"' in html


@pytest.mark.parametrize("action", ["enroll", "withdraw"])
def test_enrol_permissions(client, make_user, make_course, login_as, action):
    owner = make_user("owner", role="teacher")
    course = make_course(owner)
    url = f"/courses/{course.id}/{action}"
    assert client.post_form(url).status_code == 302  # anonymous: to the sign-in page
    for user, status in ((owner, 403), (make_user("other", role="teacher"), 403),
                         (make_user("boss", role="admin"), 403)):  # fmt: skip
        login_as(user)
        assert client.post_form(url).status_code == status
        client.post_form("/auth/logout")
    assert rows(course.id) == []


def test_enrolling_in_a_draft_or_missing_course_is_404(client, make_user, make_course, login_as):
    draft = make_course(published=False)
    login_as(make_user("sam"))
    assert client.post_form(f"/courses/{draft.id}/enroll").status_code == 404
    assert client.post_form("/courses/424242/enroll").status_code == 404
    assert rows(draft.id) == []


def test_course_page_shows_the_waitlist_position(client, make_user, make_course, login_as):
    course = make_course(capacity=1)
    services.enroll(make_user("first"), course.id)
    sam = make_user("sam")
    services.enroll(sam, course.id)
    login_as(sam)
    page = client.get(f"/courses/{course.id}").get_data(as_text=True)
    assert 'data-enrollment="waitlisted"' in page and 'data-waitlist-position="1"' in page
    assert 'data-seats-left="0"' in page and "Leave the waitlist" in page
