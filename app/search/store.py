"""The index on disk: which directory is current, the searcher each process keeps, writing
changes (only the indexer does, app/search/indexer.py), and rebuilding into a new directory
that is swapped in at once.

Layout of SEARCH_INDEX_DIR:
    current -> index-<time>-<pid>   a symlink, replaced atomically by `rebuild`
    index-<time>-<pid>/             Whoosh storage holding the "courses" and "users" indexes,
                                    and applied.json: how far it has followed `search_changes`
    indexer.lock                    held by the one process of this server that indexes
    nudge                           touched after a commit: the indexer looks at once
    name                            this index's name in the `search_indexes` table
    rebuild.lock                    one rebuild at a time, across processes
"""

from __future__ import annotations

import contextlib
import fcntl
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
NAMES = ("courses", "users")
MERGE_AT = 8  # segments  # also the order writers lock them in: never a deadlock


class SearchUnavailable(Exception):
    """The index cannot be read; callers fall back to SQL."""


@dataclass
class Changes:
    """What changed, by id (a batch of the feed); the documents are read from the database
    when they are written, so they are always the latest rows."""

    courses: set[int] = field(default_factory=set)
    teachers: set[int] = field(default_factory=set)  # every course of these teachers
    users: set[int] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.courses or self.teachers or self.users)

    def update(self, other: Changes) -> None:
        self.courses |= other.courses
        self.teachers |= other.teachers
        self.users |= other.users


class SearchIndex:
    """One per app and process: the open indexes and searchers of the current directory."""

    def __init__(self, root: str, engine_getter) -> None:
        self.root = Path(root)
        self._engine = engine_getter
        self.indexer = None  # app.search.indexer.Indexer, set by init_app
        self._lock = threading.Lock()
        self._directory: str | None = None
        self._indexes: dict[str, whoosh_index.Index] = {}
        self._searchers: dict[str, object] = {}

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
                searcher = self._searcher(name)
            except SearchUnavailable:
                raise
            except Exception as error:  # a damaged or unreadable index
                self._directory = None
                raise SearchUnavailable(f"{type(error).__name__}: {error}") from error
            yield searcher

    def _searcher(self, name: str, attempts: int = 5) -> object:
        """A commit between finding the newest generation and reading it removes the files
        of the one it replaced: looking again finds the commit's own."""
        for _ in range(attempts - 1):
            try:
                return self._current_searcher(name)
            except FileNotFoundError:
                self._directory = None  # opened afresh
        return self._current_searcher(name)

    def _current_searcher(self, name: str) -> object:
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
        return searcher

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

    # Writing -------------------------------------------------------------------------------

    def engine(self) -> Engine:
        return self._engine()

    def health(self) -> str:
        try:
            self.doc_counts()
        except SearchUnavailable as error:
            return f"error: {error}"
        try:
            return self.indexer.health()
        except Exception as error:  # the database is down: its own check says so
            return f"error: {type(error).__name__}"


def write_to(directory: str, connection, changes: Changes) -> None:
    """Write changes to the indexes in `directory`, under Whoosh's lock (only its indexer,
    or a rebuild catching up before its swap, writes a directory: the wait is short)."""
    storage = FileStorage(directory)
    names = [name for name in NAMES if _touches(name, changes)]
    writers = []
    try:
        deadline = time.monotonic() + 60
        for name in names:
            writers.append((name, _writer(storage.open_index(indexname=name), deadline)))
        for name, writer in writers:
            write_changes(writer, name, connection, changes)
        for _name, writer in writers:
            # Whoosh merges small segments at each commit: most of a small batch's cost. A
            # batch only adds its segment; merging waits until there are several.
            writer.commit(merge=len(writer.segments) >= MERGE_AT)
        writers = []
    finally:
        for _name, writer in writers:
            writer.cancel()


# Documents that may be folded into one segment while the indexer is idle: Whoosh rewrites
# them (about 3 ms a course, 1 ms a person) under the index's lock, so a change arriving
# meanwhile waits that long. Beyond this, `flask search reindex` compacts the index.
FOLD_MOST = {"courses": 500, "users": 2000}


def fold_segments(directory: str) -> dict[str, int]:
    """Fold the segments the batches added into one beside the largest; the number of
    segments folded by index. Each segment costs every search its own matchers: at 50,000
    courses, five small ones beside the big one doubled the ranked ids' p50."""
    storage = FileStorage(directory)
    folded = {}
    for name in NAMES:
        try:
            writer = _writer(storage.open_index(indexname=name), time.monotonic() + 0.5)
        except LockError:
            continue  # a rebuild is catching up: the next quiet moment
        segments = sorted(writer.segments, key=lambda segment: segment.doc_count_all())
        small = segments[:-1]
        if len(small) < 2 or sum(s.doc_count_all() for s in small) > FOLD_MOST[name]:
            writer.cancel()
            continue
        writer.commit(mergetype=_beside_largest)
        folded[name] = len(small)
    return folded


def _beside_largest(writer, segments: list) -> list:
    """A Whoosh merge policy: every segment but the largest read into the new one (its
    deleted documents left out)."""
    from whoosh.reading import SegmentReader

    largest = max(segments, key=lambda segment: segment.doc_count_all())
    for segment in segments:
        if segment is not largest:
            reader = SegmentReader(writer.storage, writer.schema, segment)
            writer.add_reader(reader)
            reader.close()
    return [largest]


def _writer(index, deadline: float):
    """A writer of one index, waiting for Whoosh's lock with growing pauses; LockError once
    the deadline has passed."""
    pause = 0.005
    while True:
        try:
            return index.writer()
        except LockError:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause * (1 + random.random()))  # noqa: S311 - jitter, not secrets
            pause = min(pause * 2, 0.2)


def _touches(name: str, changes: Changes) -> bool:
    return bool(changes.courses or changes.teachers) if name == "courses" else bool(changes.users)


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
    """One rebuild at a time per index directory; a crashed one's lock goes with its process."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "rebuild.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def rebuild(app: Flask | None = None) -> dict[str, int]:
    """Build both indexes from the tables into a new directory while the current one keeps
    answering and following the feed, apply the changes made meanwhile, and swap it in."""
    app = app or current_app
    search: SearchIndex = app.extensions["campus.search"]
    with _rebuild_lock(search.root):
        return _rebuild(search)


def rebuild_now(search: SearchIndex) -> None:
    with _rebuild_lock(search.root):
        _rebuild(search)


def _rebuild(search: SearchIndex) -> dict[str, int]:
    from app.search.indexer import (
        Progress,
        apply_pending,
        load_progress,
        newest_id,
        register,
        save_progress,
        unregister,
    )

    root = search.root
    old = search.current_directory()
    # Where the new index starts in the feed, taken before the tables are read: the changes
    # after it are applied again on top of what the tables gave (harmless twice).
    progress = load_progress(old) if old is not None else None
    with search.engine().connect() as connection:
        newest = newest_id(connection)
        if progress is None or progress.done > newest:  # none yet, or another database's
            progress = Progress(done=newest)
    with contextlib.suppress(Exception):  # no table yet: nothing to prune anyway
        register(search, progress.done, suffix=":rebuild")  # keeps its rows from pruning
    name = f"index-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{random.randrange(10**6)}"  # noqa: S311
    directory = root / name
    directory.mkdir(parents=True)
    storage = FileStorage(str(directory))
    counts = {}
    with search.engine().connect() as connection:
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
    save_progress(directory, progress)
    # Catch up with the feed before the swap, so that the new index is not behind the old.
    while apply_pending(str(directory), search.engine(), 2_000, search.indexer.gap_seconds)[1]:
        pass
    _swap(search, name)
    with contextlib.suppress(Exception):
        unregister(search, ":rebuild")
    _remove_old(root, keep={name, os.path.basename(old or "")})
    log.info("search index rebuilt in %s: %s", name, counts)
    return counts


def _swap(search: SearchIndex, name: str) -> None:
    """Make `name` the current directory, at once for every process."""
    link = search.root / f"current.{os.getpid()}.tmp"
    link.unlink(missing_ok=True)
    os.symlink(name, link)
    os.replace(link, search.root / "current")
    search.indexer.wake()


def adopt(directory: Path, app: Flask | None = None) -> dict[str, int]:
    """Make a copy of an index taken elsewhere (a backup's) the current one: moved into the
    index folder, caught up with the feed (the changes made after the copy), swapped in. An
    index that has applied changes this database never had is rebuilt instead."""
    from app.search.indexer import FeedReset, apply_pending

    app = app or current_app
    search: SearchIndex = app.extensions["campus.search"]
    with _rebuild_lock(search.root):
        old = search.current_directory()
        name = f"index-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-adopted"
        shutil.move(str(directory), str(search.root / name))
        try:
            while apply_pending(
                str(search.root / name), search.engine(), 2_000, search.indexer.gap_seconds
            )[1]:
                pass
        except FeedReset:
            shutil.rmtree(search.root / name, ignore_errors=True)
            log.warning("search: the copied index is ahead of this database; rebuilding")
            return _rebuild(search)
        _swap(search, name)
        _remove_old(search.root, keep={name, os.path.basename(old or "")})
    return search.doc_counts()


def _remove_old(root: Path, keep: set[str]) -> None:
    """Directories older than the previous one: a process may still read the previous."""
    for path in root.glob("index-*"):
        if path.name not in keep and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def ensure_index(search: SearchIndex) -> None:
    """At start: a missing or empty index is rebuilt from the database."""
    from sqlalchemy import func, select

    from app.models import Course, User

    with search.engine().connect() as connection:
        rows = connection.scalar(select(func.count()).select_from(User)) + connection.scalar(
            select(func.count()).select_from(Course)
        )

    def usable() -> bool:
        from app.search.indexer import load_progress

        current = search.current_directory()
        try:
            return (
                current is not None
                and load_progress(current) is not None  # older indexes do not follow the feed
                and (rows == 0 or any(search.doc_counts().values()))
            )
        except SearchUnavailable:
            return False

    if usable():
        return
    with _rebuild_lock(search.root):
        if not usable():  # another process may have built it while this one waited
            _rebuild(search)


def init_app(app: Flask) -> None:
    from app.blueprints.main.services import add_health_check
    from app.search import sync
    from app.search.indexer import Indexer

    search = SearchIndex(app.config["SEARCH_INDEX_DIR"], lambda: _engine_of(app))
    search.indexer = Indexer(search, app.config)
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
        # Without the check (tools, tests that only build an app), the indexer starts with
        # the first change this process commits.
        search.indexer.start()


def _engine_of(app: Flask) -> Engine:
    from flask import has_app_context

    from app.extensions import db

    if has_app_context() and current_app._get_current_object() is app:
        return db.engine
    with app.app_context():
        return db.engine
