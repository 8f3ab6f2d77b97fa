"""The index on disk: which directory is current, the searcher each process keeps, writers
that wait for Whoosh's lock, and rebuilding into a new directory that is swapped in at once.

Layout of SEARCH_INDEX_DIR:
    current -> index-<time>-<pid>   a symlink, replaced atomically by `rebuild`
    index-<time>-<pid>/             Whoosh storage holding the "courses" and "users" indexes
    rebuilding, journal             while a rebuild runs: writers note what they changed, and
                                    the rebuild applies it to the new index before the swap
    rebuild.lock                    one rebuild at a time, across processes
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import Engine
from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage
from whoosh.index import LockError

from app.search.schema import SCHEMAS, course_document, course_rows, user_documents

log = logging.getLogger(__name__)
NAMES = ("courses", "users")  # also the order writers lock them in: never a deadlock


class SearchUnavailable(Exception):
    """The index cannot be read; callers fall back to SQL."""


@dataclass
class Changes:
    """What a transaction changed, by id; the documents are read from the database when they
    are written, under the index's lock, so the last writer always writes the latest rows."""

    courses: set[int] = field(default_factory=set)
    teachers: set[int] = field(default_factory=set)  # every course of these teachers
    users: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.courses or self.teachers or self.users)

    def update(self, other: Changes) -> None:
        self.courses |= other.courses
        self.teachers |= other.teachers
        self.users |= other.users

    def as_json(self) -> str:
        return json.dumps(
            {key: sorted(getattr(self, key)) for key in ("courses", "teachers", "users")}
        )

    @classmethod
    def from_json(cls, line: str) -> Changes:
        data = json.loads(line)
        return cls(*(set(data.get(key, [])) for key in ("courses", "teachers", "users")))


class SearchIndex:
    """One per app and process: the open indexes and searchers of the current directory."""

    def __init__(self, root: str, write_timeout: float, engine_getter) -> None:
        self.root = Path(root)
        self.write_timeout = write_timeout
        self._engine = engine_getter
        self._lock = threading.Lock()
        self._directory: str | None = None
        self._indexes: dict[str, whoosh_index.Index] = {}
        self._searchers: dict[str, object] = {}
        # Group commit: changes from this process's requests that arrive while one batch is
        # being written are written together in the next one.
        self._batch = threading.Condition()
        self._waiting = Changes()
        self._writing = False
        self._started = self._finished = 0

    # Reading -------------------------------------------------------------------------------

    def current_directory(self) -> str | None:
        try:
            target = os.readlink(self.root / "current")
        except OSError:
            return None
        return str(self.root / target)

    def _open(self, directory: str) -> None:
        for searcher in self._searchers.values():
            searcher.close()
        storage = FileStorage(directory)
        self._indexes = {name: storage.open_index(indexname=name) for name in NAMES}
        self._searchers = {}
        self._directory = directory

    @contextlib.contextmanager
    def searching(self, name: str) -> Iterator[object]:
        """The process's searcher of one index, refreshed only when the index has changed.
        Whoosh's readers are not meant to be shared by threads at once: searches in one
        process take turns (each is a few milliseconds)."""
        with self._lock:
            try:
                directory = self.current_directory()
                if directory is None:
                    raise SearchUnavailable("there is no search index")
                if directory != self._directory:
                    self._open(directory)
                searcher = self._searchers.get(name)
                if searcher is None:
                    searcher = self._searchers[name] = self._indexes[name].searcher()
                elif not searcher.up_to_date():
                    searcher = self._searchers[name] = searcher.refresh()
            except SearchUnavailable:
                raise
            except Exception as error:  # a damaged or unreadable index
                self._directory = None
                raise SearchUnavailable(f"{type(error).__name__}: {error}") from error
            yield searcher

    def doc_counts(self) -> dict[str, int]:
        counts = {}
        for name in NAMES:
            with self.searching(name) as searcher:
                counts[name] = searcher.doc_count()
        return counts

    def stored(self, name: str) -> dict[int, dict]:
        """Every document's stored fields by id: for checks that the index agrees with the rows."""
        with self.searching(name) as searcher:
            return {int(fields["id"]): fields for fields in searcher.all_stored_fields()}

    def health(self) -> str:
        try:
            self.doc_counts()
        except SearchUnavailable as error:
            return f"error: {error}"
        return "ok"

    # Writing -------------------------------------------------------------------------------

    def _writer(self, directory: str, name: str, deadline: float):
        """A writer of one index, waiting for Whoosh's lock with growing pauses; LockError
        once the deadline has passed."""
        index = FileStorage(directory).open_index(indexname=name)
        pause = 0.005
        while True:
            try:
                return index.writer()
            except LockError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(pause * (1 + random.random()))  # noqa: S311 - jitter, not secrets
                pause = min(pause * 2, 0.2)

    def apply(self, changes: Changes) -> None:
        """Write what a committed transaction changed, together with whatever else this
        process committed meanwhile, and return once it is in the index (so a change is
        findable as soon as its request has answered). Under a rush (200 enrolments at once)
        that is a handful of index commits instead of 200 in a row."""
        with self._batch:
            self._waiting.update(changes)
            ticket = self._started + 1  # the first batch that starts from now on has it
            while self._finished < ticket:
                if self._writing:
                    self._batch.wait()
                    continue
                self._writing = True
                batch, self._waiting = self._waiting, Changes()
                self._started += 1
                number = self._started
                self._batch.release()
                try:
                    self._write(batch)
                except Exception:
                    log.exception("search index not updated for %s", batch.as_json())
                finally:
                    self._batch.acquire()
                    self._writing = False
                    self._finished = number
                    self._batch.notify_all()

    def _write(self, changes: Changes) -> None:
        """Write changes under the index's lock. Waits for other writers; a rebuild swapping
        the directory meanwhile makes it start again on the new one."""
        deadline = time.monotonic() + self.write_timeout
        names = [name for name in NAMES if self._touches(name, changes)]
        while True:
            directory = self.current_directory()
            if directory is None:
                return  # no index yet: the start-up check or `reindex` builds it from the rows
            writers = []
            try:
                for name in names:
                    writers.append((name, self._writer(directory, name, deadline)))
                if self.current_directory() != directory:
                    raise _Moved
                with self._engine().connect() as connection:
                    for name, writer in writers:
                        write_changes(writer, name, connection, changes)
                # Journal first: committing releases the index's lock, and a rebuild could
                # replay the journal and swap in between. Replaying twice is harmless (the
                # rows are read again from the database).
                self._journal(changes)
                for _name, writer in writers:
                    writer.commit()
                writers = []
                return
            except _Moved:
                continue
            finally:
                for _name, writer in writers:
                    writer.cancel()

    @staticmethod
    def _touches(name: str, changes: Changes) -> bool:
        return (
            bool(changes.courses or changes.teachers) if name == "courses" else bool(changes.users)
        )

    def _journal(self, changes: Changes) -> None:
        """While a rebuild runs, note the change for it (we still hold the index's lock)."""
        if (self.root / "rebuilding").exists():
            with open(self.root / "journal", "a", encoding="utf-8") as journal:
                journal.write(changes.as_json() + "\n")


class _Moved(Exception):
    """The current directory changed while waiting for its lock."""


def write_changes(writer, name: str, connection, changes: Changes) -> None:
    """Delete every changed document, then add back those whose rows remain. One searcher
    serves all the deletions: Whoosh's `update_document` opens a reader of the whole index
    for each document, which made an import of 1,000 accounts into a school of 20,000 spend
    8 s here."""
    if name == "courses":
        documents = (
            course_document(row)
            for row in course_rows(connection, changes.courses, changes.teachers)
        )
        stale = [("teacher_id", str(teacher_id)) for teacher_id in changes.teachers]
        stale += [("id", str(course_id)) for course_id in changes.courses]
    else:
        documents = user_documents(connection, changes.users)
        stale = [("id", str(user_id)) for user_id in changes.users]
    documents = list(documents)
    with writer.searcher() as searcher:
        for field, value in stale:
            writer.delete_by_term(field, value, searcher=searcher)
    for document in documents:
        writer.add_document(**document)


# Rebuilding -------------------------------------------------------------------------------


@contextlib.contextmanager
def _rebuild_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "rebuild.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def rebuild(app: Flask | None = None) -> dict[str, int]:
    """Build both indexes from the database into a new directory and swap it in. Changes
    committed meanwhile are journaled by their writers and applied before the swap."""
    app = app or current_app
    search: SearchIndex = app.extensions["campus.search"]
    with _rebuild_lock(search.root):
        return _rebuild(search)


def _rebuild(search: SearchIndex) -> dict[str, int]:
    root = search.root
    (root / "journal").unlink(missing_ok=True)
    (root / "rebuilding").touch()
    try:
        name = f"index-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{random.randrange(10**6)}"  # noqa: S311
        directory = root / name
        directory.mkdir()
        storage = FileStorage(str(directory))
        counts = {}
        with search._engine().connect() as connection:
            for index_name in NAMES:
                index = storage.create_index(SCHEMAS[index_name], indexname=index_name)
                writer = index.writer(limitmb=256)
                documents = (
                    (course_document(row) for row in course_rows(connection))
                    if index_name == "courses"
                    else user_documents(connection)
                )
                counts[index_name] = 0
                for document in documents:
                    writer.add_document(**document)
                    counts[index_name] += 1
                writer.commit()
        old = search.current_directory()
        held = []
        try:
            # Hold the old indexes' locks: writers finish their journal lines first, and
            # those that come later wait, then find the new directory.
            if old is not None and os.path.isdir(old):
                deadline = time.monotonic() + max(search.write_timeout, 60)
                held = [search._writer(old, index_name, deadline) for index_name in NAMES]
            _replay_journal(search, str(directory))
            link = root / f"current.{os.getpid()}.tmp"
            link.unlink(missing_ok=True)
            os.symlink(name, link)
            os.replace(link, root / "current")
        finally:
            (root / "rebuilding").unlink(missing_ok=True)
            (root / "journal").unlink(missing_ok=True)
            for writer in held:
                writer.cancel()
    except BaseException:
        (root / "rebuilding").unlink(missing_ok=True)
        raise
    _remove_old(root, keep={name, os.path.basename(old or "")})
    log.info("search index rebuilt in %s: %s", name, counts)
    return counts


def _replay_journal(search: SearchIndex, directory: str) -> None:
    path = search.root / "journal"
    if not path.exists():
        return
    changes = Changes()
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError):
            changes.update(Changes.from_json(line))
    if not changes:
        return
    storage = FileStorage(directory)
    with search._engine().connect() as connection:
        for name in NAMES:
            writer = storage.open_index(indexname=name).writer()
            write_changes(writer, name, connection, changes)
            writer.commit()


def _remove_old(root: Path, keep: set[str]) -> None:
    """Directories older than the previous one: a process may still read the previous."""
    for path in root.glob("index-*"):
        if path.name not in keep and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def ensure_index(search: SearchIndex) -> None:
    """At start: a missing or empty index is rebuilt from the database."""
    from sqlalchemy import func, select

    from app.models import Course, User

    with search._engine().connect() as connection:
        rows = connection.scalar(select(func.count()).select_from(User)) + connection.scalar(
            select(func.count()).select_from(Course)
        )
    try:
        if search.current_directory() is not None and (
            rows == 0 or any(search.doc_counts().values())
        ):
            return
    except SearchUnavailable:
        pass
    with _rebuild_lock(search.root):
        try:  # another process may have built it while this one waited
            if search.current_directory() is not None and (
                rows == 0 or any(search.doc_counts().values())
            ):
                return
        except SearchUnavailable:
            pass
        _rebuild(search)


def init_app(app: Flask) -> None:
    from app.blueprints.main.services import add_health_check
    from app.search import sync

    search = SearchIndex(
        app.config["SEARCH_INDEX_DIR"],
        float(app.config.get("SEARCH_WRITE_TIMEOUT", 30)),
        lambda: _engine_of(app),
    )
    app.extensions["campus.search"] = search
    add_health_check(app, "search", search.health)
    sync.listen()
    app.cli.add_command(sync.search_cli)
    if app.config.get("SEARCH_CHECK_ON_START", True):
        with app.app_context():
            try:
                ensure_index(search)
            except Exception as error:  # no tables yet (before `flask db upgrade`), database down
                log.warning("search index not checked at start: %s", str(error).split("\n")[0])


def _engine_of(app: Flask) -> Engine:
    from flask import has_app_context

    from app.extensions import db

    if has_app_context() and current_app._get_current_object() is app:
        return db.engine
    with app.app_context():
        return db.engine
