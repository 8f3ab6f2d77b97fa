"""Feedback: who may rate, one entry each, the summary and chart, replies and notifications."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.blueprints.enrollments.services import enroll, withdraw
from app.blueprints.feedback import services
from app.extensions import db
from app.models import Feedback, Notification, User
from tests.helpers import field_error


def entries() -> list[tuple[int, str]]:
    return db.session.execute(select(Feedback.rating, Feedback.comment)).all()


@pytest.fixture
def course(make_user, make_course):
    return make_course(make_user("tina", role="teacher", full_name="Tina Teacher"), capacity=10)


@pytest.fixture
def student(make_user, course):
    sam = make_user("sam", full_name="Sam Student")
    enroll(sam, course.id)
    return sam


def test_enrolled_student_rates_and_a_second_post_updates(client, login_as, course, student):
    login_as(student)
    url = f"/courses/{course.id}/feedback"
    first = client.post_form(url, {"rating": "4", "comment": "Good pace."})
    assert first.status_code == 303 and first.headers["Location"] == url
    assert "your feedback is saved" in client.get(url).get_data(as_text=True)
    second = client.post_form(url, {"rating": "5", "comment": "Even better now."})
    assert second.status_code == 303
    assert "Your feedback is updated" in client.get(url).get_data(as_text=True)
    assert entries() == [(5, "Even better now.")]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"rating": "0"}, "rating"),
        ({"rating": "6"}, "rating"),
        ({"rating": "five"}, "rating"),
        ({"rating": "3.5"}, "rating"),
        ({}, "rating"),
        ({"rating": "3", "comment": "c" * 2001}, "comment"),
        ({"rating": "3", "comment": "nul\x00"}, "comment"),
    ],
)
def test_bad_feedback_is_422_and_stores_nothing(client, login_as, course, student, data, field):
    login_as(student)
    response = client.post_form(f"/courses/{course.id}/feedback", data)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert field_error(html, field) or "Choose a rating from 1 to 5 stars." in html
    assert entries() == []


def test_who_may_not_rate(client, make_user, login_as, course, student):
    outsider = make_user("outsider")
    quitter = make_user("quitter")
    enroll(quitter, course.id)
    withdraw(quitter, course.id)
    teacher = db.session.scalar(select(User).where(User.username == "tina"))
    cases = [
        outsider,
        quitter,
        teacher,
        make_user("other", role="teacher"),
        make_user("boss", role="admin"),
    ]
    for user in cases:
        login_as(user)
        response = client.post_form(f"/courses/{course.id}/feedback", {"rating": "5"})
        assert response.status_code == 403, user.username
        client.post_form("/auth/logout")
    assert entries() == []


def test_waitlisted_student_may_not_rate(client, make_user, make_course, login_as):
    course = make_course(capacity=1)
    enroll(make_user("first"), course.id)
    waiting = make_user("waiting")
    enroll(waiting, course.id)
    login_as(waiting)
    assert client.post_form(f"/courses/{course.id}/feedback", {"rating": "5"}).status_code == 403


def test_reading_needs_signing_in_and_drafts_stay_hidden(
    client, make_user, make_course, login_as, course
):
    assert client.get(f"/courses/{course.id}/feedback").status_code == 302
    draft = make_course(published=False)
    login_as(make_user("reader"))
    assert client.get(f"/courses/{course.id}/feedback").status_code == 200
    assert client.get(f"/courses/{draft.id}/feedback").status_code == 404
    assert client.get("/courses/99999/feedback").status_code == 404


def test_summary_chart_and_sorting(client, make_user, login_as, course):
    for n, stars in enumerate([5, 5, 4, 1]):
        user = make_user(f"s{n}", full_name=f"Student {n}")
        enroll(user, course.id)
        services.save(user, course.id, stars, f"comment {n}")
    login_as(make_user("reader"))
    html = client.get(f"/courses/{course.id}/feedback").get_data(as_text=True)
    assert 'data-average-rating="3.8"' in html and 'data-rating-count="4"' in html
    assert "<svg" in html and "<title" in html and "5 stars: 2; 4 stars: 1; 3 stars: 0" in html
    assert html.count("data-feedback-id=") == 4
    lowest = client.get(f"/courses/{course.id}/feedback?sort=lowest").get_data(as_text=True)
    assert lowest.index("comment 3") < lowest.index("comment 0")
    highest = client.get(f"/courses/{course.id}/feedback?sort=nonsense").status_code
    assert highest == 200
    catalogue = client.get("/courses").get_data(as_text=True)
    assert 'data-average-rating="3.8"' in catalogue and 'data-rating-count="4"' in catalogue


def test_html_in_comments_and_replies_is_shown_as_text(client, login_as, course, student):
    services.save(student, course.id, 3, "<script>alert('x')</script>")
    teacher = db.session.scalar(select(User).where(User.username == "tina"))
    entry = db.session.scalar(select(Feedback))
    services.reply(teacher, entry.id, "<img src=x onerror=alert(1)>")
    login_as(student)
    html = client.get(f"/courses/{course.id}/feedback").get_data(as_text=True)
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x" in html


def test_teacher_replies_once_and_the_student_is_told(client, login_as, course, student):
    services.save(student, course.id, 4, "Nice.")
    entry_id = db.session.scalar(select(Feedback.id))
    teacher = db.session.scalar(select(User).where(User.username == "tina"))
    login_as(teacher)
    assert client.post_form(f"/feedback/{entry_id}/reply", {"body": "Thanks!"}).status_code == 303
    assert (
        client.post_form(f"/feedback/{entry_id}/reply", {"body": "Thanks a lot!"}).status_code
        == 303
    )
    assert client.post_form(f"/feedback/{entry_id}/reply", {"body": ""}).status_code == 422
    assert client.post_form(f"/feedback/{entry_id}/reply", {"body": "r" * 2001}).status_code == 422
    html = client.get(f"/courses/{course.id}/feedback").get_data(as_text=True)
    assert "data-reply" in html and "Thanks a lot!" in html and "Thanks!<" not in html
    kinds = db.session.execute(select(Notification.user_id, Notification.kind)).all()
    assert sorted(kinds) == sorted([(teacher.id, "feedback_new"), (student.id, "feedback_reply")])


def test_who_may_not_reply(client, make_user, login_as, course, student):
    services.save(student, course.id, 4, "Nice.")
    entry_id = db.session.scalar(select(Feedback.id))
    for user in (student, make_user("other", role="teacher")):
        login_as(user)
        assert client.post_form(f"/feedback/{entry_id}/reply", {"body": "Hi"}).status_code == 403
        client.post_form("/auth/logout")
    assert client.post_form(f"/feedback/{entry_id}/reply", {"body": "Hi"}).status_code == 302
    login_as(make_user("boss", role="admin"))
    assert client.post_form("/feedback/99999/reply", {"body": "Hi"}).status_code == 404
    assert (
        client.post_form(f"/feedback/{entry_id}/reply", {"body": "From the office"}).status_code
        == 303
    )
    assert db.session.scalar(select(Feedback.reply)) == "From the office"


def test_teacher_gets_one_notification_per_course_until_read(make_user, course):
    for n in range(3):
        user = make_user(f"s{n}")
        enroll(user, course.id)
        services.save(user, course.id, 5, "")
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.kind == "feedback_new")
        )
        == 1
    )


def test_student_deletes_only_their_own(client, make_user, login_as, course, student):
    services.save(student, course.id, 2, "Meh.")
    entry_id = db.session.scalar(select(Feedback.id))
    login_as(make_user("mallory"))
    assert client.post_form(f"/feedback/{entry_id}/delete").status_code == 404
    client.post_form("/auth/logout")
    login_as(student)
    assert client.post_form(f"/feedback/{entry_id}/delete").status_code == 303
    assert entries() == []


def test_two_first_posts_at_once_leave_one_entry(app, course, student):
    student_id, results = student.id, []

    def post(stars: int) -> None:
        with app.app_context():
            user = db.session.get(User, student_id)
            results.append(services.save(user, course.id, stars, "").created)

    threads = [threading.Thread(target=post, args=(n,)) for n in (3, 4, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(entries()) == 1
    assert sorted(results) == [False, False, True]


def test_htmx_rating_answers_the_panel_with_the_new_chart(client, login_as, course, student):
    login_as(student)
    response = client.post(
        f"/courses/{course.id}/feedback",
        data={"rating": "4"},
        headers={"HX-Request": "true", "X-CSRFToken": client.csrf_token()},
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    assert 'id="feedback-panel"' in html and 'data-average-rating="4.0"' in html
    assert 'hx-swap-oob="innerHTML:#flashes"' in html


def test_opening_the_feedback_page_reads_the_teachers_notification(
    client, login_as, course, student
):
    services.save(student, course.id, 5, "")
    teacher = db.session.scalar(select(User).where(User.username == "tina"))
    login_as(teacher)
    assert 'id="notification-count" class="badge">1<' in client.get("/dashboard").get_data(
        as_text=True
    )
    page = client.get(f"/courses/{course.id}/feedback").get_data(as_text=True)
    assert db.session.scalar(select(Notification.read_at)) is not None
    # The page that read it already counts it read (the count loaded with the teacher at the
    # start of the request is dropped when the notification changes).
    assert 'id="notification-count" class="badge is-zero">0<' in page


def test_the_teachers_kept_feedback_page_still_reads_each_new_notification(
    client, login_as, course, student, make_user
):
    """The page is kept for the teacher between visits; each visit still reads the
    notification of what came meanwhile, and shows it."""
    from app.blueprints.enrollments import services as enrolment

    login_as(db.session.scalar(select(User).where(User.username == "tina")))
    path = f"/courses/{course.id}/feedback"
    for _ in range(2):
        assert "Nobody has rated this course yet." in client.get(path).text
    late = make_user("late")
    enrolment.enroll(late, course.id)
    for writer, comment in ((student, "Great course"), (late, "Good labs")):
        services.save(writer, course.id, 4, comment)
        assert 'id="notification-count" class="badge">1<' in client.get("/dashboard").text
        page = client.get(path).text
        assert comment in page and 'id="notification-count" class="badge is-zero">0<' in page
        unread = select(Notification).where(Notification.read_at.is_(None))
        assert db.session.scalars(unread).all() == []


@pytest.mark.parametrize(("sent_from", "read"), [("cross-site", False), ("same-origin", True)])
def test_only_our_own_links_to_the_feedback_page_read_the_notification(
    client, login_as, course, student, sent_from, read
):
    services.save(student, course.id, 5, "Great course")
    login_as(db.session.scalar(select(User).where(User.username == "tina")))
    response = client.get(f"/courses/{course.id}/feedback", headers={"Sec-Fetch-Site": sent_from})
    assert response.status_code == 200
    assert "Great course" in response.get_data(as_text=True)
    assert (db.session.scalar(select(Notification.read_at)) is not None) is read
