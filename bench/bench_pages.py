"""Requests per second of GET /auth/login and GET /courses against a bare Flask "hello".

GET /courses runs with 10,000 published courses in the database. All apps run under gunicorn
with the settings of gunicorn.conf.py (one worker, gthread: the production setup without
Redis) on 127.0.0.1, one after the other, in rounds; the load comes from wrk when it is
installed (apt-get install wrk), else from a small Python client. Every run is bounded in
time. Prints each round and the ratios; record them in BENCHMARKS.md.

    .venv/bin/python bench/bench_pages.py [--seconds 5] [--rounds 5] [--courses 10000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import threading
import time

from server import bench_environment, gunicorn, migrate


def wrk(url: str, seconds: int, connections: int) -> float:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def python_load(url: str, seconds: int, connections: int) -> float:
    """A fallback load generator: keep-alive connections in threads, counting 200s."""
    host, _, rest = url.removeprefix("http://").partition("/")
    hostname, port = host.split(":")
    stop_at = time.monotonic() + seconds
    counts = [0] * connections

    def run(slot: int) -> None:
        connection = http.client.HTTPConnection(hostname, int(port), timeout=5)
        while time.monotonic() < stop_at:
            connection.request("GET", "/" + rest)
            response = connection.getresponse()
            response.read()
            counts[slot] += response.status == 200
        connection.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / seconds


def seed_courses(env: dict[str, str], count: int) -> None:
    """`count` published courses by 20 teachers, with some enrolments, straight into the
    benchmark's database."""
    os.environ.update(env)
    from app import create_app
    from app.extensions import db
    from app.models import Course, Enrollment, User

    app = create_app("production")
    with app.app_context():

        def person(role: str, n: int) -> User:
            name = f"{role}{n}"
            return User(username=name, email=f"{name}@bench.example", full_name=name.title(),
                        role=role, password_hash="-", bio="")  # fmt: skip

        teachers = [person("teacher", n) for n in range(20)]
        students = [person("student", n) for n in range(50)]
        db.session.add_all(teachers + students)
        db.session.flush()
        courses = [
            Course(title=f"Course number {n}", description="About the subject. " * 12,
                   keywords="bench, course", capacity=30 if n % 3 else None, published=True,
                   teacher_id=teachers[n % 20].id)
            for n in range(count)
        ]  # fmt: skip
        db.session.add_all(courses)
        db.session.flush()
        db.session.add_all(
            Enrollment(course_id=course.id, student_id=student.id, status="enrolled")
            for course in courses[-200:]
            for student in students[:10]
        )
        db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--courses", type=int, default=10_000)
    args = parser.parse_args()
    load = wrk if shutil.which("wrk") else python_load

    env = bench_environment()
    migrate(env)
    seed_courses(env, args.courses)

    apps = {
        "hello": ("bench.hello_app:app", "/"),
        "login": ("wsgi:app", "/auth/login"),
        "courses": ("wsgi:app", "/courses"),
    }
    results: dict[str, list[float]] = {name: [] for name in apps}
    print(f"load: {load.__name__}, {args.connections} connections, {args.seconds} s a run")
    print(f"database: {args.courses:,} published courses")
    for round_number in range(1, args.rounds + 1):
        for name, (app, path) in apps.items():
            with gunicorn(app, env, path) as base_url:
                url = base_url + path
                load(url, 1, args.connections)  # warm-up
                rps = load(url, args.seconds, args.connections)
            results[name].append(rps)
            print(f"round {round_number}: {name:<8} {rps:8.0f} requests/s")

    hello = statistics.median(results["hello"])
    print(f"median hello       {hello:8.0f} requests/s")
    for name, label in (("login", "/auth/login"), ("courses", "/courses")):
        median = statistics.median(results[name])
        print(f"median {label:<12}{median:8.0f} requests/s  ratio {median / hello:6.1%}")


if __name__ == "__main__":
    main()
