"""How requests use the database's connections: a PostgreSQL connection is checked only after
it has been idle, and pages that only read run their statements without a transaction.

Both save round trips, which on a server whose two cores PostgreSQL shares cost more than
the statements themselves: a signed-in page used to make BEGIN, the pool's check, its one to
three queries and ROLLBACK."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from time import monotonic
from typing import Any, TypeVar

from flask_sqlalchemy.session import Session
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

STATEMENTS_ALONE = "campus.statements_alone"
UNTIL_IT_ENDS = "until the transaction ends"
ALONE_ENGINE = "_campus_autocommit_variant"
View = TypeVar("View", bound=Callable[..., Any])


def psycopg_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """No server-side prepared statements: psycopg prepares a statement on its fifth use in a
    connection, and forgets them all (DEALLOCATE ALL, a round trip) after any ROLLBACK; with
    pages that end without one (`reads_alone` below) they pile up to its limit of 100 and are
    dropped one by one, and PostgreSQL may switch a prepared statement to a generic plan.
    And the pool's size from the config (config.py says why it is larger than SQLAlchemy's)."""
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options.setdefault("pool_size", config["DATABASE_POOL_SIZE"])
    options.setdefault("max_overflow", config["DATABASE_MAX_OVERFLOW"])
    connect_args = dict(options.get("connect_args") or {})
    connect_args.setdefault("prepare_threshold", None)
    return options | {"connect_args": connect_args}


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection with one round trip before handing it out, if it has not been
    used for `idle_seconds`; a dead one is replaced. (SQLAlchemy's `pool_pre_ping` checks every
    checkout, a round trip more on each request.) A connection in steady use that died with
    its server fails the statement it was given, once: SQLAlchemy then replaces every
    connection the pool held, so the requests after it find the server again."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def used(dbapi_connection, connection_record) -> None:
        connection_record.info["used_at"] = monotonic()

    @event.listens_for(engine, "checkout")
    def check(dbapi_connection, connection_record, connection_proxy) -> None:
        if monotonic() - connection_record.info.get("used_at", 0.0) < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError("the pooled connection has gone away") from error


class CampusSession(Session):
    """The app's session: while `STATEMENTS_ALONE` is in its `info`, its transactions on
    PostgreSQL take their connection in autocommit mode, so that no BEGIN is sent and COMMIT
    or ROLLBACK has nothing to send."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs) -> Any:
        engine = super().get_bind(mapper, clause, bind, **kwargs)
        if not self.info.get(STATEMENTS_ALONE) or not isinstance(engine, Engine):
            return engine
        if engine.dialect.name != "postgresql":
            return engine  # SQLite's BEGIN costs no round trip
        # Kept on the engine (the variant refers back to it: a cycle the collector frees with
        # the app, where a weak-keyed table would keep every engine alive).
        alone = vars(engine).get(ALONE_ENGINE)
        if alone is None:
            alone = engine.execution_options(isolation_level="AUTOCOMMIT")
            setattr(engine, ALONE_ENGINE, alone)
        return alone


@contextmanager
def statements_alone(session: Session) -> Iterator[None]:
    """Within the block, each statement commits on its own, for work whose statements stand
    alone (each one's effect is whole, and nothing between them is to be undone). READ
    COMMITTED, PostgreSQL's default, gives each statement its own snapshot anyway. Nothing
    changes for a session whose transaction has begun (the connection is taken); a transaction
    begun in the block keeps its connection until it ends, so that the session never holds
    two."""
    if session.in_transaction():
        yield
        return
    session.info[STATEMENTS_ALONE] = True
    try:
        yield
    finally:
        if session.in_transaction():
            session.info[STATEMENTS_ALONE] = UNTIL_IT_ENDS
        else:
            session.info.pop(STATEMENTS_ALONE, None)


@event.listens_for(CampusSession, "after_transaction_end")
def _block_ended(session: Session, transaction) -> None:
    if transaction.parent is None and session.info.get(STATEMENTS_ALONE) == UNTIL_IT_ENDS:
        del session.info[STATEMENTS_ALONE]


def reads_alone(view: View) -> View:
    """For a page that only reads, or writes with single statements (a notification marked
    read): its statements run without a transaction on PostgreSQL, two round trips fewer.
    Put it right under the route, before the decorators that read the signed-in person."""
    from app.extensions import db

    @functools.wraps(view)
    def run(*args, **kwargs):
        session = db.session()
        if not session.in_transaction():
            session.info[STATEMENTS_ALONE] = True  # until the request's session is removed
        return view(*args, **kwargs)

    return run  # type: ignore[return-value]
