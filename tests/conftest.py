"""Fixtures: an app and a client per test on a real database, small factories, signing in.

The database is SQLite in a temporary file, or the one named by DATABASE_URL (PostgreSQL in
CI). Its schema comes from the migrations once per run; each test starts with empty tables.
"""

from __future__ import annotations

import contextvars
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
from flask import Flask, has_app_context
from flask.testing import FlaskClient
from sqlalchemy import text

from app import create_app, search
from app.blueprints.auth import services as accounts
from app.extensions import db, limiter
from app.models import User
from tests.smtp_server import SmtpServer

PASSWORD = "Correct-Horse-42"
ROOT = Path(__file__).resolve().parents[1]
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


class CampusClient(FlaskClient):
    """A test client that sends the page's CSRF token with each form, as a browser would.

    Each request runs in a fresh context, as it does in a server: with the test's app context
    still pushed, Flask would reuse it, and `g` (the signed-in user, the CSRF token) and the
    database session would leak from one request into the next."""

    def open(self, *args, **kwargs):
        response = contextvars.Context().run(super().open, *args, **kwargs)
        if has_app_context():
            db.session.expire_all()  # the test sees what the request committed
        return response

    def csrf_token(self) -> str:
        page = self.get("/auth/login").get_data(as_text=True)
        match = CSRF_META.search(page)
        if match is None:  # signed in: the login page redirects, take any page's token
            page = self.get("/profile").get_data(as_text=True)
            match = CSRF_META.search(page)
        assert match, "no CSRF meta tag in the page"
        return match.group(1)

    def post_form(self, url: str, data: dict | None = None, **kwargs) -> object:
        data = dict(data or {})
        data.setdefault("csrf_token", self.csrf_token())
        return self.post(url, data=data, **kwargs)


def missing(reason: str) -> None:
    """A browser test cannot run: a failure in CI, a skip on a developer's machine."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def search_index_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Every app the tests build, and the live servers, share one search index in a temporary
    folder; the `app` fixture empties it with the tables."""
    from config import Config

    folder = str(tmp_path_factory.mktemp("search-index"))
    original, Config.SEARCH_INDEX_DIR = Config.SEARCH_INDEX_DIR, folder
    yield folder
    Config.SEARCH_INDEX_DIR = original


@contextmanager
def running_server(
    database_url: str, stderr_path: Path | None = None, **environment: str
) -> Iterator[str]:
    """A real gunicorn serving the app on a free port, until the block ends. With
    `stderr_path`, what the server writes to stderr (its log) goes to that file."""
    from config import Config

    port = free_port()
    env = os.environ | {
        "CAMPUS_CONFIG": "testing",
        "DATABASE_URL": database_url,
        "SEARCH_INDEX_DIR": Config.SEARCH_INDEX_DIR,
        "LOGIN_ADDRESS_LIMIT": "10000 per minute",  # hundreds of students sign in at once
        "UPLOAD_DIR": str(ROOT / "instance" / "test-live-uploads"),
        # The live server shares the tests' database: it sends only the mail its own requests
        # write, never polling the outbox for what a test process is about to send itself.
        "MAIL_POLL_SECONDS": "3600",
        **environment,
    }
    command = [
        sys.executable, "-m", "gunicorn", "--config", "python:tests.browser.gunicorn_live",
        "--bind", f"127.0.0.1:{port}", "wsgi:app",
    ]  # fmt: skip
    with open(stderr_path, "ab") if stderr_path else nullcontext() as stderr:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stderr=stderr)  # keeps its own copy
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                missing(f"the live server did not start (exit code {server.poll()})")
            time.sleep(0.1)
    try:
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def live_server(migrated_database: str, search_index_dir: str) -> Iterator[str]:
    with running_server(migrated_database) as url:
        yield url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return os.environ.get("DATABASE_URL") or (
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'campus-test.db'}"
    )


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> str:
    """Drop whatever is there and build the schema with `flask db upgrade`, once per run."""
    from flask_migrate import upgrade

    app = create_app("testing", SQLALCHEMY_DATABASE_URI=database_url)
    with app.app_context():
        db.drop_all()
        db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()
        upgrade()
        db.engine.dispose()
    return database_url


def empty_tables() -> None:
    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def app(migrated_database: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        "testing", SQLALCHEMY_DATABASE_URI=migrated_database, UPLOAD_DIR=str(tmp_path / "uploads")
    )
    app.test_client_class = CampusClient
    with app.app_context():
        limiter.reset()
        empty_tables()
        search.rebuild(app)
        yield app
        app.extensions["campus.mail"].stop()  # its sender, before the tables go
        app.extensions["campus.search"].indexer.stop()  # its indexer too
        db.session.rollback()
        empty_tables()
        db.engine.dispose()


@pytest.fixture
def other_worker(app: Flask) -> Iterator[Flask]:
    """A second app over the test's database and upload folder, with its own memory (its
    kept parts and people), as a second gunicorn worker is; no search indexer of its own."""
    other = create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
        UPLOAD_DIR=app.config["UPLOAD_DIR"],
        SEARCH_INDEXER=False,
    )
    other.test_client_class = CampusClient
    yield other
    with other.app_context():
        db.engine.dispose()


def signed_in(worker: Flask, user, password: str = PASSWORD) -> CampusClient:
    """A new client of `worker` (the test's app or `other_worker`), signed in as `user`."""
    client = worker.test_client()
    response = client.post_form("/auth/login", {"login": user.username, "password": password})
    assert response.status_code == 303
    return client


def read(readers: tuple[CampusClient, ...], path: str) -> list[str]:
    """The page at `path` as each reader gets it now."""
    pages = [reader.get(path) for reader in readers]
    assert [page.status_code for page in pages] == [200] * len(readers), path
    return [page.text for page in pages]


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1, running; `smtp_server.stop()` and `.start()` it."""
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mail_to(app: Flask, smtp_server: SmtpServer) -> SmtpServer:
    """The app sends mail to the test SMTP server, retrying quickly."""
    app.config.update(
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=smtp_server.port,
        MAIL_TIMEOUT=5,
        MAIL_POLL_SECONDS=0.2,
        MAIL_RETRY_SECONDS=0.1,
        MAIL_RETRY_MAX_SECONDS=0.5,
        PUBLIC_URL="https://campus.school.example",
    )
    return smtp_server


@pytest.fixture(autouse=True)
def no_mail_senders_left() -> Iterator[None]:
    """Every app a test built stops its mail sender when the test ends: on PostgreSQL a sender
    left running by one test's app would claim the next test's mail and log it as sent."""
    yield
    from app import mail
    from app.search.indexer import stop_indexers

    mail.stop_senders()
    stop_indexers()  # and the search indexers they started


@pytest.fixture
def client(app: Flask) -> CampusClient:
    return app.test_client()


@pytest.fixture
def make_user(app: Flask) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(username: str | None = None, role: str = "student", **fields: str) -> User:
        username = username or f"user{next(counter)}"
        return accounts.create_user(
            username=username,
            email=fields.get("email", f"{username}@school.example"),
            full_name=fields.get("full_name", username.title()),
            password=fields.get("password", PASSWORD),
            role=role,
        )

    return make


@pytest.fixture
def login_as(client: CampusClient) -> Callable[..., object]:
    def login(user: User, password: str = PASSWORD, remember: bool = False) -> object:
        data = {"login": user.username, "password": password}
        if remember:
            data["remember"] = "y"
        response = client.post_form("/auth/login", data)
        assert response.status_code == 303, response.get_data(as_text=True)
        return response

    return login


@pytest.fixture
def make_course(app: Flask, make_user) -> Callable[..., object]:
    from app.blueprints.courses import services as courses

    def make(teacher: User | None = None, **fields: object) -> object:
        teacher = teacher or make_user(role="teacher")
        draft = courses.CourseDraft(
            title=str(fields.get("title", "Introduction to Astronomy")),
            description=str(fields.get("description", "Stars, planets and the sky at night.")),
            keywords=list(fields.get("keywords", ["astronomy", "science"])),
            capacity=fields.get("capacity"),
            published=bool(fields.get("published", True)),
        )
        return courses.create(teacher, draft)

    return make


@pytest.fixture
def count_queries(app: Flask):
    """Count the SQL statements this thread runs inside a `with count_queries() as counted:`
    block (the search indexer of the test's app may be reading meanwhile on its own)."""
    from contextlib import contextmanager

    from sqlalchemy import event

    @contextmanager
    def counting():
        import threading

        statements: list[str] = []
        this = threading.get_ident()  # the request's; not the search indexer's thread

        def record(conn, cursor, statement, *args) -> None:
            if threading.get_ident() == this:
                statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            yield statements
        finally:
            event.remove(db.engine, "before_cursor_execute", record)

    return counting


@pytest.fixture
def own_index(app: Flask, tmp_path: Path) -> Iterator[Flask]:
    """An app whose search index is its own (not shared with the live server), so that its
    indexer is the only one: for tests that break or stop it. Its context is the current."""
    own = create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
        UPLOAD_DIR=app.config["UPLOAD_DIR"],
        SEARCH_INDEX_DIR=str(tmp_path / "own-index"),
    )
    own.test_client_class = CampusClient
    with own.app_context():
        search.rebuild(own)
        yield own
        own.extensions["campus.search"].indexer.stop()
        db.session.rollback()
        db.engine.dispose()
