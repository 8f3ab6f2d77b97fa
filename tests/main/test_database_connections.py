"""Pooled PostgreSQL connections whose server side has gone (a restarted server, a firewall
that dropped them): an idle one is checked and replaced before use; one in steady use fails
its statement once and the pool is renewed behind it."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from app import create_app
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
    app = app_pinging_after(postgres_url, 60)
    with app.app_context():
        # Two pooled connections, both used a moment ago; the server loses both.
        held = [db.engine.connect() for _ in range(2)]
        pids = [c.execute(text("SELECT pg_backend_pid()")).scalar() for c in held]
        for connection in held:
            connection.close()
        for pid in pids:
            end_backend(postgres_url, pid)
        with pytest.raises(OperationalError):
            db.session.scalar(text("SELECT 1"))
        db.session.remove()
        # The other dead connection is not handed out again: the pool was renewed.
        assert backend_pid() not in pids
        assert backend_pid() not in pids
        db.engine.dispose()
