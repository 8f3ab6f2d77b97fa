"""200 students press "Enrol" at the same moment on a course of 30, through a real server."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from app.blueprints.auth.services import hash_password
from app.extensions import db
from app.models import Enrollment, User
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
