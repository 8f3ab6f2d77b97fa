"""Requests per second of Campus's pages against a bare Flask "hello" in the same run.

Signed out: GET /auth/login, GET /courses (with 10,000 published courses in the database) and
a course page; signed in as a student enrolled in that course: its course page, its feedback
page and the dashboard. All apps run under gunicorn with the settings of gunicorn.conf.py (one
gevent worker without Redis; with `--redis`, REDIS_URL is kept and gunicorn runs its two
workers) on 127.0.0.1, one after the other, in rounds; the load comes from wrk when it is
installed (apt-get install wrk), else from a small Python client. Every run is bounded in
time. Prints each round and the ratios; record them in BENCHMARKS.md.

    .venv/bin/python bench/bench_pages.py [--seconds 5] [--rounds 5] [--courses 10000] [--redis]
        [--pages login courses course course-in feedback-in dashboard-in]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.parse

from server import bench_environment, gunicorn, migrate

PASSWORD = "bench-password-2026"


def wrk(url: str, seconds: int, connections: int, cookie: str = "") -> float:
    header = ["-H", f"Cookie: {cookie}"] if cookie else []
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", *header, url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def python_load(url: str, seconds: int, connections: int, cookie: str = "") -> float:
    """A fallback load generator: keep-alive connections in threads, counting 200s."""
    host, _, rest = url.removeprefix("http://").partition("/")
    hostname, port = host.split(":")
    stop_at = time.monotonic() + seconds
    counts = [0] * connections

    def run(slot: int) -> None:
        connection = http.client.HTTPConnection(hostname, int(port), timeout=5)
        while time.monotonic() < stop_at:
            connection.request("GET", "/" + rest, headers={"Cookie": cookie} if cookie else {})
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


def sign_in(base_url: str, username: str) -> str:
    """The session cookie of `username`, signed in through the sign-in form."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("GET", "/auth/login")
    response = connection.getresponse()
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', response.read().decode()).group(
        1
    )
    cookie = "; ".join(c.split(";")[0] for c in response.msg.get_all("Set-Cookie"))
    body = urllib.parse.urlencode({"csrf_token": token, "login": username, "password": PASSWORD})
    headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    connection.request("POST", "/auth/login", body, headers)
    response = connection.getresponse()
    response.read()
    assert response.status == 303, response.status
    cookie = "; ".join(c.split(";")[0] for c in response.msg.get_all("Set-Cookie"))
    # Land on the page the sign-in leads to, as a browser does: it shows the welcome message
    # and the session cookie it sets no longer carries it (a cookie with a message waiting
    # would make every later request show it and set the cookie again).
    connection.request("GET", response.getheader("Location"), headers={"Cookie": cookie})
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
    return "; ".join(c.split(";")[0] for c in response.msg.get_all("Set-Cookie") or [cookie])


def seed_courses(env: dict[str, str], count: int) -> int:
    """`count` published courses by 20 teachers, with some enrolments and ratings, straight into
    the benchmark's database; the id of a course `student0` is enrolled in and has rated."""
    os.environ.update(env)
    from app import create_app
    from app.blueprints.auth.services import hash_password
    from app.extensions import db
    from app.models import Course, Enrollment, Feedback, User

    app = create_app("production")
    with app.app_context():

        def person(role: str, n: int) -> User:
            name = f"{role}{n}"
            return User(username=name, email=f"{name}@bench.example", full_name=name.title(),
                        role=role, password_hash="-", bio="")  # fmt: skip

        teachers = [person("teacher", n) for n in range(20)]
        students = [person("student", n) for n in range(50)]
        students[0].password_hash = hash_password(PASSWORD)
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
        db.session.add_all(
            Feedback(course_id=courses[-1].id, student_id=student.id, rating=1 + n % 5,
                     comment=f"Comment number {n}. " * 5)
            for n, student in enumerate(students[:10])
        )  # fmt: skip
        db.session.commit()
        return courses[-1].id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--courses", type=int, default=10_000)
    parser.add_argument("--redis", action="store_true", help="keep REDIS_URL: two workers")
    parser.add_argument("--pages", nargs="+", help="only these pages (hello is always measured)")
    args = parser.parse_args()
    load = wrk if shutil.which("wrk") else python_load

    env = bench_environment(SEARCH_INDEX_DIR=tempfile.mkdtemp(prefix="campus-bench-index-"))
    if args.redis and os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    migrate(env)
    course_id = seed_courses(env, args.courses)

    course = f"/courses/{course_id}"
    pages = {  # name: (app, path, signed in)
        "hello": ("bench.hello_app:app", "/", False),
        "login": ("wsgi:app", "/auth/login", False),
        "courses": ("wsgi:app", "/courses", False),
        "course": ("wsgi:app", course, False),
        "course-in": ("wsgi:app", course, True),
        "feedback-in": ("wsgi:app", course + "/feedback", True),
        "dashboard-in": ("wsgi:app", "/dashboard", True),
    }
    if args.pages:
        pages = {name: page for name, page in pages.items() if name in {"hello", *args.pages}}
    results: dict[str, list[float]] = {name: [] for name in pages}
    workers = "two workers, Redis" if "REDIS_URL" in env else "one worker"
    print(f"load: {load.__name__}, {args.connections} connections, {args.seconds} s a run")
    print(f"database: {env['DATABASE_URL'].partition(':')[0]}, {args.courses:,} published courses")
    print(f"server: gunicorn, {workers}")
    for round_number in range(1, args.rounds + 1):
        for name, (app, path, signed_in) in pages.items():
            with gunicorn(app, env, "/") as base_url:
                cookie = sign_in(base_url, "student0") if signed_in else ""
                url = base_url + path
                load(url, 1, args.connections, cookie)  # warm-up
                rps = load(url, args.seconds, args.connections, cookie)
            results[name].append(rps)
            print(f"round {round_number}: {name:<13} {rps:8.0f} requests/s")

    hello = statistics.median(results["hello"])
    print(f"median hello              {hello:8.0f} requests/s")
    for name, (_, path, signed_in) in pages.items():
        if name != "hello":
            median = statistics.median(results[name])
            label = f"{path}{' (signed in)' if signed_in else ''}"
            print(f"median {label:<30}{median:8.0f} requests/s  ratio {median / hello:6.1%}")


if __name__ == "__main__":
    main()
