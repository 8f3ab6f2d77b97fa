"""The parts of the catalogue and the course page that every viewer sees alike are rendered once
and kept in each worker's memory (app/fragments.py). After any change they show, the next
request shows it on every worker: here two app instances over one database, each with its own
memory, as two gunicorn workers are (with Redis in CI's second pass, the database otherwise)."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import select

from app.extensions import db
from tests.conftest import read, signed_in

COURSE_FORM = {
    "title": "Tide Pools",
    "description": "Life between the tides.",
    "keywords": "biology",
    "capacity": "3",
    "published": "y",
}


@pytest.fixture
def teacher(make_user):
    return make_user("tina", role="teacher", full_name="Tina Teacher")


@pytest.fixture
def course(make_course, teacher):
    return make_course(teacher, title="Tide Pools", capacity=3)


@pytest.fixture
def pages(client, other_worker, course):
    """Each worker's catalogue and course page, read now by the test's client (signed in once
    the test signs in) and by a visitor on each worker (their whole page is kept): a list of
    six HTML texts. The first call also fills both workers' memories."""

    def read() -> list[str]:
        found = []
        visitors = (client.application.test_client(), other_worker.test_client())
        for worker in (client, *visitors):
            for path in ("/courses", f"/courses/{course.id}"):
                response = worker.get(path)
                assert response.status_code == 200, path
                found.append(response.get_data(as_text=True))
        return found

    read()
    return read


def seats(html: str) -> list[str]:
    return re.findall(r'data-seats-left="(\d+)"', html)


def test_a_course_edit_shows_on_both_workers(pages, client, login_as, teacher, course):
    assert all("Tide Pools" in html for html in pages())
    login_as(teacher)
    form = COURSE_FORM | {"title": "Rock Pools"}
    assert client.post_form(f"/courses/{course.id}/edit", form).status_code == 303
    for html in pages():
        assert "Rock Pools" in html and "Tide Pools" not in html


def test_publishing_shows_on_both_workers(client, other_worker, login_as, make_course, teacher):
    draft = make_course(teacher, title="Night Sky", published=False)
    workers = (client, other_worker.test_client())

    def listed() -> list[bool]:
        return ["Night Sky" in worker.get("/courses").get_data(as_text=True) for worker in workers]

    assert listed() == [False, False]
    login_as(teacher)
    form = COURSE_FORM | {"title": "Night Sky"}
    assert client.post_form(f"/courses/{draft.id}/edit", form).status_code == 303
    assert listed() == [True, True]
    form.pop("published")  # back to a draft
    assert client.post_form(f"/courses/{draft.id}/edit", form).status_code == 303
    assert listed() == [False, False]


def test_a_kept_draft_stays_its_owners(
    client, other_worker, login_as, make_course, teacher, make_user
):
    """The owner's view fills the worker's memory with the draft's page; a student on that
    worker still finds nothing, and sees none of the owner's buttons on a published course."""
    draft = make_course(teacher, title="Night Sky", published=False)
    course = make_course(teacher, title="Day Sky")
    owner = signed_in(other_worker, teacher)
    drafts = [
        f"/courses/{draft.id}",
        f"/courses/{draft.id}/feedback",
        f"/courses/{draft.id}/materials",
    ]
    assert [owner.get(path).status_code for path in drafts] == [200, 200, 200]
    page = owner.get(f"/courses/{course.id}").get_data(as_text=True)
    assert "Edit course" in page and 'data-enrollment="' not in page
    student = signed_in(other_worker, make_user("sam"))
    assert [student.get(path).status_code for path in drafts] == [404, 404, 404]
    page = student.get(f"/courses/{course.id}").get_data(as_text=True)
    assert "Edit course" not in page and 'data-enrollment="none"' in page
    assert client.get(f"/courses/{draft.id}").status_code == 404  # anonymous, the other worker


def test_enrol_and_withdraw_show_on_both_workers(pages, client, login_as, make_user, course):
    assert all(seats(html) == ["3"] for html in pages())
    login_as(make_user("sam"))
    assert client.post_form(f"/courses/{course.id}/enroll").status_code == 303
    assert all(seats(html) == ["2"] for html in pages())
    assert client.post_form(f"/courses/{course.id}/withdraw").status_code == 303
    assert all(seats(html) == ["3"] for html in pages())


def test_a_rating_shows_on_both_workers(pages, client, login_as, make_user, course):
    from app.blueprints.enrollments import services as enrolment

    sam = make_user("sam")
    enrolment.enroll(sam, course.id)
    assert all("data-average-rating" not in html for html in pages())
    login_as(sam)
    response = client.post_form(f"/courses/{course.id}/feedback", {"rating": "4", "comment": ""})
    assert response.status_code == 303
    for html in pages():
        assert 'data-average-rating="4.0"' in html and 'data-rating-count="1"' in html


def test_a_teachers_rename_shows_on_both_workers(pages, client, login_as, teacher):
    login_as(teacher)
    form = {"full_name": "Tina Marsh", "email": teacher.email, "bio": ""}
    assert client.post_form("/profile/edit", form).status_code == 303
    for html in pages():
        assert "Tina Marsh" in html and "Tina Teacher" not in html


def test_a_material_upload_shows_on_both_workers(client, other_worker, login_as, teacher, course):
    path = f"/courses/{course.id}/materials"
    login_as(teacher)
    workers = (client, signed_in(other_worker, teacher))
    assert all("week-one.txt" not in worker.get(path).get_data(as_text=True) for worker in workers)
    data = {"file": [(io.BytesIO(b"Read chapter one."), "week-one.txt")]}
    response = client.post_form(path, data, content_type="multipart/form-data")
    assert response.status_code == 303
    assert all("week-one.txt" in worker.get(path).get_data(as_text=True) for worker in workers)


def test_a_worker_keeps_only_the_newest_of_each_part(app, client, make_course, teacher):
    """A busy day bumps the catalogue with every enrolment: the worker's memory holds one
    catalogue page however many versions it went through, not one per version."""
    kept = app.extensions["campus.fragments"]
    kept.clear()
    for n in range(5):
        make_course(teacher, title=f"Course {n}")
        assert f"Course {n}" in client.get("/courses").get_data(as_text=True)
    assert len(kept) == 2  # the list, and the whole page as a visitor sees it


def test_a_visitors_kept_page_carries_their_own_token_and_its_htmx_part_is_kept_apart(
    app, make_course, teacher
):
    make_course(teacher, title="Tide Pools")
    first, second = app.test_client(), app.test_client()
    pages = [visitor.get("/courses").get_data(as_text=True) for visitor in (first, second)]
    tokens = [re.search(r'name="csrf-token" content="([^"]+)"', page).group(1) for page in pages]
    assert tokens[0] != tokens[1] and "placeholder" not in "".join(tokens)
    assert pages[0].replace(tokens[0], "") == pages[1].replace(tokens[1], "")
    part = second.get("/courses", headers={"HX-Request": "true"})
    assert "Tide Pools" in part.text and "<html" not in part.text
    assert "HX-Request" in part.headers["Vary"]
    assert "<html" in second.get("/courses").text


def test_sqlite_versions_follow_every_commit_and_a_replaced_file(app, tmp_path):
    """Without Redis on SQLite the versions are read on a connection of their own and kept
    until SQLite's data_version moves: a commit by any other connection (another worker, a
    command) is seen at the next read."""
    import sqlite3

    from app.fragments import SqliteVersions

    if app.extensions["campus.fragments"].sqlite is None:
        pytest.skip("the versions are in Redis or PostgreSQL in this run")
    path = tmp_path / "versions.db"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE page_versions (scope TEXT PRIMARY KEY, version INTEGER)")
        setup.execute("INSERT INTO page_versions VALUES ('catalogue', 1)")
    versions = SqliteVersions(str(path))
    assert versions.read(["catalogue", "course:1"]) == (1, 0)
    writer = sqlite3.connect(path)
    with writer:
        writer.execute("UPDATE page_versions SET version = 2 WHERE scope = 'catalogue'")
    assert versions.read(["catalogue", "course:1"]) == (2, 0)
    with writer:
        writer.execute("INSERT INTO page_versions VALUES ('course:1', 5)")
    assert versions.read(["catalogue", "course:1"]) == (2, 5)
    writer.close()


def test_dashboard_cards_show_each_change_on_both_workers(
    client, other_worker, login_as, make_user, teacher, course
):
    """A student's dashboard keeps each course's card: an edit, another student's enrolment
    (the seats), a rating and the teacher's rename show on the next request on both workers."""
    from app.blueprints.enrollments import services as enrolment

    sam, ann = make_user("sam"), make_user("ann")
    enrolment.enroll(sam, course.id)
    dashboards = (signed_in(client.application, sam), signed_in(other_worker, sam))

    def cards() -> list[str]:
        found = []
        for dashboard in dashboards:
            page = dashboard.get("/dashboard")
            assert page.status_code == 200
            text = page.text  # the cards, not the notifications that name the course too
            found.append(text[text.index('id="enrolled"') : text.index('id="notifications"')])
        return found

    assert all("Tide Pools" in html and seats(html) == ["2"] for html in cards())
    login_as(teacher)
    form = COURSE_FORM | {"title": "Rock Pools"}
    assert client.post_form(f"/courses/{course.id}/edit", form).status_code == 303
    assert all("Rock Pools" in html and "Tide Pools" not in html for html in cards())
    enrolment.enroll(ann, course.id)
    assert all(seats(html) == ["1"] for html in cards())
    login_as(ann)
    response = client.post_form(f"/courses/{course.id}/feedback", {"rating": "5", "comment": ""})
    assert response.status_code == 303
    assert all('data-average-rating="5.0"' in html for html in cards())
    login_as(teacher)
    form = {"full_name": "Tina Marsh", "email": teacher.email, "bio": ""}
    assert client.post_form("/profile/edit", form).status_code == 303
    assert all("Tina Marsh" in html and "Tina Teacher" not in html for html in cards())


def test_feedback_entries_show_each_change_on_both_workers(
    client, other_worker, login_as, make_user, teacher, course
):
    """The feedback page keeps its entries per course, page, sort, zone and viewer's buttons:
    a new comment, an edit, the teacher's reply, a writer's rename and a deletion show on the
    next request on both workers, and each viewer keeps their own buttons and zone."""
    from datetime import UTC, datetime

    from app.blueprints.enrollments import services as enrolment
    from app.models import Feedback

    sam, ann = make_user("sam", full_name="Sam Stone"), make_user("ann", full_name="Ann Lee")
    for student in (sam, ann):
        enrolment.enroll(student, course.id)
    path = f"/courses/{course.id}/feedback"
    readers = (signed_in(client.application, ann), signed_in(other_worker, ann))

    def entries() -> list[str]:
        return [page[page.index('id="feedback-entries"') :] for page in read(readers, path)]

    assert all("Nobody has rated this course yet." in html for html in entries())
    login_as(sam)
    form = {"rating": "4", "comment": "Good tides"}
    assert client.post_form(path, form).status_code == 303
    assert all("Good tides" in html and "Sam Stone" in html for html in entries())
    assert client.post_form(path, form | {"comment": "Great tides"}).status_code == 303
    assert all("Great tides" in html and "Good tides" not in html for html in entries())
    # Sam sees the button to delete their own entry; Ann, on the same worker, does not.
    assert "Delete my feedback" in client.get(path).text
    assert all("Delete my feedback" not in html for html in entries())
    feedback = db.session.scalar(select(Feedback).where(Feedback.student_id == sam.id))
    feedback.created_at, feedback_id = datetime(2026, 1, 1, 20, 0, tzinfo=UTC), feedback.id
    db.session.commit()  # 2 January in Tokyo
    assert all("1 January 2026" in html for html in entries())
    login_as(teacher)
    assert "Post reply" in client.get(path).text  # the teacher's own buttons
    reply = client.post_form(f"/feedback/{feedback_id}/reply", {"body": "Thank you"})
    assert reply.status_code == 303
    assert all("Thank you" in html and "Post reply" not in html for html in entries())
    login_as(sam)
    form = {"full_name": "Sam Rivers", "email": sam.email, "bio": ""}
    assert client.post_form("/profile/edit", form).status_code == 303
    assert all("Sam Rivers" in html and "Sam Stone" not in html for html in entries())
    ben = make_user("ben")  # reads as Ann does (no entry of his own), but in Tokyo
    ben.timezone = "Asia/Tokyo"
    db.session.commit()
    enrolment.enroll(ben, course.id)
    assert "2 January 2026" in signed_in(client.application, ben).get(path).text
    assert all("1 January 2026" in html for html in entries())
    assert client.post_form(f"/feedback/{feedback_id}/delete").status_code == 303
    assert all("Nobody has rated this course yet." in html for html in entries())


def test_the_feedback_form_and_summary_follow_the_viewer_on_both_workers(
    client, other_worker, login_as, make_user, teacher, course
):
    """The feedback page keeps the summary and each viewer's standing (may they rate, their
    own rating): an enrolment, a rating, a withdrawal and the course's archiving show on the
    next request on both workers."""
    from app.blueprints.enrollments import services as enrolment

    sam = make_user("sam")
    path = f"/courses/{course.id}/feedback"
    readers = (signed_in(client.application, sam), signed_in(other_worker, sam))

    def panels() -> list[str]:
        return [page[: page.index('id="feedback-entries"')] for page in read(readers, path)]

    assert all("Rate this course" not in html for html in panels())  # not enrolled
    enrolment.enroll(sam, course.id)
    assert all("Rate this course" in html for html in panels())
    response = readers[0].post_form(path, {"rating": "4", "comment": ""})
    assert response.status_code == 303
    for html in panels():
        assert "Your feedback" in html and 'data-average-rating="4.0"' in html
    enrolment.withdraw(sam, course.id)
    assert all("Update my feedback" not in html for html in panels())
    assert all('data-average-rating="4.0"' in html for html in panels())
    enrolment.enroll(sam, course.id)
    assert all("Update my feedback" in html for html in panels())
    login_as(teacher)
    assert client.post_form(f"/courses/{course.id}/archive").status_code in (200, 303)
    assert all("Update my feedback" not in html for html in panels())


def test_a_history_restore_gets_the_whole_kept_page_not_the_kept_part(
    app, client, login_as, make_user, make_course, teacher
):
    """htmx asks for a whole page when it restores its history (HX-History-Restore-Request):
    it is not answered with the part kept for its swaps, signed out or in."""
    make_course(teacher, title="Tide Pools")
    swap = {"HX-Request": "true"}
    restore = swap | {"HX-History-Restore-Request": "true"}
    login_as(make_user("sam"))
    for reader in (app.test_client(), client):  # a visitor, then Sam signed in
        for _ in range(2):
            assert "<html" not in reader.get("/courses", headers=swap).text
            page = reader.get("/courses", headers=restore).text
            assert "<html" in page and "Tide Pools" in page
