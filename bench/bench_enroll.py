"""200 students press "Enrol" at the same moment on a course of 30: how long until all have
their answer, against 200 simultaneous views of the same course page in the same run.

The app runs under gunicorn with gunicorn.conf.py's settings on 127.0.0.1 (SQLite, or the
database in DATABASE_URL). Goal: the 200 enrolments answered in under 3 s.

    .venv/bin/python bench/bench_enroll.py [--students 200] [--capacity 30]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from server import bench_environment, gunicorn, migrate

from tests.live_client import LiveClient

PASSWORD = "bench-enrol-password"


def seed(env: dict[str, str], students: int, capacity: int) -> int:
    os.environ.update(env)
    from app import create_app
    from app.blueprints.auth.services import hash_password
    from app.extensions import db
    from app.models import Course, User

    app = create_app("production")
    with app.app_context():
        password_hash = hash_password(PASSWORD)
        teacher = User(username="teacher", email="teacher@bench.example", full_name="Teacher",
                       role="teacher", password_hash=password_hash, bio="")  # fmt: skip
        db.session.add(teacher)
        db.session.add_all(
            User(username=f"rush{n}", email=f"rush{n}@bench.example", full_name=f"Rush {n}",
                 role="student", password_hash=password_hash, bio="")
            for n in range(students)
        )  # fmt: skip
        db.session.flush()
        course = Course(title="Popular course", capacity=capacity, published=True,
                        teacher_id=teacher.id, description="", keywords="")  # fmt: skip
        db.session.add(course)
        db.session.commit()
        return course.id


def count(env: dict[str, str], course_id: int) -> dict[str, int]:
    from sqlalchemy import func, select

    from app import create_app
    from app.extensions import db
    from app.models import Enrollment

    with create_app("production").app_context():
        query = (
            select(Enrollment.status, func.count())
            .where(Enrollment.course_id == course_id)
            .group_by(Enrollment.status)
        )
        return dict(db.session.execute(query).all())


def all_at_once(clients: list[LiveClient], action) -> tuple[float, list[int]]:
    """Every client acts at the same moment; the time until the last answer."""
    start = threading.Barrier(len(clients) + 1)

    def act(client: LiveClient) -> int:
        start.wait()
        return action(client)

    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        futures = [pool.submit(act, client) for client in clients]
        start.wait()
        began = time.perf_counter()
        statuses = [future.result() for future in futures]
        return time.perf_counter() - began, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=30)
    args = parser.parse_args()

    env = bench_environment(LOGIN_ADDRESS_LIMIT="100000 per minute")
    migrate(env)
    course_id = seed(env, args.students, args.capacity)
    database = env["DATABASE_URL"].split(":")[0]
    with gunicorn("wsgi:app", env, "/healthz") as url:
        clients = [LiveClient(url) for _ in range(args.students)]
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda pair: pair[1].sign_in(f"rush{pair[0]}", PASSWORD),
                          enumerate(clients)))  # fmt: skip
        page = f"/courses/{course_id}"
        view_time, view_statuses = all_at_once(clients, lambda c: c.get(page))
        enrol_time, enrol_statuses = all_at_once(clients, lambda c: c.post(f"{page}/enroll"))

    places = count(env, course_id)
    print(f"database: {database}; {args.students} students, capacity {args.capacity}")
    print(f"baseline: {args.students} simultaneous course views   {view_time:6.2f} s "
          f"(statuses {sorted(set(view_statuses))})")  # fmt: skip
    print(f"enrol:    {args.students} simultaneous enrolments     {enrol_time:6.2f} s "
          f"(statuses {sorted(set(enrol_statuses))})")  # fmt: skip
    print(
        f"result:   {places.get('enrolled', 0)} enrolled, {places.get('waitlisted', 0)} waitlisted"
    )
    print(f"enrol / view: {enrol_time / view_time:.2f}x")


if __name__ == "__main__":
    main()
