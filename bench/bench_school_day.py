"""A school day under load: a mix of what students and teachers do, at a steady rate of arrivals,
against a real gunicorn server, with open WebSockets, and a check that nothing was lost.

The server runs with production settings (bench/server.py): SQLite in a fresh file, or the
empty database in DATABASE_URL; one gevent worker, or with `--redis` (REDIS_URL kept) the
workers gunicorn.conf.py starts. A school is seeded straight into the database (40 teachers,
1,500 students, 300 published courses with capacities, enrolments, feedback and one file per
course), a pool of students and every teacher sign in through the sign-in form, `--sockets`
tabs hold the live channel (/ws) open, 20 of them in the class chats that get the posts, and
requests arrive open-loop: at Poisson times at `--rate` a second for `--minutes`, whatever
earlier ones take, each timed from the moment it was due (waiting for a free client counts).
The mix is the table MIX below: catalogue and course pages, search, dashboard and
notifications, enrolling and withdrawing, feedback, materials (uploads and downloads) and chat
posts.

Prints, per kind of request: count, errors (5xx and failed connections; a 4xx refusal such as
a full chat rate limit is counted apart and is not an error), p50/p95/p99 latency; the rate
achieved; p95 of each minute; the resident memory of gunicorn's workers each minute; the frames
the sockets received; and "nothing lost": every enrolment or withdrawal answered 303 is the
database's final state for that student and course, every upload answered 303 is listed with
its file on disk, every chat post and rating answered 303 is stored. Exits with 1 on any error
or loss.

    .venv/bin/python bench/bench_school_day.py --minutes 10 --rate 150
    .venv/bin/python bench/bench_school_day.py --minutes 0.5 --rate 20 --sockets 20   # smoke
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/bench \\
        REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/bench_school_day.py --redis

DATABASE_URL must name an empty database (dropdb bench && createdb bench between runs).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import http.client
import itertools
import json
import math
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from server import bench_environment, gunicorn, migrate
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

PASSWORD = "bench-school-day-2026"
CHAT_ROOMS = 4  # the first courses: their chats get the posts
ROOM_STUDENTS = 8  # students in each of those rooms (with their teacher)
ROOM_TABS = 20  # sockets watching those rooms, spread over them
PAGE_SIZE = 20  # the catalogue's
SUBJECTS = [
    "Algebra", "Biology", "Chemistry", "History", "Geography", "Physics", "Literature",
    "Music", "Drawing", "French", "Spanish", "German", "Computing", "Economics", "Philosophy",
    "Astronomy", "Statistics", "Theatre", "Photography", "Geometry",
]  # fmt: skip
LEVELS = ["Introduction to", "Foundations of", "Applied", "Advanced", "Workshop in"]
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')
CHAT_LINK = re.compile(r'href="/chat/(\d+)"')
DOWNLOAD_LINK = re.compile(r'href="/materials/(\d+)/download"')
CHAT_MARK = re.compile(r"sd-(\d+)-")
UPLOAD_PREFIX = "day-notes-"


# The school ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The seeded school's shape, computed alike by the seed step and the load. Courses are
    numbered 0..courses-1: the first CHAT_ROOMS have the busy class chats, the last third are
    electives that students enrol in and leave all day, the rest are "home" courses each
    student attends two of from the start (they rate them, read their files)."""

    students: int
    teachers: int
    courses: int

    @property
    def electives(self) -> range:
        return range(self.courses - self.courses // 3, self.courses)

    @property
    def homes(self) -> range:
        return range(CHAT_ROOMS, self.electives.start)

    def home_courses(self, student: int) -> tuple[int, int]:
        homes = self.homes
        return homes[student % len(homes)], homes[(student + len(homes) // 2) % len(homes)]

    def room_students(self, room: int) -> range:
        return range(room * ROOM_STUDENTS, (room + 1) * ROOM_STUDENTS)

    def teacher_of(self, course: int) -> int:
        return course % self.teachers

    def capacity(self, course: int) -> int | None:
        if course < CHAT_ROOMS or course % 4 == 0:
            return None
        if course in self.electives:
            return 8 if course % 3 == 0 else 25
        return 40

    def seeded_elective(self, student: int) -> int | None:
        """Students of the last third start with a seat in one elective (5 an elective)."""
        if student < self.students - self.students // 3:
            return None
        return self.electives[student % len(self.electives)]

    def title(self, course: int) -> str:
        level = LEVELS[course // len(SUBJECTS) % len(LEVELS)]
        return f"{level} {SUBJECTS[course % len(SUBJECTS)]} ({course + 1})"

    def check(self) -> None:
        if self.courses < 30 or self.students < CHAT_ROOMS * ROOM_STUDENTS * 2:
            raise SystemExit("a school needs at least 30 courses and 64 students")


def seed_step(plan: Plan, out: Path) -> None:
    """In its own process (the load process never imports the app): the school, straight
    into the database; the course ids, by course number, into `out`."""
    from sqlalchemy import func, select

    from app import create_app
    from app.blueprints.auth.services import hash_password
    from app.extensions import db
    from app.models import Course, User
    from app.search.store import rebuild

    app = create_app("production")
    with app.app_context():
        if db.session.scalar(select(func.count()).select_from(User)):
            raise SystemExit("DATABASE_URL names a database with people in it: use an empty one")
        password_hash = hash_password(PASSWORD)  # once: argon2id is slow on purpose

        def person(role: str, n: int) -> User:
            name = f"{role}{n}"
            return User(username=name, email=f"{name}@school.example", full_name=name.title(),
                        role=role, password_hash=password_hash, bio="")  # fmt: skip

        teachers = [person("teacher", n) for n in range(plan.teachers)]
        students = [person("student", n) for n in range(plan.students)]
        db.session.add_all(teachers + students)
        db.session.flush()
        courses = [
            Course(title=plan.title(n), description=f"{plan.title(n)}: the term's plan. " * 8,
                   keywords=f"{SUBJECTS[n % len(SUBJECTS)].lower()}, year {7 + n % 6}",
                   capacity=plan.capacity(n), published=True,
                   teacher_id=teachers[plan.teacher_of(n)].id)
            for n in range(plan.courses)
        ]  # fmt: skip
        db.session.add_all(courses)
        db.session.flush()
        seed_enrolments(plan, students, courses)
        seed_feedback(plan, students, courses)
        seed_materials(plan, teachers, courses)
        db.session.commit()
        rebuild(app)  # searchable from the first request
        out.write_text(json.dumps([course.id for course in courses]))


def seed_enrolments(plan: Plan, students: list, courses: list) -> None:
    from app.extensions import db
    from app.models import Enrollment

    def enrolled(student: int, course: int) -> Enrollment:
        return Enrollment(course_id=courses[course].id, student_id=students[student].id,
                          status="enrolled")  # fmt: skip

    for room in range(CHAT_ROOMS):
        db.session.add_all(enrolled(student, room) for student in plan.room_students(room))
    for student in range(plan.students):
        db.session.add_all(enrolled(student, course) for course in plan.home_courses(student))
        if (elective := plan.seeded_elective(student)) is not None:
            db.session.add(enrolled(student, elective))


def seed_feedback(plan: Plan, students: list, courses: list) -> None:
    from app.extensions import db
    from app.models import Feedback

    db.session.add_all(
        Feedback(course_id=courses[plan.home_courses(student)[0]].id,
                 student_id=students[student].id, rating=1 + student % 5,
                 comment=f"Comment number {student}. " * 4)
        for student in range(0, plan.students, 5)
    )  # fmt: skip


def seed_materials(plan: Plan, teachers: list, courses: list) -> None:
    """One small text file in every course but the electives."""
    from app.blueprints.materials import storage
    from app.extensions import db
    from app.models import Material

    storage.tmp_dir().mkdir(parents=True, exist_ok=True)
    for number in range(plan.electives.start):
        content = f"Reading list for {plan.title(number)}.\n".encode() * 40
        path = storage.tmp_dir() / f"seed-{number}.txt"
        path.write_bytes(content)
        db.session.add(
            Material(course_id=courses[number].id, title="Reading list",
                     original_name="reading-list.txt", stored_name=storage.keep(path),
                     content_type="text/plain", size=len(content),
                     sha256=hashlib.sha256(content).hexdigest(),
                     uploaded_by_id=teachers[plan.teacher_of(number)].id)
        )  # fmt: skip


def check_step(ledger_path: Path, out: Path) -> None:
    """In its own process, after the day: what each answer said against the database."""
    from sqlalchemy import select

    from app import create_app
    from app.blueprints.materials import storage
    from app.extensions import db
    from app.models import ChatMessage, Enrollment, Feedback, Material, User

    ledger = json.loads(ledger_path.read_text())
    app = create_app("production")
    with app.app_context():
        enrolled = set(
            db.session.execute(
                select(User.username, Enrollment.course_id).join(User, Enrollment.student)
            ).all()
        )
        files = db.session.execute(
            select(Material.course_id, Material.original_name, Material.stored_name).where(
                Material.original_name.like(UPLOAD_PREFIX + "%"), Material.is_current
            )
        ).all()
        listed = {(course, name) for course, name, stored in files
                  if storage.stored_path(stored).is_file()}  # fmt: skip
        messages = set(
            db.session.execute(
                select(ChatMessage.room_id, ChatMessage.body).where(ChatMessage.body.like("sd-%"))
            ).all()
        )
        rated = set(
            db.session.execute(
                select(User.username, Feedback.course_id).join(User, Feedback.student)
            ).all()
        )

    def lost(expected: list[list], found: Callable[[tuple], bool]) -> dict:
        missing = [entry for entry in expected if not found(tuple(entry))]
        return {"checked": len(expected), "lost": len(missing), "examples": missing[:5]}

    result = {
        "enrolment pairs": lost(
            ledger["enrolments"], lambda e: ((e[0], e[1]) in enrolled) == (e[2] == "enrolled")
        ),
        "uploads": lost(ledger["uploads"], lambda e: e in listed),
        "chat posts": lost(ledger["chat"], lambda e: e in messages),
        "ratings": lost(ledger["ratings"], lambda e: e in rated),
    }
    out.write_text(json.dumps(result))


def run_step(step: str, env: dict[str, str], log: IO, *arguments: str) -> object:
    """Run this script's `step` in a child process with the server's environment (its output
    to the log); the JSON it wrote."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, __file__, "--step", step, "--out", out.name, *arguments]
        if subprocess.run(command, env=env, stdout=log, stderr=log).returncode:
            raise SystemExit(f"the {step} step failed: see {log.name}")
        return json.loads(Path(out.name).read_text())


# HTTP --------------------------------------------------------------------------------------


@dataclass
class Person:
    username: str
    number: int
    role: str
    cookie: str = ""
    token: str = ""

    @property
    def is_student(self) -> bool:
        return self.role == "student"


class Http:
    """Keep-alive connections to the server, one per thread. A connection idle for longer
    than the server keeps it is replaced first; a request on a reused connection that the
    server closed meanwhile is sent once more on a new one, as browsers do."""

    IDLE_SECONDS = 4.0  # gunicorn.conf.py: keepalive = 5

    def __init__(self, base_url: str) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.local = threading.local()
        self.resent = 0

    def request(self, method: str, path: str, person: Person | None = None,
                body: bytes | None = None, headers: dict | None = None):  # fmt: skip
        """(status, headers, body); redirects are returned, not followed."""
        headers = dict(headers or {})
        if person is not None:
            headers["Cookie"] = person.cookie
        for attempt in (1, 2):
            connection, reused = self._connection()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except (ConnectionResetError, BrokenPipeError):  # RemoteDisconnected is one
                self._drop()
                if not reused or attempt == 2:
                    raise
                self.resent += 1
                continue
            except BaseException:
                self._drop()
                raise
            self.local.used_at = time.monotonic()
            if response.will_close:
                self._drop()
            return response.status, response.msg, data
        raise AssertionError("unreachable")

    def post_form(self, path: str, person: Person, fields: dict[str, str]) -> int:
        body = urllib.parse.urlencode({"csrf_token": person.token, **fields}).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.request("POST", path, person, body, headers)[0]

    def post_file(self, path: str, person: Person, fields: dict[str, str], name: str,
                  content: bytes) -> int:  # fmt: skip
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'
            .encode()
            for key, value in {"csrf_token": person.token, **fields}.items()
        ]  # fmt: skip
        file_head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        )
        parts.append(file_head.encode() + content + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        return self.request("POST", path, person, body, headers)[0]

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        connection = getattr(self.local, "connection", None)
        if connection is not None and time.monotonic() - self.local.used_at > self.IDLE_SECONDS:
            self._drop()
            connection = None
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.local.connection, self.local.used_at = connection, time.monotonic()
            return connection, False
        return connection, True

    def _drop(self) -> None:
        connection = getattr(self.local, "connection", None)
        if connection is not None:
            connection.close()
        self.local.connection = None


def cookies_of(headers, jar: dict[str, str]) -> None:
    """Add every Set-Cookie of a response to `jar` (an emptied value deletes)."""
    for header in headers.get_all("Set-Cookie") or []:
        name, _, value = header.split(";", 1)[0].strip().partition("=")
        if value.strip('"'):
            jar[name] = value
        else:
            jar.pop(name, None)


def sign_in(http: Http, person: Person) -> None:
    """Through the sign-in form, then the CSRF token of a signed-in page (signing in starts a
    new session). The cookies stay as they are after that: flashed messages are not read."""
    jar: dict[str, str] = {}
    status, headers, page = http.request("GET", "/auth/login")
    cookies_of(headers, jar)
    person.cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    person.token = CSRF_META.search(page.decode()).group(1)
    fields = {"login": person.username, "password": PASSWORD}
    body = urllib.parse.urlencode({"csrf_token": person.token, **fields}).encode()
    status, headers, _ = http.request(
        "POST", "/auth/login", person, body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    if status != 303:
        raise SystemExit(f"{person.username} could not sign in: HTTP {status}")
    cookies_of(headers, jar)
    person.cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    status, headers, page = http.request("GET", "/dashboard", person)
    cookies_of(headers, jar)
    person.cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    person.token = CSRF_META.search(page.decode()).group(1)


# The day's requests ------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the server said was done, to compare with the database afterwards."""

    enrolment: dict[tuple[str, int], str] = field(default_factory=dict)  # "enrolled", "none"
    electives: dict[str, set[int]] = field(default_factory=dict)  # student: course ids in
    busy: set[tuple[str, int]] = field(default_factory=set)
    uploads: list[tuple[int, str]] = field(default_factory=list)
    chat: list[tuple[int, str, int]] = field(default_factory=list)  # room, body, sequence
    ratings: set[tuple[str, int]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def as_json(self) -> dict:
        known = [[*pair, state] for pair, state in self.enrolment.items() if state != "unknown"]
        return {
            "enrolments": known,
            "uploads": [list(entry) for entry in self.uploads],
            "chat": [[room, body] for room, body, _ in self.chat],
            "ratings": [list(entry) for entry in self.ratings],
        }


@dataclass(frozen=True)
class Sample:
    at: float  # when it was due, seconds into the day
    label: str
    latency: float  # from when it was due to the end of the answer
    status: int  # 0: no answer
    error: str


class SchoolDay:
    """The actions of the mix; each makes one request and returns (label, status)."""

    def __init__(self, http: Http, plan: Plan, course_ids: list[int], students: list[Person],
                 teachers: list[Person], rooms: dict[int, int]) -> None:  # fmt: skip
        self.http, self.plan, self.course_ids = http, plan, course_ids
        self.students, self.teachers, self.rooms = students, teachers, rooms
        self.everyone = students + teachers
        self.ledger = Ledger()
        self.downloads: dict[int, list[str]] = {}  # course id: download paths seen listed
        self.sequence = itertools.count(1)
        self.samples: list[Sample] = []
        self.failures: collections.Counter[str] = collections.Counter()

    def perform(self, kind: Kind, due: float, at: float) -> None:
        try:
            label, status = kind.action(self)
            error = f"HTTP {status}" if status >= 500 else ""
        except Exception as exc:  # a failed connection, a timeout, or a page not understood
            label, status, error = kind.name, 0, type(exc).__name__
            if self.failures[error] == 0:
                traceback.print_exc()
            self.failures[error] += 1
        self.samples.append(Sample(at, label, time.perf_counter() - due, status, error))

    # picking people and courses

    def anyone(self) -> Person | None:
        """Half the visitors of public pages are signed out."""
        return random.choice(self.everyone) if random.random() < 0.5 else None

    def course_id(self, number: int) -> int:
        return self.course_ids[number]

    def home_course(self, student: Person) -> int:
        return self.course_id(random.choice(self.plan.home_courses(student.number)))

    def taught_course(self, teacher: Person) -> int:
        """A course of the teacher's that students attend all day (not an elective)."""
        numbers = range(teacher.number, self.plan.electives.start, self.plan.teachers)
        return self.course_id(random.choice(numbers))

    # the actions

    def catalogue(self) -> tuple[str, int]:
        page = random.randint(1, math.ceil(self.plan.courses / PAGE_SIZE))
        return "catalogue", self.http.request("GET", f"/courses?page={page}", self.anyone())[0]

    def course_page(self) -> tuple[str, int]:
        path = f"/courses/{random.choice(self.course_ids)}"
        return "course page", self.http.request("GET", path, self.anyone())[0]

    def search(self) -> tuple[str, int]:
        word = random.choice(SUBJECTS).lower()
        word = random.choice([word, word[:4], word[:-2] + word[-1] + word[-2]])  # a typo
        path = "/search/courses?" + urllib.parse.urlencode({"q": word})
        return "search", self.http.request("GET", path, self.anyone())[0]

    def dashboard(self) -> tuple[str, int]:
        return "dashboard", self.http.request("GET", "/dashboard", random.choice(self.everyone))[0]

    def notifications(self) -> tuple[str, int]:
        person = random.choice(self.everyone)
        return "notifications", self.http.request("GET", "/notifications", person)[0]

    def enrol_or_withdraw(self) -> tuple[str, int]:
        """A student leaves an elective they are in, or tries one (enrolled or waitlisted).
        One request at a time for a student and course, so that the last answer is the
        state the database must have."""
        student, course_id, action = self.pick_elective()
        try:
            status = self.http.post_form(f"/courses/{course_id}/{action}", student, {})
        except Exception:
            self.settle(student, course_id, "unknown")
            raise
        if status == 303:
            self.settle(student, course_id, "enrolled" if action == "enroll" else "none")
        elif status >= 500:
            self.settle(student, course_id, "unknown")
        else:
            self.settle(student, course_id, None)
        return ("enrol" if action == "enroll" else "withdraw"), status

    def pick_elective(self) -> tuple[Person, int, str]:
        ledger = self.ledger
        with ledger.lock:
            while True:
                student = random.choice(self.students)
                mine = ledger.electives.get(student.username)
                if mine and random.random() < 0.5:
                    course_id = random.choice(sorted(mine))
                else:
                    course_id = self.course_id(random.choice(self.plan.electives))
                pair = (student.username, course_id)
                if pair not in ledger.busy:
                    ledger.busy.add(pair)
                    action = "withdraw" if ledger.enrolment.get(pair) == "enrolled" else "enroll"
                    return student, course_id, action

    def settle(self, student: Person, course_id: int, state: str | None) -> None:
        pair = (student.username, course_id)
        with self.ledger.lock:
            self.ledger.busy.discard(pair)
            if state is not None:
                self.ledger.enrolment[pair] = state
                mine = self.ledger.electives.setdefault(student.username, set())
                if state == "enrolled":  # or waitlisted: either way a row
                    mine.add(course_id)
                else:
                    mine.discard(course_id)

    def feedback_page(self) -> tuple[str, int]:
        person = random.choice(self.everyone)
        course_id = self.home_course(person) if person.is_student else self.taught_course(person)
        return "feedback page", self.http.request("GET", f"/courses/{course_id}/feedback",
                                                  person)[0]  # fmt: skip

    def rate(self) -> tuple[str, int]:
        student = random.choice(self.students)
        course_id = self.home_course(student)
        fields = {"rating": str(random.randint(1, 5)), "comment": "Clear lessons, good pace."}
        status = self.http.post_form(f"/courses/{course_id}/feedback", student, fields)
        if status == 303:
            with self.ledger.lock:
                self.ledger.ratings.add((student.username, course_id))
        return "feedback post", status

    def upload(self) -> tuple[str, int]:
        teacher = random.choice(self.teachers)
        course_id = self.taught_course(teacher)
        number = next(self.sequence)
        name = f"{UPLOAD_PREFIX}{number}.txt"
        content = f"Notes for lesson {number}.\n".encode() * 200
        fields = {"title": f"Lesson notes {number}"}
        status = self.http.post_file(f"/courses/{course_id}/materials", teacher, fields, name,
                                     content)  # fmt: skip
        if status == 303:
            with self.ledger.lock:
                self.ledger.uploads.append((course_id, name))
        return "material upload", status

    def read_materials(self) -> tuple[str, int]:
        """A student downloads a file they saw listed, or opens the list of a course."""
        student = random.choice(self.students)
        course_id = self.home_course(student)
        links = self.downloads.get(course_id)
        if links and random.random() < 0.6:
            return "material download", self.http.request("GET", random.choice(links),
                                                          student)[0]  # fmt: skip
        status, _, page = self.http.request("GET", f"/courses/{course_id}/materials", student)
        if status == 200:
            found = DOWNLOAD_LINK.findall(page.decode())
            self.downloads[course_id] = [f"/materials/{n}/download" for n in found]
        return "materials list", status

    def materials(self) -> tuple[str, int]:
        return self.upload() if random.random() < 0.2 else self.read_materials()

    def feedback(self) -> tuple[str, int]:
        return self.rate() if random.random() < 0.4 else self.feedback_page()

    def chat_post(self) -> tuple[str, int]:
        """A member of a busy room posts through the room's form (the path without
        JavaScript); the sockets in the room should each get it."""
        room = random.randrange(CHAT_ROOMS)
        members = [self.students[n] for n in self.plan.room_students(room)]
        members.append(self.teachers[self.plan.teacher_of(room)])
        author = random.choice(members)
        number = next(self.sequence)
        body = f"sd-{number}- a question about exercise {number % 12 + 1}"
        room_id = self.rooms[room]
        status = self.http.post_form(f"/chat/{room_id}/messages", author, {"body": body})
        if status == 303:
            with self.ledger.lock:
                self.ledger.chat.append((room_id, body, number))
        return "chat post", status


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int  # percent of arrivals
    action: Callable[[SchoolDay], tuple[str, int]]


MIX = (
    Kind("catalogue", 20, SchoolDay.catalogue),
    Kind("course page", 15, SchoolDay.course_page),
    Kind("search", 15, SchoolDay.search),
    Kind("dashboard", 8, SchoolDay.dashboard),
    Kind("notifications", 7, SchoolDay.notifications),
    Kind("enrol/withdraw", 10, SchoolDay.enrol_or_withdraw),
    Kind("feedback", 5, SchoolDay.feedback),  # 60 % read the page, 40 % rate
    Kind("materials", 10, SchoolDay.materials),  # 20 % teachers upload, students list or download
    Kind("chat post", 10, SchoolDay.chat_post),
)


def run_arrivals(day: SchoolDay, rate: float, seconds: float, threads: int) -> float:
    """Open loop: arrivals at Poisson times, handed to a pool of threads whatever the earlier
    ones are doing; returns the seconds until the last answer."""
    weights = [kind.weight for kind in MIX]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="client") as pool:
        start = time.perf_counter()
        at = random.expovariate(rate)
        while at < seconds:
            delay = start + at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            kind = random.choices(MIX, weights)[0]
            pool.submit(day.perform, kind, start + at, at)
            at += random.expovariate(rate)
    return time.perf_counter() - start


# Open tabs and the server's memory ----------------------------------------------------------


@dataclass
class Tab:
    cookie: str
    room_id: int | None = None
    frames: int = 0
    marks: set[int] = field(default_factory=set)
    opened: bool = False
    refused: str = ""
    closed_early: bool = False


class Tabs:
    """WebSockets held open all day on an event loop of their own, counting what arrives."""

    def __init__(self, base_url: str, tabs: list[Tab]) -> None:
        self.ws_url = base_url.replace("http://", "ws://") + "/ws"
        self.origin = base_url
        self.tabs = tabs
        self.closing = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.sockets: list = []

    def open(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._open_all(), self.loop).result(timeout=300)

    def close(self) -> None:
        self.closing = True
        asyncio.run_coroutine_threadsafe(self._close_all(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _open_all(self) -> None:
        gate = asyncio.Semaphore(32)
        await asyncio.gather(*(self._open(tab, gate) for tab in self.tabs))

    async def _open(self, tab: Tab, gate: asyncio.Semaphore) -> None:
        async with gate:
            try:
                ws = await connect(self.ws_url, origin=self.origin, open_timeout=60,
                                   additional_headers={"Cookie": tab.cookie},
                                   ping_interval=None, max_size=2**20)  # fmt: skip
            except Exception as exc:
                tab.refused = f"{type(exc).__name__}: {exc}"
                return
        tab.opened = True
        self.sockets.append(ws)
        if tab.room_id is not None:  # the room is open in this tab: its messages come here
            await ws.send(json.dumps({"resume": {str(tab.room_id): 0}}))
        self.loop.create_task(self._listen(tab, ws))

    async def _listen(self, tab: Tab, ws) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for frame in ws:
                tab.frames += 1
                if tab.room_id is not None:
                    text = frame if isinstance(frame, str) else frame.decode(errors="replace")
                    tab.marks.update(int(mark) for mark in CHAT_MARK.findall(text))
        tab.closed_early = not self.closing

    async def _close_all(self) -> None:
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


def plan_tabs(count: int, students: list[Person], everyone: list[Person],
              rooms: dict[int, int], plan: Plan) -> list[Tab]:  # fmt: skip
    """ROOM_TABS tabs of room members with their room open, the rest on everyone's pages
    (at most 10 a person, the app's limit on all workers together)."""
    tabs = []
    for n in range(min(ROOM_TABS, count)):
        room = n % CHAT_ROOMS
        member = students[plan.room_students(room)[n // CHAT_ROOMS % ROOM_STUDENTS]]
        tabs.append(Tab(member.cookie, rooms[room]))
    held = collections.Counter(tab.cookie for tab in tabs)
    for person in itertools.cycle(everyone):
        if len(tabs) >= count or all(held[p.cookie] >= 10 for p in everyone):
            break
        if held[person.cookie] < 10:
            tabs.append(Tab(person.cookie))
            held[person.cookie] += 1
    return tabs


class WorkerMemory(threading.Thread):
    """The resident memory of each gunicorn worker (children of the master this process
    started), at the start of the day, each minute and at the end."""

    def __init__(self, port: int, every: float = 60) -> None:
        super().__init__(daemon=True)
        self.port, self.every = port, every
        self.started = time.perf_counter()
        self.stopped = threading.Event()
        self.samples: list[tuple[float, list[float]]] = []

    def run(self) -> None:
        self.take()
        while not self.stopped.wait(self.every):
            self.take()

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        if time.perf_counter() - self.started - self.samples[-1][0] > 5:
            self.take()

    def take(self) -> None:
        self.samples.append((time.perf_counter() - self.started, worker_rss_mib(self.port)))


def processes() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return found


def worker_rss_mib(port: int) -> list[float]:
    table = processes()
    masters = [pid for pid, (parent, cmdline) in table.items()
               if parent == os.getpid() and f"127.0.0.1:{port}" in cmdline]  # fmt: skip
    workers = sorted(pid for pid, (parent, cmdline) in table.items()
                     if parent in masters and "gunicorn" in cmdline)  # fmt: skip
    sizes = []
    for pid in workers:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
    return sizes


# The report --------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest rank, of sorted values, in milliseconds."""
    if not values:
        return float("nan")
    return values[max(math.ceil(p / 100 * len(values)) - 1, 0)] * 1000


def latency_columns(samples: list[Sample]) -> str:
    latencies = sorted(sample.latency for sample in samples)
    return "  ".join(f"{percentile(latencies, p):8.1f}" for p in (50, 95, 99))


def report_requests(samples: list[Sample], seconds: float, took: float, rate: float) -> None:
    by_label: dict[str, list[Sample]] = collections.defaultdict(list)
    for sample in samples:
        by_label[sample.label].append(sample)
    print(f"\n{'kind':<18}{'count':>7}{'errors':>7}{'4xx':>6}  {'p50 ms':>8}  {'p95 ms':>8}  "
          f"{'p99 ms':>8}  statuses")  # fmt: skip
    for label, group in sorted(by_label.items()):
        print_row(label, group)
    print_row("all", samples)
    answered = sum(1 for sample in samples if not sample.error)
    last_end = max((sample.at + sample.latency for sample in samples), default=0)
    drain = last_end - max((sample.at for sample in samples), default=0)
    print(f"\noffered {len(samples) / seconds:.1f} requests/s (asked for {rate:g}); answered "
          f"without error {answered / took:.1f}/s over {took:.1f} s (the last answer "
          f"{drain * 1000:.0f} ms after the last arrival)")  # fmt: skip
    print("p95 by minute (ms):", ", ".join(
        f"{minute + 1}: {percentile(sorted(s.latency for s in group), 95):.1f}"
        for minute, group in sorted(by_minute(samples).items())
    ))  # fmt: skip


def print_row(label: str, group: list[Sample]) -> None:
    errors = sum(1 for sample in group if sample.error)
    refused = sum(1 for sample in group if 400 <= sample.status < 500)
    statuses = collections.Counter(sample.status or sample.error for sample in group)
    shown = " ".join(f"{status}:{count}" for status, count in sorted(statuses.items(), key=str))
    print(f"{label:<18}{len(group):7}{errors:7}{refused:6}  {latency_columns(group)}  {shown}")


def by_minute(samples: list[Sample]) -> dict[int, list[Sample]]:
    minutes: dict[int, list[Sample]] = collections.defaultdict(list)
    for sample in samples:
        minutes[int(sample.at // 60)].append(sample)
    return minutes


def report_memory(memory: WorkerMemory) -> None:
    print("worker RSS (MiB, each worker):")
    for seconds, sizes in memory.samples:
        shown = " + ".join(f"{size:.0f}" for size in sizes) or "no workers found"
        print(f"  {seconds / 60:5.1f} min  {shown}  (total {sum(sizes):.0f})")


def report_tabs(tabs: list[Tab], day: SchoolDay) -> None:
    opened = [tab for tab in tabs if tab.opened]
    in_rooms = [tab for tab in opened if tab.room_id is not None]
    refused = collections.Counter(tab.refused.split(":")[0] for tab in tabs if tab.refused)
    posted = collections.defaultdict(set)
    for room_id, _, number in day.ledger.chat:
        posted[room_id].add(number)
    expected = sum(len(posted[tab.room_id]) for tab in in_rooms if not tab.closed_early)
    delivered = sum(len(tab.marks & posted[tab.room_id]) for tab in in_rooms)
    print(f"sockets: {len(opened)} of {len(tabs)} open ({len(in_rooms)} in {CHAT_ROOMS} busy "
          f"rooms), refused {dict(refused) or 0}, closed early "
          f"{sum(tab.closed_early for tab in opened)}; frames received "
          f"{sum(tab.frames for tab in opened):,} ({sum(tab.frames for tab in in_rooms):,} "
          f"by the room tabs); chat posts reaching the room tabs {delivered} of "
          f"{expected}")  # fmt: skip


def report_log(path: Path) -> None:
    """The server's complaints: a 500 or a failed socket message is logged as an ERROR."""
    errors = [line for line in path.read_text(errors="replace").splitlines()
              if " ERROR " in line or " CRITICAL " in line]  # fmt: skip
    print(f"server log {path}: {len(errors)} ERROR lines")
    for line in errors[:5]:
        print(f"  {line[:200]}")


def report_losses(checked: dict) -> bool:
    print("nothing lost:")
    lost = False
    for what, result in checked.items():
        lost |= result["lost"] > 0
        verdict = "ok" if not result["lost"] else f"LOST {result['lost']}: {result['examples']}"
        print(f"  {what:<15} {result['checked']:5} answered 303, as in the database: {verdict}")
    return lost


# The run -----------------------------------------------------------------------------------


def sign_in_everyone(http: Http, people: list[Person]) -> float:
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda person: sign_in(http, person), people))
    return time.perf_counter() - began


def find_rooms(http: Http, plan: Plan, course_ids: list[int], students: list[Person]):
    """Each busy room's id, from the "Open the class chat" link on its course page."""
    rooms = {}
    for room in range(CHAT_ROOMS):
        member = students[plan.room_students(room)[0]]
        status, _, page = http.request("GET", f"/courses/{course_ids[room]}", member)
        found = CHAT_LINK.search(page.decode())
        if status != 200 or found is None:
            raise SystemExit(f"no class chat link on course {course_ids[room]} (HTTP {status})")
        rooms[room] = int(found.group(1))
    return rooms


def server_environment(args: argparse.Namespace, workdir: Path) -> dict[str, str]:
    env = bench_environment(
        SEARCH_INDEX_DIR=str(workdir / "search_index"),
        UPLOAD_DIR=str(workdir / "uploads"),
        LOGIN_ADDRESS_LIMIT="100000 per minute",  # the whole pool signs in from 127.0.0.1
    )
    if args.redis:
        if not os.environ.get("REDIS_URL"):
            raise SystemExit("--redis needs REDIS_URL")
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    return env


def day(args: argparse.Namespace) -> int:
    """The whole run in a folder of its own; the server's log stays there."""
    plan = Plan(args.students, args.teachers, args.courses)
    plan.check()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    workdir = Path(tempfile.mkdtemp(prefix="campus-school-day-"))
    env = server_environment(args, workdir)
    try:
        with (workdir / "server.log").open("w") as log:
            return run_day(args, plan, env, log)
    finally:
        shutil.rmtree(workdir / "search_index", ignore_errors=True)
        shutil.rmtree(workdir / "uploads", ignore_errors=True)


def run_day(args: argparse.Namespace, plan: Plan, env: dict[str, str], log: IO) -> int:
    migrate(env)
    began = time.perf_counter()
    course_ids = run_step("seed", env, log, *plan_arguments(plan))
    database = env["DATABASE_URL"].partition(":")[0]
    workers = "the workers of gunicorn.conf.py, Redis" if "REDIS_URL" in env else "one worker"
    print(f"database: {database}; server: gunicorn, {workers}; seeded {plan.teachers} "
          f"teachers, {plan.students:,} students, {plan.courses} courses in "
          f"{time.perf_counter() - began:.1f} s; server log {log.name}", flush=True)  # fmt: skip
    with gunicorn("wsgi:app", env, "/healthz", log) as url:
        today, tabs, memory, took = serve_day(url, args, plan, course_ids)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as ledger:
        json.dump(today.ledger.as_json(), ledger)
        ledger.flush()
        checked = run_step("check", env, log, "--ledger", ledger.name)

    report_requests(today.samples, args.minutes * 60, took, args.rate)
    print(f"requests sent again on a new connection after an idle one closed: {today.http.resent}")
    report_memory(memory)
    report_tabs(tabs, today)
    log.flush()
    report_log(Path(log.name))
    lost = report_losses(checked)
    errors = sum(1 for sample in today.samples if sample.error)
    return 1 if lost or errors else 0


def serve_day(url: str, args: argparse.Namespace, plan: Plan, course_ids: list[int]):
    """Sign in, open the tabs, run the arrivals; (the day, its tabs, memory, seconds)."""
    http = Http(url)
    students = [Person(f"student{n}", n, "student") for n in range(args.signed_in)]
    teachers = [Person(f"teacher{n}", n, "teacher") for n in range(plan.teachers)]
    took = sign_in_everyone(http, students + teachers)
    print(f"signed in {len(students)} students and {len(teachers)} teachers in {took:.1f} s",
          flush=True)  # fmt: skip
    rooms = find_rooms(http, plan, course_ids, students)
    today = SchoolDay(http, plan, course_ids, students, teachers, rooms)
    tabs = plan_tabs(args.sockets, students, students + teachers, rooms, plan)
    live = Tabs(url, tabs)
    live.open()
    print(f"{sum(tab.opened for tab in tabs)} sockets open; {args.rate:g} arrivals/s for "
          f"{args.minutes:g} min, at most {args.threads} client threads", flush=True)  # fmt: skip
    memory = WorkerMemory(int(url.rsplit(":", 1)[1]))
    memory.start()
    took = run_arrivals(today, args.rate, args.minutes * 60, args.threads)
    time.sleep(2)  # the last chat posts on their way to the tabs
    memory.stop()
    live.close()
    return today, tabs, memory, took


def plan_arguments(plan: Plan) -> list[str]:
    return ["--students", str(plan.students), "--teachers", str(plan.teachers),
            "--courses", str(plan.courses)]  # fmt: skip


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )  # fmt: skip
    parser.add_argument("--minutes", type=float, default=10, help="length of the day (10)")
    parser.add_argument("--rate", type=float, default=45, help="arrivals a second (45)")
    parser.add_argument("--sockets", type=int, default=300, help="open WebSockets (300)")
    parser.add_argument("--threads", type=int, default=128,
                        help="client threads carrying out the arrivals (128)")  # fmt: skip
    parser.add_argument("--signed-in", type=int, default=150,
                        help="students signed in and acting (150); every teacher is")  # fmt: skip
    parser.add_argument("--students", type=int, default=1500, help="students seeded (1500)")
    parser.add_argument("--teachers", type=int, default=40, help="teachers seeded (40)")
    parser.add_argument("--courses", type=int, default=300, help="courses seeded (300)")
    parser.add_argument("--redis", action="store_true",
                        help="keep REDIS_URL: gunicorn runs several workers")  # fmt: skip
    parser.add_argument("--step", choices=["seed", "check"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ledger", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not CHAT_ROOMS * ROOM_STUDENTS <= args.signed_in <= args.students:
        parser.error(f"--signed-in must be from {CHAT_ROOMS * ROOM_STUDENTS} to --students")
    return args


def main() -> None:
    args = parse_arguments()
    if args.step == "seed":
        seed_step(Plan(args.students, args.teachers, args.courses), args.out)
    elif args.step == "check":
        check_step(args.ledger, args.out)
    else:
        sys.exit(day(args))


if __name__ == "__main__":
    main()
