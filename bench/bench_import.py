"""A class list of 1,000 students through /admin/import: the preview and the confirm as an admin
posts them to gunicorn, against inserting the same rows with one executemany per table in the
same run. Goal: the preview and the confirm each under 5 s.

Every round starts on a fresh database (SQLite in a temporary folder, or the database in
DATABASE_URL, whose `public` schema is dropped and migrated again) with an admin, a teacher and
four published courses, two of them with a capacity the list overfills (the rest of their
students are waitlisted). The HTTP round runs gunicorn with gunicorn.conf.py's settings (one
gevent worker, no Redis) on 127.0.0.1, posts the file and then the preview's confirm form as a
browser sends them (multipart), each timed until its whole answer has arrived, and checks what
was stored (every account, every enrolment and waitlist place). The floor round inserts the
same user rows, then their enrolment rows, with SQLAlchemy Core in this process and commits.

    .venv/bin/python bench/bench_import.py [--lines 1000] [--rounds 5] [--existing 0]

--existing N puts N students (not enrolled) in every round's database and search index first:
the index the confirm writes to is then a school's size, not nearly empty.
"""

from __future__ import annotations

import argparse
import html
import http.client
import os
import re
import secrets
import statistics
import tempfile
import time
from pathlib import Path

from server import bench_environment, gunicorn, migrate

from tests.live_client import LiveClient

PASSWORD = "bench-import-password"
GOAL = 5.0
# Published courses: (title, capacity); the first two fill up.
COURSES = [("Algebra", 300), ("Biology", 150), ("Chemistry", None), ("Drawing", None)]
FIRST = "Ada Alan Grace Linus Léna Noah Aisha Mateo Yuki Olivia Kwame Chloé Ivan Zoë".split()  # noqa: SIM905
LAST = "Lovelace Turing Hopper Okafor Müller García Tanaka Mensah Petrov Nguyen Dubois".split()  # noqa: SIM905
OUTCOME = re.compile(r'data-line="(\d+)" data-outcome="(\w+)"')


def class_list(lines: int, course_ids: list[int]) -> tuple[bytes, list[tuple[str, str, list[int]]]]:
    """A spreadsheet's export (BOM, CRLF, semicolons, accents): every student in one course,
    every third in the next one too. Returns the file and (username, name, course ids) per
    line."""
    rows, people = ["username;full_name;email;role;courses"], []
    for n in range(lines):
        courses = [course_ids[n % 4]] + ([course_ids[(n + 1) % 4]] if n % 3 == 0 else [])
        username = f"pupil{n:04}"
        name = f"{FIRST[n % len(FIRST)]} {LAST[n // len(FIRST) % len(LAST)]} {n}"
        rows.append(f"{username};{name};{username}@school.example;student;"
                    f"{' '.join(map(str, courses))}")  # fmt: skip
        people.append((username, name, courses))
    return ("\ufeff" + "\r\n".join(rows) + "\r\n").encode(), people


def places_of(people: list[tuple[str, str, list[int]]], capacity: dict[int, int | None]):
    """(username, course id, status) in file order: seats go to the first lines."""
    taken: dict[int, int] = {}
    places = []
    for username, _name, courses in people:
        for course_id in courses:
            full = (
                capacity[course_id] is not None and taken.get(course_id, 0) >= capacity[course_id]
            )
            taken[course_id] = taken.get(course_id, 0) + (0 if full else 1)
            places.append((username, course_id, "waitlisted" if full else "enrolled"))
    return places


def counted(places: list[tuple[str, int, str]]) -> dict[tuple[int, str], int]:
    """Places by (course id, status)."""
    counts: dict[tuple[int, str], int] = {}
    for _username, course_id, status in places:
        counts[course_id, status] = counts.get((course_id, status), 0) + 1
    return counts


class Database:
    """One round's fresh database, migrated and seeded, and an app in this process to read it."""

    def __init__(self, admin_hash: str, existing: int = 0, index: bool = False) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="campus-bench-import-"))
        self.env = bench_environment(
            SEARCH_INDEX_DIR=str(workdir / "search_index"), UPLOAD_DIR=str(workdir / "uploads")
        )
        self.url = self.env["DATABASE_URL"]
        self.name = "PostgreSQL" if self.url.startswith("postgres") else "SQLite"
        if self.name == "PostgreSQL":
            self._drop_schema()
        migrate(self.env)
        os.environ["SECRET_KEY"] = self.env["SECRET_KEY"]
        from app import create_app

        self.app = create_app(
            "production", SQLALCHEMY_DATABASE_URI=self.url, SEARCH_CHECK_ON_START=False,
            SEARCH_INDEX_DIR=self.env["SEARCH_INDEX_DIR"], UPLOAD_DIR=self.env["UPLOAD_DIR"],
        )  # fmt: skip
        self.existing = existing
        self.capacity = self._seed(admin_hash)
        if index:  # built here, so the server starts on an index that holds everyone
            from app.search.store import rebuild

            rebuild(self.app)

    def _drop_schema(self) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()

    def _seed(self, admin_hash: str) -> dict[int, int | None]:
        from sqlalchemy import insert

        from app.extensions import db
        from app.models import Course, User

        with self.app.app_context():
            admin = User(username="admin", email="admin@bench.example", full_name="Admin",
                         role="admin", password_hash=admin_hash, bio="")  # fmt: skip
            teacher = User(username="teacher", email="teacher@bench.example", full_name="Teacher",
                           role="teacher", password_hash="!", bio="")  # fmt: skip
            db.session.add_all([admin, teacher])
            db.session.flush()
            courses = [
                Course(title=title, capacity=capacity, published=True, teacher_id=teacher.id,
                       description="", keywords="")
                for title, capacity in COURSES
            ]  # fmt: skip
            db.session.add_all(courses)
            db.session.commit()
            if self.existing:
                students = [
                    {"username": f"former{n:06}", "email": f"former{n}@school.example",
                     "full_name": f"{FIRST[n % len(FIRST)]} {LAST[n % len(LAST)]} {n}",
                     "role": "student", "password_hash": "!", "bio": ""}
                    for n in range(self.existing)
                ]  # fmt: skip
                db.session.execute(insert(User.__table__), students)
                db.session.commit()
            capacity = {course.id: course.capacity for course in courses}
            db.engine.dispose()
            return capacity

    def counts(self) -> tuple[int, dict[tuple[int, str], int]]:
        """Students added to the seeded ones, and enrolment rows by (course id, status)."""
        from sqlalchemy import func, select

        from app.extensions import db
        from app.models import Enrollment, User

        with self.app.app_context():
            students = db.session.scalar(
                select(func.count()).select_from(User).where(User.role == "student")
            )
            places = db.session.execute(
                select(Enrollment.course_id, Enrollment.status, func.count()).group_by(
                    Enrollment.course_id, Enrollment.status
                )
            ).all()
            db.session.remove()
            db.engine.dispose()
            return students - self.existing, {(course, status): n for course, status, n in places}


def post_multipart(
    client: LiveClient, fields: dict[str, str], files: dict[str, bytes] | None = None
) -> tuple[float, int, str]:
    """POST /admin/import as a browser's multipart form; the time until the whole answer."""
    boundary = "campus-bench-" + secrets.token_hex(8)
    parts = []
    for name, value in {"csrf_token": client.token, **fields}.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     f"{value}\r\n".encode())  # fmt: skip
    for name, content in (files or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="class.csv"\r\nContent-Type: text/csv\r\n\r\n'.encode()
                     + content + b"\r\n")  # fmt: skip
    parts.append(f"--{boundary}--\r\n".encode())
    body = b"".join(parts)
    headers = {
        "Cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items()),
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    connection = http.client.HTTPConnection(client.host, client.port, timeout=120)
    try:
        began = time.perf_counter()
        connection.request("POST", "/admin/import", body=body, headers=headers)
        response = connection.getresponse()
        page = response.read()
        return time.perf_counter() - began, response.status, page.decode()
    finally:
        connection.close()


def confirm_fields(page: str) -> dict[str, str]:
    """The preview's confirm form as a browser sends it: the textarea's text (its line ends
    read as LF, one leading newline dropped) sent back with CRLF line ends."""
    token = re.search(r'name="confirm" value="([^"]+)"', page).group(1)
    raw = re.search(r"<textarea name=\"content\"[^>]*>(.*?)</textarea>", page, re.S).group(1)
    text = html.unescape(raw).replace("\r\n", "\n").replace("\r", "\n")
    text = text.removeprefix("\n").replace("\n", "\r\n")
    return {"confirm": token, "content": text}


def http_round(admin_hash: str, lines: int, existing: int) -> tuple[str, float, float, int, int]:
    database = Database(admin_hash, existing, index=True)
    content, people = class_list(lines, list(database.capacity))
    expected = counted(places_of(people, database.capacity))
    enrolled = sum(n for (_c, status), n in expected.items() if status == "enrolled")
    waitlisted = sum(n for (_c, status), n in expected.items() if status == "waitlisted")
    with gunicorn("wsgi:app", database.env, "/healthz") as url:
        client = LiveClient(url)
        client.sign_in("admin", PASSWORD)
        preview_seconds, status, page = post_multipart(client, {}, {"file": content})
        outcomes = OUTCOME.findall(page)
        assert status == 200, f"preview answered {status}"
        assert outcomes == [(str(n), "create") for n in range(2, lines + 2)], "preview outcomes"
        assert page.count("(full: waitlisted)") == waitlisted, "preview's waitlist"
        assert database.counts() == (0, {}), "the preview stored something"

        confirm_seconds, status, result = post_multipart(client, confirm_fields(page))
        assert status == 200, f"confirm answered {status}"
        summary = f"{lines} accounts created, 0 updated, 0 unchanged; {enrolled} enrolled and "
        assert summary + f"{waitlisted} waitlisted" in result, "confirm's summary"
        assert result.count("/auth/reset/") == lines, "one set-password link per account"
    assert database.counts() == (lines, expected), "stored accounts and places"
    return database.name, preview_seconds, confirm_seconds, enrolled + waitlisted, waitlisted


def floor_round(admin_hash: str, lines: int, existing: int) -> float:
    """The same rows inserted with one executemany per table (and one SELECT of the new ids in
    between), in one transaction."""
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import Enrollment, User

    database = Database(admin_hash, existing)
    _content, people = class_list(lines, list(database.capacity))
    places = places_of(people, database.capacity)
    users = [
        {"username": username, "email": f"{username}@school.example", "full_name": name,
         "role": "student", "password_hash": f"!{secrets.token_hex(16)}", "bio": ""}
        for username, name, _courses in people
    ]  # fmt: skip
    with database.app.app_context(), db.engine.connect() as connection:
        began = time.perf_counter()
        with connection.begin():
            connection.execute(insert(User.__table__), users)
            ids = dict(
                connection.execute(
                    select(User.username, User.id).where(User.username.like("pupil%"))
                ).all()
            )
            rows = [
                {"course_id": course_id, "student_id": ids[username], "status": status}
                for username, course_id, status in places
            ]
            connection.execute(insert(Enrollment.__table__), rows)
        seconds = time.perf_counter() - began
    assert database.counts() == (lines, counted(places)), "floor: stored accounts and places"
    return seconds


def verdict(values: list[float]) -> str:
    over = sum(1 for value in values if value >= GOAL)
    result = f"MISSED in {over} of {len(values)} rounds" if over else "met in every round"
    return f"goal (< {GOAL:.0f} s): {result}"


def spread(values: list[float]) -> str:
    low, middle, high = min(values), statistics.median(values), max(values)
    return f"{low:6.3f} / {middle:6.3f} / {high:6.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--existing", type=int, default=0,
                        help="students already in the school (and its search index)")  # fmt: skip
    args = parser.parse_args()

    import argon2

    from config import ProductionConfig

    profile = getattr(argon2.profiles, ProductionConfig.PASSWORD_HASH_PROFILE)
    admin_hash = argon2.PasswordHasher.from_parameters(profile).hash(PASSWORD)
    previews, confirms, floors = [], [], []
    for round_ in range(1, args.rounds + 1):
        floors.append(floor_round(admin_hash, args.lines, args.existing))
        database, preview_seconds, confirm_seconds, places, waitlisted = http_round(
            admin_hash, args.lines, args.existing
        )
        previews.append(preview_seconds)
        confirms.append(confirm_seconds)
        print(f"round {round_}: preview {preview_seconds:5.2f} s, confirm {confirm_seconds:5.2f}"
              f" s, executemany floor {floors[-1]:6.3f} s", flush=True)  # fmt: skip

    school = f" with {args.existing} students already there" if args.existing else ""
    print(f"\n{database}, {args.lines} lines, {args.rounds} rounds on a fresh database{school} "
          f"(every round checked: {args.lines} accounts and {places} enrolment rows stored, "
          f"{waitlisted} of them waitlisted); min / median / max")  # fmt: skip
    print(f"preview (POST file):     {spread(previews)}   {verdict(previews)}")
    print(f"confirm (POST confirm):  {spread(confirms)}   {verdict(confirms)}")
    print(f"executemany floor:       {spread(floors)}")
    floor = statistics.median(floors)
    preview, confirm = statistics.median(previews), statistics.median(confirms)
    print("\n| database | preview | confirm | executemany floor | preview / floor | "
          "confirm / floor |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    print(f"| {database} | {min(previews):.2f} / {preview:.2f} s | {min(confirms):.2f} / "
          f"{confirm:.2f} s | {min(floors) * 1000:.0f} / {floor * 1000:.0f} ms | "
          f"{preview / floor:.0f} x | {confirm / floor:.0f} x |")  # fmt: skip
    print("(min / median; ratios of the medians)")


if __name__ == "__main__":
    main()
