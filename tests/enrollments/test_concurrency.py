"""Enrolments at the same moment: 200 students press "Enrol" on a course of 30 through a real
server; a waiting student's dashboard while the seat changes hands 50 times."""

from __future__ import annotations

import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from app.blueprints.auth.services import hash_password
from app.extensions import db
from app.models import Enrollment, Notification, User
from tests.conftest import PASSWORD
from tests.live_client import LiveClient

STUDENTS, CAPACITY = 200, 30


def test_two_hundred_concurrent_enrolments_never_exceed_capacity(live_server, make_course):
    course_id = make_course(capacity=CAPACITY, title="Popular Course").id
    password_hash = hash_password(PASSWORD)
    db.session.add_all(
        User(username=f"rush{n}", email=f"rush{n}@school.example", full_name=f"Rush {n}",
             role="student", password_hash=password_hash, bio="")
        for n in range(STUDENTS)
    )  # fmt: skip
    db.session.commit()

    clients = [LiveClient(live_server) for _ in range(STUDENTS)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda pair: pair[1].sign_in(f"rush{pair[0]}", PASSWORD), enumerate(clients)))

    start = threading.Barrier(STUDENTS)

    def press_enrol(client: LiveClient) -> int:
        start.wait()
        return client.post(f"/courses/{course_id}/enroll")

    with ThreadPoolExecutor(max_workers=STUDENTS) as pool:
        statuses = list(pool.map(press_enrol, clients))

    assert statuses == [303] * STUDENTS
    rows = db.session.execute(
        select(Enrollment.status, Enrollment.id).where(Enrollment.course_id == course_id)
    ).all()
    enrolled = [r for r in rows if r.status == "enrolled"]
    waiting = sorted(r.id for r in rows if r.status == "waitlisted")
    assert (len(enrolled), len(waiting)) == (CAPACITY, STUDENTS - CAPACITY)
    # Each waiting student sees their own position on the course page: 1 to 170, no gaps.
    from app.blueprints.enrollments.services import place_of

    students = db.session.scalars(select(User).where(User.username.like("rush%"))).all()
    positions = sorted(
        place_of(s, course_id).position for s in students if place_of(s, course_id).position
    )
    assert positions == list(range(1, STUDENTS - CAPACITY + 1))


PROMOTIONS = 50
PLACE_ON_DASHBOARD = re.compile(r'id="(enrolled|waitlisted)".*?</section>', re.S)


def dashboard_place(html: str, course_id: int) -> tuple[str, int | None]:
    """Where the dashboard shows the course: enrolled, waitlisted (with its number) or none."""
    card = f'data-course-id="{course_id}"'
    for match in PLACE_ON_DASHBOARD.finditer(html):
        section = match.group(0)
        if card not in section:
            continue
        if match.group(1) == "enrolled":
            return "enrolled", None
        position = re.search(r'data-waitlist-position="(\d+)"', section)
        return "waitlisted", int(position.group(1)) if position else None
    return "none", None


def test_dashboard_of_a_waiting_student_survives_promotions(
    app, make_user, make_course, login_as, client
):
    """Three students take turns in a course of one seat: whoever holds it withdraws (the first
    waiting is promoted) and joins the waitlist again, 50 times, while the waiting student
    keeps reloading the dashboard. Every load is a page, with the course in one sensible place."""
    from app.blueprints.enrollments import services

    course_id = make_course(capacity=1, title="One Seat").id
    holder, waiting, viewer = make_user("holder"), make_user("waiting"), make_user("viewer")
    for student in (holder, waiting, viewer):
        services.enroll(student, course_id)
    login_as(viewer)
    done = threading.Event()

    def promote() -> None:
        try:
            for _ in range(PROMOTIONS):
                with app.app_context():
                    seated = db.session.scalar(
                        select(User)
                        .join(Enrollment, Enrollment.student_id == User.id)
                        .where(Enrollment.course_id == course_id, Enrollment.status == "enrolled")
                    )
                    services.withdraw(seated, course_id)
                    services.enroll(seated, course_id)
        finally:
            done.set()

    seen: list[tuple[int, tuple[str, int | None]]] = []

    def reload_dashboard() -> None:
        while not done.is_set():
            response = client.get("/dashboard")
            seen.append(
                (response.status_code, dashboard_place(response.get_data(as_text=True), course_id))
            )

    churn = threading.Thread(target=promote)
    reader = threading.Thread(target=reload_dashboard)
    churn.start()
    reader.start()
    churn.join()
    reader.join()

    promoted = db.session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.kind == "waitlist_promoted")
    )
    assert promoted == PROMOTIONS
    statuses = Counter(status for status, _ in seen)
    assert statuses == {200: len(seen)}, statuses
    places = Counter(place for _, place in seen)
    # Two wait behind one seat: number 1 or 2; between withdrawing and joining again, none.
    assert set(places) <= {
        ("enrolled", None),
        ("waitlisted", 1),
        ("waitlisted", 2),
        ("none", None),
    }, places
    assert places[("enrolled", None)] and places[("waitlisted", 1)], places


NEWCOMERS, SEATS, WAITING = 50, 10, 3


def test_a_removal_while_fifty_enrol_keeps_capacity_and_the_waitlist_order(
    live_server, make_user, make_course
):
    """A full course with three waiting: its teacher removes a student at the moment 50 others
    press "Enrol". The seat goes to the first who was waiting, the 50 queue behind the other
    two in the order they came, and the course never holds more than its seats."""
    from app.blueprints.enrollments.services import enroll

    teacher = make_user("tina", role="teacher")
    course_id = make_course(teacher, capacity=SEATS, title="Full Course").id
    password_hash = hash_password(PASSWORD)
    db.session.add_all(
        User(username=name, email=f"{name}@school.example", full_name=name.title(),
             role="student", password_hash=password_hash, bio="")
        for name in [f"seated{n}" for n in range(SEATS)] + [f"waiting{n}" for n in range(WAITING)]
        + [f"new{n}" for n in range(NEWCOMERS)]
    )  # fmt: skip
    db.session.commit()
    for name in [f"seated{n}" for n in range(SEATS)] + [f"waiting{n}" for n in range(WAITING)]:
        enroll(db.session.scalar(select(User).filter_by(username=name)), course_id)

    teacher_client = LiveClient(live_server)
    teacher_client.sign_in("tina", PASSWORD)
    clients = [LiveClient(live_server) for _ in range(NEWCOMERS)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda pair: pair[1].sign_in(f"new{pair[0]}", PASSWORD), enumerate(clients)))

    start = threading.Barrier(NEWCOMERS + 1)

    def press_enrol(client: LiveClient) -> int:
        start.wait()
        return client.post(f"/courses/{course_id}/enroll")

    def remove() -> int:
        start.wait()
        return teacher_client.post(
            f"/courses/{course_id}/students/seated0/remove", {"confirm": "yes"}
        )

    with ThreadPoolExecutor(max_workers=NEWCOMERS + 1) as pool:
        removal = pool.submit(remove)
        statuses = list(pool.map(press_enrol, clients))

    assert removal.result() == 303
    assert statuses == [303] * NEWCOMERS
    db.session.expire_all()
    rows = db.session.execute(
        select(User.username, Enrollment.status)
        .join(Enrollment, Enrollment.student_id == User.id)
        .where(Enrollment.course_id == course_id)
        .order_by(Enrollment.id)
    ).all()
    enrolled = [name for name, status in rows if status == "enrolled"]
    waiting = [name for name, status in rows if status == "waitlisted"]
    assert len(enrolled) == SEATS
    assert sorted(enrolled) == sorted([f"seated{n}" for n in range(1, SEATS)] + ["waiting0"])
    assert waiting[: WAITING - 1] == ["waiting1", "waiting2"]
    assert sorted(waiting[WAITING - 1 :]) == sorted(f"new{n}" for n in range(NEWCOMERS))
    # Every waiting student's own number, as their course page shows it: 1 to 52, in order.
    from app.blueprints.enrollments.services import place_of

    students = {u.username: u for u in db.session.scalars(select(User))}
    positions = [place_of(students[name], course_id).position for name in waiting]
    assert positions == list(range(1, len(waiting) + 1))
    promoted = db.session.scalars(
        select(User.username)
        .join(Notification, Notification.user_id == User.id)
        .where(Notification.kind == "waitlist_promoted")
    ).all()
    assert promoted == ["waiting0"]
