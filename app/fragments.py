"""Rendered parts of pages that are the same for every viewer (the catalogue's list, a course's
header), kept in each worker's memory under the versions of what they show.

Every change to the rows a part shows bumps a version once it is committed, so the next request
on any worker asks for a key it has not seen and renders afresh: a page is never older than the
last committed change. This module is the one place that decides which rows each version
follows (the session's flushes, below); a service only changes rows.

- With REDIS_URL the versions are Redis counters, INCR'd after the commit (every worker of
  every server reads the same ones).
- Without it they are rows of `page_versions`, bumped in the changing transaction itself, so
  the version and the rows it stands for become visible together. A bump sets the version to
  the larger of one more and the time in microseconds: a restored database never brings back a
  version that a worker's memory holds for something else. On SQLite a worker reads them on
  a connection of its own, and again only once SQLite says something was committed
  (`SqliteVersions`); on PostgreSQL through the request's session.

If the versions cannot be read (Redis down), pages are rendered as if nothing were kept.
Entries also expire after `FRAGMENT_SECONDS`, a bound on what a lost bump (a worker killed
between its commit and its INCR) could leave behind.

The signed-in person (their row and unread count) is kept the same way under their own scope,
which every change to their row and to their notifications bumps, for `PERSON_SECONDS` at
most: a deactivated account or a new password counts at once, and a lost bump for a minute at
most. A request reads each version once (one round trip for the page's and the person's
together), and again after it writes.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

from flask import Flask, current_app, g, has_app_context, has_request_context, render_template
from flask import session as cookie_session
from markupsafe import Markup
from sqlalchemy import Select, bindparam, event, inspect, make_url, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached

from app.after_commit import PENDING, pending, when_committed
from app.extensions import db
from app.models import Course, Enrollment, Feedback, PageVersion, User

log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

CATALOGUE = "catalogue"  # the catalogue's pages: every listed course, its seats and rating
EVERYTHING = "all"  # a bulk statement changed rows we cannot name: every part is old
PAGES = "pages"  # the scopes a transaction bumps, gathered through app/after_commit.py
TEACHER = "teacher:"  # a renamed person: the scopes of their courses and of the feedback they
# wrote, found just before the commit
USER_SHOWN = ("username", "full_name", "erased_at", "deactivated_at")  # display_name
BADGES = "badges"  # the people whose unread count a transaction changes (notifications)
SEEN = "campus.versions"  # in the session's info: the versions this request has read
PERSON_SECONDS = 60.0
_listening = False


def course_scope(course_id: int) -> str:
    """A course's own page: its fields, seats, rating and teacher's name."""
    return f"course:{course_id}"


def feedback_scope(course_id: int) -> str:
    """A course's feedback entries: ratings, comments, replies and their writers' names."""
    return f"feedback:{course_id}"


def person_scope(user_id: int) -> str:
    """A person's own row and their unread count, as the signed-in person of a request."""
    return f"person:{user_id}"


@functools.cache
def _versions_statement() -> Select:
    """Built once (as a Core statement, run on the session's connection): reading the versions
    is the whole cost of a kept part, and building the statement each time was most of it."""
    wanted = bindparam("scopes", expanding=True)
    return select(PageVersion.scope, PageVersion.version).where(PageVersion.scope.in_(wanted))


class SqliteVersions:
    """The versions of a SQLite database, read on a connection of their own that only reads,
    and remembered until SQLite's `data_version` says another connection committed.

    Through the request's session a read cost a kept page a third of its time (the pool's
    check-out, the statement, the session's teardown); `PRAGMA data_version` is answered from
    the connection's own state, and changes whenever any connection, of this process or
    another, commits to the file. A commit between the pragma and the read is seen at the next
    request, whose pragma differs. Opened lazily in each process: a worker forks after the app
    is made. (`flask restore` writes into the file through SQLite, which the pragma sees.)"""

    def __init__(self, path: str) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._data_version: int | None = None
        self._known: dict[str, int] = {}
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None or self._pid != os.getpid():
            self._connection = sqlite3.connect(self.path, check_same_thread=False)
            self._pid, self._data_version = os.getpid(), None
        return self._connection

    def read(self, scopes: Sequence[str]) -> tuple[int, ...]:
        with self._lock:
            connection = self._connect()
            (data_version,) = connection.execute("PRAGMA data_version").fetchone()
            if data_version != self._data_version:
                self._known.clear()
                self._data_version = data_version
            if missing := [scope for scope in scopes if scope not in self._known]:
                marks = ",".join("?" * len(missing))
                rows = connection.execute(
                    f"SELECT scope, version FROM page_versions WHERE scope IN ({marks})",  # noqa: S608 - only placeholders
                    missing,
                )
                found = dict(rows.fetchall())
                self._known.update((scope, found.get(scope, 0)) for scope in missing)
            return tuple(self._known[scope] for scope in scopes)


def _sqlite_path(app: Flask) -> str | None:
    """The database file when it is a SQLite file another connection can open, else None."""
    url = make_url(str(app.config["SQLALCHEMY_DATABASE_URI"]))
    if url.get_backend_name() != "sqlite" or url.query.get("uri"):
        return None
    if not url.database or url.database == ":memory:":
        return None
    return url.database


class Fragments:
    """One worker's kept parts, each as of the versions it was made at: at most `size` of
    them, the least recently used dropped."""

    def __init__(
        self, redis_url: str | None, size: int, seconds: float, sqlite_path: str | None = None
    ) -> None:
        self.redis = None
        if redis_url:
            import redis

            self.redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
        self.sqlite = SqliteVersions(sqlite_path) if sqlite_path and not redis_url else None
        self.size, self.seconds = size, seconds
        self._kept: OrderedDict[Hashable, tuple[tuple[int, ...], float, object]] = OrderedDict()
        self._lock = threading.Lock()

    def versions(self, scopes: Sequence[str]) -> tuple[int, ...] | None:
        if self.sqlite is not None:
            try:
                return self.sqlite.read(scopes)
            except sqlite3.Error as error:  # no file yet, a table not migrated
                log.warning("page versions unreadable, rendering afresh: %s", error)
                return None
        if self.redis is None:
            rows = db.session.connection().execute(_versions_statement(), {"scopes": scopes})
            found = dict(rows.all())
            return tuple(found.get(scope, 0) for scope in scopes)
        import redis

        try:
            values = self.redis.mget([f"campus:page:{scope}" for scope in scopes])
        except redis.RedisError as error:
            log.warning("page versions unreadable, rendering afresh: %s", error)
            return None
        return tuple(int(value or 0) for value in values)

    def get(self, key: Hashable, versions: tuple[int, ...]) -> object | None:
        with self._lock:
            found = self._kept.get(key)
            if found is None or found[0] != versions or found[1] < time.monotonic():
                return None
            self._kept.move_to_end(key)
            return found[2]

    def put(
        self,
        key: Hashable,
        versions: tuple[int, ...],
        value: object,
        seconds: float | None = None,
    ) -> None:
        """Keep `value` for `key` as of `versions`, in place of what it held before: only the
        newest of each part stays (a school day's enrolments would otherwise fill the memory
        with old catalogue pages until the oldest were dropped)."""
        until = time.monotonic() + min(self.seconds, seconds or self.seconds)
        with self._lock:
            self._kept[key] = (versions, until, value)
            self._kept.move_to_end(key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()

    def bump_after_commit(self, scopes: Iterable[str]) -> None:
        import redis

        try:
            with self.redis.pipeline(transaction=False) as pipe:
                for scope in sorted(scopes):
                    pipe.incr(f"campus:page:{scope}")
                pipe.execute()
        except redis.RedisError:
            log.exception("page versions not bumped (kept parts expire on their own)")


def init_app(app: Flask) -> None:
    app.extensions["campus.fragments"] = Fragments(
        app.config.get("REDIS_URL"),
        app.config["FRAGMENT_ENTRIES"],
        app.config["FRAGMENT_SECONDS"],
        _sqlite_path(app),
    )
    _listen()

    @app.teardown_request
    def forget_versions_read(error: BaseException | None = None) -> None:
        # The app context (and its session) can outlive a request: tests, CLI commands.
        if db.session.registry.has():
            _forget_seen(db.session())


def _versions(fragments: Fragments, scopes: Sequence[str]) -> tuple[int, ...] | None:
    """The versions of `scopes`, each read once in a request (until it writes): the first read
    also takes the signed-in person's, whom Flask-Login loads later, so that a signed-in page
    makes one round trip for all. Each version is still read before what it stands for."""
    seen = db.session().info.setdefault(SEEN, {})
    if missing := [scope for scope in scopes if scope not in seen]:
        viewer = _viewer_scope()
        if viewer is not None and viewer not in seen and viewer not in missing:
            missing.append(viewer)
        read = fragments.versions(missing)
        if read is None:
            return None
        seen.update(zip(missing, read, strict=True))
    return tuple(seen[scope] for scope in scopes)


def read_ahead(scopes: Sequence[str]) -> None:
    """Read the versions of `scopes` now (with the signed-in person's), for the `kept` calls
    of this request that follow."""
    _versions(current_app.extensions["campus.fragments"], (EVERYTHING, *scopes))


def signed_in_id() -> int | None:
    """Whom this request's session says is signed in, before Flask-Login has checked it (its
    `_user_id` is "id:session version"): only to name what to read ahead."""
    user_id, _, _ = str(cookie_session.get("_user_id", "")).partition(":")
    return int(user_id) if user_id.isdigit() else None


def _viewer_scope() -> str | None:
    """The person scope of the signed-in person, while Flask-Login has not loaded them yet."""
    if not has_request_context() or "_login_user" in g:
        return None
    user_id = signed_in_id()
    return None if user_id is None else person_scope(user_id)


def _forget_seen(session: Session, *args) -> None:
    session.info.pop(SEEN, None)


def kept(
    scopes: Sequence[str],
    key: Hashable,
    make: Callable[[], T],
    keep: Callable[[T], bool] | None = None,
    seconds: float | None = None,
    named: Callable[[], Iterable[str]] | None = None,
) -> T:
    """`make()`'s value, from this worker's memory when nothing in `scopes` changed since it
    was kept (for `seconds` at most, if given). `make` must give the same for every viewer
    `key` stands for (a key names the viewer when it is theirs alone); a value `keep` refuses
    is returned but not kept (an error page).

    `named()` gives further scopes the value shows, which ones following from `scopes` (the
    courses on a person's dashboard: joining or leaving one bumps the person's scope): they
    are asked for before `make` runs, their versions read before `make` reads what they stand
    for and kept with the value, which is given again while those are unchanged too."""
    fragments: Fragments = current_app.extensions["campus.fragments"]
    versions = _versions(fragments, (EVERYTHING, *scopes))
    if versions is None:
        return make()
    found = fragments.get(key, versions)
    if found is not None and named is not None:
        names, seen, found = found  # type: ignore[misc]
        if _versions(fragments, names) != seen:
            found = None
    if found is not None:
        return found  # type: ignore[return-value]
    names = tuple(sorted(set(named()))) if named is not None else ()
    seen = _versions(fragments, names)
    value = make()
    if seen is not None and (keep is None or keep(value)):
        fragments.put(key, versions, (names, seen, value) if named is not None else value, seconds)
    return value


def kept_template(
    scopes: Sequence[str], key: Hashable, template: str, context: Callable[[], dict]
) -> Markup:
    """A template rendered for every viewer, kept; `context()` runs only when it is not."""
    return kept(scopes, (template, key), lambda: _rendered(template, context()))


def detached_copy(row: T) -> T:
    """A copy of a loaded row's columns that no session holds, to keep between requests: its
    columns read as loaded (its relationships do not load); a request that changes it merges
    it into its own session first (`db.session.merge(row, load=False)`)."""
    mapper = inspect(row).mapper
    copy = mapper.class_(**{column.key: getattr(row, column.key) for column in mapper.column_attrs})
    make_transient_to_detached(copy)
    return copy


def _rendered(template: str, context: dict) -> Markup:
    # Our own template's output, escaped as it rendered: safe to include as it is.
    return Markup(render_template(template, **context))  # noqa: S704


def kept_each(
    keys: Sequence[K],
    scope: Callable[[K], str],
    template: str,
    contexts: Callable[[list[K]], dict[K, dict]],
) -> dict[K, Markup]:
    """`template` rendered for each of `keys` (a course card each), every one kept under its
    own scope: the versions of all are read at once, and `contexts` is asked once, for the
    contexts of the parts not kept (a key it leaves out is gone meanwhile and left out)."""
    fragments: Fragments = current_app.extensions["campus.fragments"]
    versions = _versions(fragments, (EVERYTHING, *(scope(key) for key in keys))) if keys else ()
    found: dict[K, Markup] = {}
    missing: dict[K, tuple[int, int] | None] = {}
    for index, key in enumerate(keys):
        these = (versions[0], versions[index + 1]) if versions else None
        part = fragments.get((template, key), these) if these else None
        if part is None:
            missing[key] = these
        else:
            found[key] = part
    if missing:
        for key, context in contexts(list(missing)).items():
            found[key] = part = _rendered(template, context)
            if missing[key] is not None:
                fragments.put((template, key), missing[key], part)
    return found


# What each change bumps. -------------------------------------------------------------------


def _pending(session: Session) -> set[str]:
    return pending(PAGES, session)


def _changed(obj, fields: Sequence[str]) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in fields)


def _ids_of(obj, field: str = "course_id") -> list[int]:
    """The row's course (or other `field`), and for a row moved to another both (what it was
    and is now)."""
    return [value for value in inspect(obj).attrs[field].history.sum() if value is not None] or [
        getattr(obj, field)
    ]


def _after_flush(session: Session, flush_context) -> None:
    _forget_seen(session)
    scopes: set[str] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Course):
            if obj in session.dirty and not session.is_modified(obj):
                continue
            scopes.update((CATALOGUE, course_scope(obj.id)))
            if obj in session.new or _changed(obj, ("teacher_id",)):  # whose dashboard shows it
                scopes.update(person_scope(user_id) for user_id in _ids_of(obj, "teacher_id"))
        elif isinstance(obj, Enrollment | Feedback):
            if isinstance(obj, Feedback) and (obj not in session.dirty or session.is_modified(obj)):
                scopes.update(feedback_scope(course_id) for course_id in _ids_of(obj))
            if obj in session.dirty and not _changed(
                obj, ("status", "course_id") if isinstance(obj, Enrollment) else ("rating",)
            ):
                continue
            scopes.add(CATALOGUE)
            scopes.update(course_scope(course_id) for course_id in _ids_of(obj))
            if isinstance(obj, Enrollment):  # the courses on the student's dashboard
                scopes.add(person_scope(obj.student_id))
        elif isinstance(obj, User) and obj not in session.new:
            if obj in session.deleted:
                scopes.update((CATALOGUE, EVERYTHING))  # their courses may have gone with them
                continue
            if session.is_modified(obj):
                scopes.add(person_scope(obj.id))  # as the signed-in person
            if _changed(obj, USER_SHOWN):
                scopes.add(f"{TEACHER}{obj.id}")  # their courses' pages
    if scopes:
        _pending(session).update(scopes)


def _bulk(orm_execute_state) -> None:
    """An INSERT, UPDATE or DELETE statement (not a flush) on rows a part shows: which rows is not
    known here, so every part is old."""
    if not (
        orm_execute_state.is_update or orm_execute_state.is_delete or orm_execute_state.is_insert
    ):
        return
    _forget_seen(orm_execute_state.session)
    mapper = orm_execute_state.bind_mapper
    if mapper is not None and mapper.class_ in (Course, Enrollment, Feedback, User):
        _pending(orm_execute_state.session).update((CATALOGUE, EVERYTHING))


def _before_commit(session: Session) -> None:
    """A renamed person's courses become scopes; without Redis every scope is bumped here, in
    the transaction (with Redis, after the commit: `_bump_after_commit`)."""
    if session.in_nested_transaction():
        return
    session.flush()
    if badges := session.info.get(PENDING, {}).get(BADGES):
        _pending(session).update(person_scope(user_id) for user_id in badges)
    scopes = session.info.get(PENDING, {}).get(PAGES)
    if not scopes:
        return
    if teachers := {int(s.removeprefix(TEACHER)) for s in scopes if s.startswith(TEACHER)}:
        scopes.difference_update(f"{TEACHER}{teacher}" for teacher in teachers)
        scopes.add(CATALOGUE)
        courses = session.scalars(select(Course.id).where(Course.teacher_id.in_(teachers)))
        scopes.update(course_scope(course_id) for course_id in courses)
        rated = session.scalars(
            select(Feedback.course_id).where(Feedback.student_id.in_(teachers)).distinct()
        )
        scopes.update(feedback_scope(course_id) for course_id in rated)
    fragments = current_app.extensions.get("campus.fragments") if has_app_context() else None
    if fragments is not None and fragments.redis is None:
        _bump_in(session, scopes)


def _bump_in(session: Session, scopes: set[str]) -> None:
    """Each scope's row set to max(version + 1, now in microseconds), inserted if missing."""
    now = int(time.time() * 1_000_000)
    rows = [{"scope": scope, "version": now} for scope in sorted(scopes)]
    session.connection().execute(_bump_statement(session.get_bind().dialect.name), rows)


@functools.cache
def _bump_statement(dialect: str):
    """The upsert, built once per dialect (building it was a millisecond of each enrolment)."""
    table = PageVersion.__table__
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    bigger = (db.func.greatest if dialect == "postgresql" else db.func.max)(
        table.c.version + 1, statement.excluded.version
    )
    return statement.on_conflict_do_update(index_elements=[table.c.scope], set_={"version": bigger})


@when_committed(PAGES)
def _bump_after_commit(scopes: set[str]) -> None:
    fragments = current_app.extensions.get("campus.fragments") if has_app_context() else None
    if fragments is not None and fragments.redis is not None:
        fragments.bump_after_commit(scopes)


def _listen() -> None:
    global _listening
    if _listening:
        return
    event.listen(Session, "after_flush", _after_flush)
    event.listen(Session, "do_orm_execute", _bulk)
    event.listen(Session, "before_commit", _before_commit)
    event.listen(Session, "after_transaction_end", _forget_seen)
    _listening = True
