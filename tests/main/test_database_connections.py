"""Pooled PostgreSQL connections whose server side has gone (a restarted server, a firewall
that dropped them): an idle one is checked and replaced before use; one in steady use fails
its statement once and the pool is renewed behind it."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError

from app import create_app
from app.database import ping_when_idle, statements_alone
from app.extensions import db


@pytest.fixture
def postgres_url(migrated_database: str) -> str:
    if not migrated_database.startswith("postgresql"):
        pytest.skip("SQLite has no server connection to lose")
    return migrated_database


def app_pinging_after(url: str, seconds: float):
    return create_app("testing", SQLALCHEMY_DATABASE_URI=url, DATABASE_PING_IDLE_SECONDS=seconds)


def backend_pid() -> int:
    pid = db.session.scalar(text("SELECT pg_backend_pid()"))
    db.session.remove()  # back to the pool
    return pid


def end_backend(url: str, pid: int) -> None:
    """What a server restart does to one connection (waiting until it has ended)."""
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    engine.dispose()


def test_an_idle_connection_that_died_is_replaced_before_use(postgres_url):
    app = app_pinging_after(postgres_url, 0.2)
    with app.app_context():
        first = backend_pid()
        end_backend(postgres_url, first)
        time.sleep(0.4)
        assert db.session.scalar(text("SELECT 1")) == 1  # no error reaches the caller
        assert backend_pid() != first
        db.engine.dispose()


def test_a_busy_connection_that_died_fails_once_and_the_pool_is_renewed(postgres_url):
    # An engine of its own, as the app's sets it up: no indexer or mail sender of the app's
    # may take one of the pool's connections meanwhile.
    engine = create_engine(postgres_url)
    ping_when_idle(engine, 60)
    try:
        # Two pooled connections, both used a moment ago; the server loses both.
        held = [engine.connect() for _ in range(2)]
        pids = [c.execute(text("SELECT pg_backend_pid()")).scalar() for c in held]
        for connection in held:
            connection.close()
        for pid in pids:
            end_backend(postgres_url, pid)
        with pytest.raises(OperationalError), engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        # The other dead connection is not handed out again: the pool was renewed.
        for _ in range(2):
            with engine.connect() as connection:
                assert connection.execute(text("SELECT pg_backend_pid()")).scalar() not in pids
    finally:
        engine.dispose()


def statements_of(app, steps) -> list[tuple[str, bool]]:
    """Each statement the app sent while `steps` ran, with whether its connection was in
    autocommit mode (no BEGIN sent before it, nothing to commit or roll back after)."""
    seen: list[tuple[str, bool]] = []

    def record(conn, cursor, statement, *args) -> None:
        seen.append((statement.split(None, 1)[0], conn.connection.dbapi_connection.autocommit))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        steps()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return seen


def test_pages_that_only_read_send_no_transaction_and_writes_keep_theirs(
    app, client, make_course, make_user, login_as
):
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("SQLite's BEGIN costs no round trip: nothing changes there")
    course = make_course(title="Tide Pools")
    login_as(make_user("ana"))
    course_id = course.id

    def read_pages() -> None:
        for path in (f"/courses/{course_id}", "/courses", "/dashboard", "/search/courses?q=tide"):
            assert client.get(path).status_code == 200, path

    read = statements_of(app, read_pages)
    assert read and all(alone for _, alone in read), read

    def enrol() -> None:
        response = client.post_form(f"/courses/{course_id}/enroll", {})
        assert response.status_code == 303

    written = statements_of(app, enrol)
    assert any(kind == "INSERT" for kind, _ in written)
    assert not any(alone for _, alone in written), written
    # The pooled connection the pages used is back to transactions: a rollback undoes.
    connection = db.session.connection()
    assert connection.connection.dbapi_connection.autocommit is False
    rename = text("UPDATE courses SET title = 'Changed' WHERE id = :id")
    db.session.execute(rename, {"id": course_id})
    db.session.rollback()
    title = text("SELECT title FROM courses WHERE id = :id")
    assert db.session.scalar(title, {"id": course_id}) == "Tide Pools"


def test_a_block_of_lone_statements_keeps_its_connection_until_its_transaction_ends(app):
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("SQLite's BEGIN costs no round trip: nothing changes there")
    session = db.session()
    session.rollback()
    with statements_alone(session):
        session.execute(text("SELECT 1"))
    taken = session.connection()
    assert taken.connection.dbapi_connection.autocommit is True  # the same one, not a second
    session.rollback()
    assert session.connection().connection.dbapi_connection.autocommit is False


def test_a_burst_of_requests_reuses_the_connections_of_the_one_before(postgres_url):
    """Fifteen requests at once each hold a connection; the next fifteen get the same ones
    back. (With five kept and the rest closed as they came back, every busy moment started
    new server processes: a thousand in a two-minute school day, and p95 three times higher.)"""
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=postgres_url, SEARCH_INDEXER=False)
    at_once = 15
    together = threading.Barrier(at_once)

    def request() -> int:
        with app.app_context():
            pid = db.session.scalar(text("SELECT pg_backend_pid()"))
            together.wait(timeout=10)  # all fifteen hold theirs at the same moment
            db.session.remove()
            return pid

    def burst() -> set[int]:
        with ThreadPoolExecutor(max_workers=at_once) as pool:
            return set(pool.map(lambda _: request(), range(at_once)))

    try:
        first = burst()
        assert len(first) == at_once
        assert burst() == first
    finally:
        with app.app_context():
            db.engine.dispose()
