"""Keeping the index in step with the database: changes are collected while a session
flushes and written after its transaction commits; a rollback forgets them. Also
`flask search reindex`."""

from __future__ import annotations

import logging

import click
from flask import current_app, has_app_context
from flask.cli import AppGroup
from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from app.models import Course, Enrollment, User
from app.search.store import Changes

log = logging.getLogger(__name__)
KEY = "campus.search.changes"
COMMITTED = "campus.search.committed"
COURSE_FIELDS = ("title", "description", "keywords", "published", "archived_at", "teacher_id")
USER_FIELDS = ("username", "full_name", "email", "role")
NAME_FIELDS = ("username", "full_name")
_listening = False


def _changed(obj, fields: tuple[str, ...]) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in fields)


def _changes(session: Session) -> Changes:
    return session.info.setdefault(KEY, Changes())


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
        elif isinstance(obj, User) and _changed(obj, USER_FIELDS):
            changes.users.add(obj.id)
            if _changed(obj, NAME_FIELDS):
                changes.teachers.add(obj.id)  # their courses show the new name
        elif isinstance(obj, Enrollment) and _changed(obj, ("status",)):
            changes.users.add(obj.student_id)
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


def after_commit(session: Session) -> None:
    """Committed: written once the transaction has ended and its connection is back in the
    pool. (Writing here would hold it while waiting for the index's lock; under load the
    waiting requests then hold every connection the writer needs.)"""
    changes = session.info.pop(KEY, None)
    if changes:
        session.info.setdefault(COMMITTED, Changes()).update(changes)


def after_transaction_end(session: Session, transaction) -> None:
    if transaction.parent is not None:
        return  # a savepoint or inner block: the transaction goes on
    changes = session.info.pop(COMMITTED, None)
    if not changes or not has_app_context():
        return
    search = current_app.extensions.get("campus.search")
    if search is None:
        return
    try:
        search.apply(changes)
    except Exception:  # the commit stands; `flask search reindex` repairs the index
        log.exception("search index not updated for %s", changes.as_json())


def after_rollback(session: Session) -> None:
    if session.in_nested_transaction():
        return  # only a savepoint rolled back: the transaction's changes still stand
    session.info.pop(KEY, None)
    session.info.pop(COMMITTED, None)


def listen() -> None:
    global _listening
    if _listening:
        return
    event.listen(Session, "before_flush", before_flush)
    event.listen(Session, "after_flush", after_flush)
    event.listen(Session, "after_commit", after_commit)
    event.listen(Session, "after_transaction_end", after_transaction_end)
    event.listen(Session, "after_rollback", after_rollback)
    _listening = True


search_cli = AppGroup("search", help="The full-text search index.")


@search_cli.command("reindex")
def reindex_command() -> None:
    """Rebuild the index from the database into a new directory and swap it in."""
    from app.search.store import rebuild

    counts = rebuild()
    click.echo(f"Indexed {counts['courses']} courses and {counts['users']} users.")
