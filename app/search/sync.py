"""The search feed: while a session flushes, the courses and people a transaction changed are
collected; just before it commits they become rows of `search_changes`, in that same
transaction, so the index can never miss a committed change (the indexer applies the rows,
app/search/indexer.py). After the commit the session waits, briefly, until its own rows are in
the index: a change is findable once its request has answered. A rollback forgets it all.

This is the one place that decides what the index follows: a service only changes rows."""

from __future__ import annotations

import logging

import click
from flask import current_app, has_app_context
from flask.cli import AppGroup
from sqlalchemy import event, insert, inspect, select
from sqlalchemy.orm import Session

from app.models import Course, Enrollment, SearchChange, User
from app.models.user import utcnow
from app.search.store import Changes

log = logging.getLogger(__name__)
KEY = "campus.search.changes"
WRITTEN = "campus.search.written"  # the last change id this transaction wrote
COMMITTED = "campus.search.committed"
NO_WAIT = "campus.search.no_wait"
COURSE_FIELDS = ("title", "description", "keywords", "published", "archived_at", "teacher_id")
# A change to any other column of a user (a new column too, such as an erasure mark) reaches
# the index: only these never show in it.
USER_UNSEEN = frozenset(
    {
        "bio",
        "password_hash",
        "session_version",
        "last_sign_in_at",
        "updated_at",
        "created_at",
        "timezone",
    }
)
NAME_FIELDS = ("username", "full_name")
_listening = False


def _changed(obj, fields) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in fields)


def _user_fields() -> list[str]:
    return [c.key for c in inspect(User).column_attrs if c.key not in USER_UNSEEN]


def _changes(session: Session) -> Changes:
    return session.info.setdefault(KEY, Changes())


def do_not_wait() -> None:
    """The current transaction's changes need not be findable when it returns (an enrolment:
    nobody searches for themselves right after): its commit skips the wait for the index."""
    from app.extensions import db

    db.session().info[NO_WAIT] = True


def wait_for_all(timeout: float | None = None) -> bool:
    """Wait until every change committed so far is findable here (what an enrolment skipped)."""
    return current_app.extensions["campus.search"].indexer.wait_for_all(timeout)


def before_flush(session: Session, flush_context, instances) -> None:
    """A deleted course takes its enrolments with it (ON DELETE CASCADE in the database):
    note its students while the rows are still there."""
    deleted = [obj.id for obj in session.deleted if isinstance(obj, Course)]
    if deleted:
        students = session.scalars(
            select(Enrollment.student_id).where(Enrollment.course_id.in_(deleted))
        )
        _changes(session).users.update(students)


def after_flush(session: Session, flush_context) -> None:
    changes = _changes(session)
    for obj in session.new:
        if isinstance(obj, Course):
            changes.courses.add(obj.id)
            changes.users.add(obj.teacher_id)
        elif isinstance(obj, User):
            changes.users.add(obj.id)
        elif isinstance(obj, Enrollment):
            changes.users.add(obj.student_id)
    for obj in session.dirty:
        if isinstance(obj, Course) and _changed(obj, COURSE_FIELDS):
            changes.courses.add(obj.id)
            if _changed(obj, ("teacher_id",)):
                changes.users.update(inspect(obj).attrs.teacher_id.history.sum())
        elif isinstance(obj, User) and _changed(obj, _user_fields()):
            changes.users.add(obj.id)
            if _changed(obj, NAME_FIELDS):
                changes.teachers.add(obj.id)  # their courses show the new name
        elif isinstance(obj, Enrollment) and _changed(obj, ("status", "student_id", "course_id")):
            changes.users.update(inspect(obj).attrs.student_id.history.sum())
    for obj in session.deleted:
        if isinstance(obj, Course):
            changes.courses.add(obj.id)
            changes.users.add(obj.teacher_id)
        elif isinstance(obj, User):
            changes.users.add(obj.id)
            changes.teachers.add(obj.id)  # their courses went with them
        elif isinstance(obj, Enrollment):
            changes.users.add(obj.student_id)
    changes.users.discard(None)


def before_commit(session: Session) -> None:
    """Write the transaction's changes as feed rows, as late as possible: the ids are taken
    just before the commit, so a row with a lower id that is not yet visible is almost always
    one about to commit (the indexer waits for such gaps, app/search/indexer.py)."""
    if session.in_nested_transaction():
        return  # a savepoint: the outer transaction's commit writes everything
    session.flush()  # what is still pending reaches after_flush first
    changes = session.info.pop(KEY, None)
    if not changes:
        return
    now = utcnow()
    rows = [{"kind": "course", "key": key, "created_at": now} for key in sorted(changes.courses)]
    rows += [{"kind": "teacher", "key": key, "created_at": now} for key in sorted(changes.teachers)]
    rows += [{"kind": "user", "key": key, "created_at": now} for key in sorted(changes.users)]
    # On the table, not through the ORM: its bulk path (and the events that watch it) cost
    # a millisecond of every write for rows nothing reads back as objects.
    table = SearchChange.__table__
    ids = session.connection().execute(insert(table).returning(table.c.id), rows).scalars().all()
    session.info[WRITTEN] = max([*ids, session.info.get(WRITTEN, 0)])


def after_commit(session: Session) -> None:
    written = session.info.pop(WRITTEN, None)
    if written:
        session.info[COMMITTED] = max(written, session.info.get(COMMITTED, 0))


def after_transaction_end(session: Session, transaction) -> None:
    """Committed: the indexer is woken, and the session waits until its rows are applied
    (once the connection is back in the pool, so waiting holds none)."""
    if transaction.parent is not None:
        return  # a savepoint or inner block: the transaction goes on
    last = session.info.pop(COMMITTED, None)
    no_wait = session.info.pop(NO_WAIT, False)
    if not last or not has_app_context():
        return
    search = current_app.extensions.get("campus.search")
    if search is None:
        return
    try:
        search.indexer.wake(waited_for=not no_wait)
        if not no_wait:
            search.indexer.wait_for(last)
    except Exception:  # the change is committed and in the feed: the indexer will apply it
        log.exception("search: waiting for change %s failed", last)


def after_rollback(session: Session) -> None:
    if session.in_nested_transaction():
        return  # only a savepoint rolled back: the transaction's changes still stand
    for key in (KEY, WRITTEN, COMMITTED, NO_WAIT):
        session.info.pop(key, None)


def listen() -> None:
    global _listening
    if _listening:
        return
    event.listen(Session, "before_flush", before_flush)
    event.listen(Session, "after_flush", after_flush)
    event.listen(Session, "before_commit", before_commit)
    event.listen(Session, "after_commit", after_commit)
    event.listen(Session, "after_transaction_end", after_transaction_end)
    event.listen(Session, "after_rollback", after_rollback)
    _listening = True


search_cli = AppGroup("search", help="The full-text search index.")


@search_cli.command("reindex")
def reindex_command() -> None:
    """Rebuild the index from the database into a new directory, catch up with the changes
    made meanwhile, and swap it in."""
    from app.search.store import rebuild

    counts = rebuild()
    click.echo(f"Indexed {counts['courses']} courses and {counts['users']} users.")


@search_cli.command("status")
def status_command() -> None:
    """Every known index, the last change it applied and how far behind it is."""
    from app.search.indexer import status

    report = status()
    click.echo(f"Newest change: {report['newest']}; rows kept: {report['rows']}")
    for index in report["indexes"]:
        click.echo(
            f"{index['name']}  {index['host']}:{index['directory']}  applied {index['applied']}"
            f"  behind {index['behind']}  updated {index['updated_at']}"
        )
