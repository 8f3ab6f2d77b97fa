"""Work that waits for the transaction to commit: people to tell, collected as sets of ids
while it runs, handed to their handler once it has committed and its connection is back in
the pool (a handler may then use a connection of its own without starving the others), and
dropped if it rolls back. A savepoint's release or rollback neither runs nor drops anything."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from app.extensions import db

log = logging.getLogger(__name__)

PENDING, COMMITTED = "campus.pending", "campus.committed"
Handler = Callable[[set], None]
_handlers: dict[str, Handler] = {}


def when_committed(name: str) -> Callable[[Handler], Handler]:
    """Register the handler of `name`: it gets the ids gathered by one committed transaction."""

    def register(handler: Handler) -> Handler:
        _handlers[name] = handler
        return handler

    return register


def pending(name: str, session: Session | None = None) -> set:
    """The ids (or keys) `name` gathers in the current transaction of `session` (the app's by
    default; begun now if there is none, so that its commit or rollback decides); add to it."""
    session = session or db.session()
    if not session.in_transaction():
        session.begin()
    return session.info.setdefault(PENDING, {}).setdefault(name, set())


@event.listens_for(db.session, "after_commit")
def _committed(session: Session) -> None:
    waiting = session.info.setdefault(COMMITTED, {})
    for name, ids in session.info.pop(PENDING, {}).items():
        waiting.setdefault(name, set()).update(ids)


@event.listens_for(db.session, "after_transaction_end")
def _run(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None:
        return  # a savepoint or inner block: the transaction goes on
    for name, ids in session.info.pop(COMMITTED, {}).items():
        try:
            _handlers[name](ids)
        except Exception:
            # The change is committed; what failed here is only telling people about it.
            log.exception("after commit: %s failed for %s", name, sorted(ids))


@event.listens_for(db.session, "after_soft_rollback")
def _dropped(session: Session, previous: SessionTransaction) -> None:
    """Any rollback of the whole transaction, whether or not it had reached the database."""
    if previous.parent is not None:
        return  # only a savepoint rolled back
    session.info.pop(PENDING, None)
    session.info.pop(COMMITTED, None)
