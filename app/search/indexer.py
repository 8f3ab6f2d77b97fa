"""Each server's indexer: applies the rows of `search_changes` to its index in order, in
batches, and keeps what it has applied in the index directory (`applied.json`).

One indexer per index directory: every process of the server is a candidate, and the one that
holds `indexer.lock` (flock: released by the kernel when its process dies, so another takes
over) does the work. The others, and the requests of all of them, only wait for their own
change to be applied (`wait_for`), reading `applied.json`; none writes the index.

Ids are taken just before each commit, so they reach the table almost in order; a lower id
may still become visible after a higher one (two transactions committing at once). The
indexer therefore keeps the highest id below which everything is applied (`done`), the ids
applied above it (`seen`), and waits for the missing ones below the highest seen: a gap that
stays empty for SEARCH_GAP_SECONDS was a rolled-back transaction."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, delete, func, select, text, update

from app.models import SearchChange, SearchIndexState
from app.models.user import utcnow

log = logging.getLogger(__name__)
PROGRESS = "applied.json"


@dataclass
class Progress:
    """What an index directory holds of the feed."""

    done: int = 0  # every change up to this id is applied (or never committed)
    seen: set[int] = field(default_factory=set)  # applied ids above `done`
    gaps: dict[int, float] = field(default_factory=dict)  # a missing run's first id: noticed at

    def has(self, change_id: int) -> bool:
        return change_id <= self.done or change_id in self.seen

    def record(self, ids: list[int], now: float, gap_seconds: float) -> None:
        self.seen.update(ids)
        while True:
            self._advance()
            if not self.seen:
                self.gaps.clear()
                return
            # The runs still missing below the highest id applied, each timed from when it
            # was first noticed.
            previous, missing = self.done, set()
            for change_id in sorted(self.seen):
                if change_id > previous + 1:
                    missing.add(previous + 1)
                    self.gaps.setdefault(previous + 1, now)
                previous = change_id
            self.gaps = {start: since for start, since in self.gaps.items() if start in missing}
            since = self.gaps.get(self.done + 1)
            if since is None or now - since < gap_seconds:
                return
            # Nothing came for that long: a rolled-back transaction's ids.
            del self.gaps[self.done + 1]
            self.done = min(self.seen) - 1

    def _advance(self) -> None:
        while self.done + 1 in self.seen:
            self.done += 1
            self.seen.discard(self.done)

    def as_json(self) -> str:
        return json.dumps(
            {"done": self.done, "seen": sorted(self.seen),
             "gaps": {str(k): v for k, v in self.gaps.items()}}
        )  # fmt: skip

    @classmethod
    def from_json(cls, data: str) -> Progress:
        parsed = json.loads(data)
        return cls(
            int(parsed["done"]),
            set(parsed.get("seen", [])),
            {int(k): float(v) for k, v in parsed.get("gaps", {}).items()},
        )


def load_progress(directory: str | Path) -> Progress | None:
    try:
        return Progress.from_json((Path(directory) / PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError):
        return None


def save_progress(directory: str | Path, progress: Progress) -> None:
    path = Path(directory) / PROGRESS
    temporary = path.with_name(f"{PROGRESS}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_text(progress.as_json(), encoding="utf-8")
    os.replace(temporary, path)


def newest_id(connection: Connection) -> int:
    """The highest id the feed has given, even when its rows are gone (pruned, or the tests'
    emptied tables): a new index starts after it."""
    newest = connection.scalar(select(func.max(SearchChange.id)))
    if newest is not None:
        return newest
    dialect = connection.dialect.name
    if dialect == "sqlite":
        return (
            connection.scalar(text("SELECT seq FROM sqlite_sequence WHERE name = 'search_changes'"))
            or 0
        )
    if dialect == "postgresql":
        sequence = connection.scalar(text("SELECT pg_get_serial_sequence('search_changes', 'id')"))
        last = "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM "
        return connection.scalar(text(last + sequence)) or 0  # the name is the catalogue's
    return 0


def pending_rows(connection: Connection, progress: Progress, limit: int) -> list:
    """The next rows not yet applied, in id order."""
    rows = connection.execute(
        select(SearchChange.id, SearchChange.kind, SearchChange.key)
        .where(SearchChange.id > progress.done)
        .order_by(SearchChange.id)
        .limit(limit + len(progress.seen))
    ).all()
    return [row for row in rows if row.id not in progress.seen][:limit]


def apply_pending(directory: str, engine, batch: int, gap_seconds: float) -> tuple[int, bool]:
    """Apply the next batch of rows to the index in `directory`; (rows applied, whether more
    are waiting). The index is committed before its progress: a crash in between applies
    those rows again, which is harmless (the documents are read again from the rows)."""
    from app.search.store import Changes, write_to

    progress = load_progress(directory)
    if progress is None:
        raise RuntimeError(f"{directory} has no {PROGRESS}")
    with engine.connect() as connection:
        rows = pending_rows(connection, progress, batch)
        if not rows and progress.done > newest_id(connection):
            raise FeedReset(f"{directory} has applied changes the database never had")
        if rows:
            changes = Changes()
            for row in rows:
                {"course": changes.courses, "teacher": changes.teachers,
                 "user": changes.users}.get(row.kind, set()).add(row.key)  # fmt: skip
            write_to(directory, connection, changes)
    progress.record([row.id for row in rows], time.time(), gap_seconds)
    if rows or progress.seen:
        save_progress(directory, progress)
    return len(rows), len(rows) >= batch


class FeedReset(Exception):
    """The database is not the one the index followed (restored, or made anew): rebuild."""


class Indexer:
    """The candidate indexer of one app: a thread that applies the feed while this process
    holds the index's lock, and the waiting for a change to be applied."""

    def __init__(self, search, config) -> None:
        self.search = search
        self.batch = int(config.get("SEARCH_BATCH", 500))
        self.poll_seconds = float(config.get("SEARCH_POLL_SECONDS", 1.0))
        self.wait_seconds = float(config.get("SEARCH_WAIT_SECONDS", 5.0))
        self.gap_seconds = float(config.get("SEARCH_GAP_SECONDS", 60.0))
        self.stale_seconds = float(config.get("SEARCH_STALE_SECONDS", 30.0))
        self.prune_seconds = float(config.get("SEARCH_PRUNE_SECONDS", 60.0))
        self.fold_seconds = float(config.get("SEARCH_FOLD_SECONDS", 2))
        self.lazy_seconds = float(config.get("SEARCH_LAZY_SECONDS", 0.25))
        self.enabled = bool(config.get("SEARCH_INDEXER", True))
        self._wake = threading.Event()
        self._urgent = threading.Event()  # a request waits for the change that woke us
        self._stop = threading.Event()
        self._applied = threading.Condition()
        self._thread: threading.Thread | None = None
        self._lock_file = None
        self._nudged = self._nudged_later = 0
        self._published = self._pruned = 0.0
        self._written: float | None = None  # when a batch last wrote, until folded
        self.last_error: str | None = None
        self._progress_cache: tuple[tuple, Progress | None] = ((), None)

    # The thread -------------------------------------------------------------------------------

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="search-indexer", daemon=True)
        self._thread.start()
        _running.add(self)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None
        self._release()
        _running.discard(self)

    @property
    def elected(self) -> bool:
        return self._lock_file is not None

    def _elect(self) -> bool:
        root = self.search.root
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / "indexer.lock", "a")  # noqa: SIM115 - held while elected
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._lock_file = handle
        log.info("search indexer of %s runs in process %s", root, os.getpid())
        return True

    def _release(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _run(self) -> None:
        pause = 0.0
        while not self._stop.is_set():
            if not self.elected and not self._elect():
                self._stop.wait(0.5)  # another process indexes; take over if it dies
                continue
            # A pass reads every row committed before it starts: a wake that came before is
            # answered by it. Left set, a waited-for wake answered by the last pass would make
            # the next idle end at once and apply a change nobody waits for alone.
            self._urgent.clear()
            self._wake.clear()
            try:
                more = self.run_once()
                self.last_error, pause = None, 0.0
            except Exception as error:  # the rows stay in the feed: retried, never dropped
                message = f"{type(error).__name__}: {error}"
                if message != self.last_error:  # once, not at every retry
                    log.exception("search indexer: a batch failed; retrying")
                self.last_error = message
                pause = min(max(pause * 2, 0.1), 5.0)
                self._stop.wait(pause)
                continue
            if not more:
                self._fold_when_quiet()
                self._idle()

    def _fold_when_quiet(self) -> None:
        """Once no batch has come for `fold_seconds`, fold the segments the batches added
        (app.search.store.fold_segments): searches stay fast, and a burst of changes is not
        slowed by merging."""
        from app.search.store import fold_segments

        if self._written is None or time.monotonic() - self._written < self.fold_seconds:
            return
        directory = self.search.current_directory()
        try:
            folded = fold_segments(directory) if directory else {}
        except Exception:  # searches go on with more segments; tried again after a batch
            log.exception("search: folding segments failed")
        else:
            if folded:
                log.info("search: folded segments %s", folded)
        finally:
            self._written = None

    def _idle(self) -> None:
        """Until woken by a commit of this process, a nudge from another, or the poll. A change
        nobody waits for (an enrolment) is applied up to `lazy_seconds` later, with those that
        follow it: at a rush each batch would otherwise hold one change, and each batch costs a
        commit of the index (a new segment) and the opening of its readers. Once such a change
        is known, the pass comes at its time, not at the poll's: the poll would otherwise apply
        it early, alone, whenever it came just before the poll was due."""
        now = time.monotonic()
        deadline, later = now + self.poll_seconds, None
        while not self._stop.is_set() and now < (deadline if later is None else later):
            if self._wake.wait(0.01):
                self._wake.clear()
                if self._urgent.is_set():
                    self._urgent.clear()
                    break
                later = later or now + self.lazy_seconds
            nudged, nudged_later = self._nudge_time("nudge"), self._nudge_time("nudge-later")
            if nudged != self._nudged:
                self._nudged = nudged
                break
            if nudged_later != self._nudged_later:
                self._nudged_later = nudged_later
                later = later or now + self.lazy_seconds
            now = time.monotonic()

    def _nudge_time(self, name: str) -> int:
        try:
            return os.stat(self.search.root / name).st_mtime_ns
        except OSError:
            return 0

    def run_once(self) -> bool:
        """One batch on the current directory; True when more rows are waiting."""
        from app.search.store import ensure_index

        directory = self.search.current_directory()
        if directory is None or load_progress(directory) is None:
            ensure_index(self.search)
            directory = self.search.current_directory()
            if directory is None:
                return False
        try:
            applied, more = apply_pending(directory, self.search.engine(), self.batch,
                                          self.gap_seconds)  # fmt: skip
        except FeedReset as error:
            from app.search.store import rebuild_now

            log.warning("search: %s; rebuilding", error)
            rebuild_now(self.search)
            return True
        with self._applied:
            self._applied.notify_all()
        now = time.monotonic()
        if applied:
            self._written = now
        if now - self._published > (1 if applied else 5):  # the registry: at most once a second
            self._publish(directory)
            self._published = now
        if now - self._pruned > self.prune_seconds:
            self._pruned = now
            prune(self.search.engine())
        return more

    def _publish(self, directory: str) -> None:
        progress = load_progress(directory) or Progress()
        register(self.search, progress.done)

    # Waiting -----------------------------------------------------------------------------------

    def wake(self, waited_for: bool = True) -> None:
        """A change was committed: the indexer of this server looks at once, or within
        `lazy_seconds` when nobody waits for it (this process becomes a candidate if it was not
        yet one)."""
        if self._thread is None and not self._stop.is_set():
            self.start()
        if self.elected:
            if waited_for:
                self._urgent.set()
            self._wake.set()
        else:
            with contextlib.suppress(OSError):
                path = self.search.root / ("nudge" if waited_for else "nudge-later")
                path.touch()
                os.utime(path)

    def progress(self) -> Progress | None:
        """The current index's progress, read again only when its file changed."""
        directory = self.search.current_directory()
        if directory is None:
            return None
        try:
            stat = os.stat(Path(directory) / PROGRESS)
        except OSError:
            return None
        key = (directory, stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if self._progress_cache[0] != key:
            self._progress_cache = (key, load_progress(directory))
        return self._progress_cache[1]

    def applied(self, change_id: int) -> bool:
        progress = self.progress()
        return progress is not None and progress.has(change_id)

    def wait_for(self, change_id: int, timeout: float | None = None) -> bool:
        """Wait until the change is in this server's index; False after `timeout` (the change
        stays in the feed and is applied later)."""
        deadline = time.monotonic() + (self.wait_seconds if timeout is None else timeout)
        while not self.applied(change_id):
            if time.monotonic() > deadline:
                log.warning("search: change %s not applied within the wait", change_id)
                return False
            if self.elected:
                with self._applied:
                    self._applied.wait(0.05)
            else:
                time.sleep(0.005)
        return True

    def wait_for_all(self, timeout: float | None = None) -> bool:
        """Wait until everything committed so far is applied (tests, benchmarks)."""
        with self.search.engine().connect() as connection:
            newest = newest_id(connection)
        self.wake()
        return self.wait_for(newest, timeout)

    # Health ---------------------------------------------------------------------------------

    def health(self) -> str:
        """Not ok when the oldest change not yet applied has waited too long."""
        progress = self.progress()
        if progress is None:
            return "error: the index has no progress file"
        with self.search.engine().connect() as connection:
            rows = connection.execute(
                select(SearchChange.id, SearchChange.created_at)
                .where(SearchChange.id > progress.done)
                .order_by(SearchChange.id)
                .limit(1000 + len(progress.seen))
            ).all()
        waiting = [row for row in rows if row.id not in progress.seen]
        if not waiting:
            return "ok"
        oldest = waiting[0].created_at
        if oldest.tzinfo is None:  # SQLite gives naive UTC
            from datetime import UTC

            oldest = oldest.replace(tzinfo=UTC)
        age = (utcnow() - oldest).total_seconds()
        if age > self.stale_seconds:
            error = f"; last error {self.last_error}" if self.last_error else ""
            return f"error: indexer {len(waiting)}+ changes behind, oldest {age:.0f} s{error}"
        return "ok"


_running: set[Indexer] = set()


def stop_indexers() -> None:
    """Stop every indexer this process started (tests: each test's app stops its own)."""
    for indexer in list(_running):
        indexer.stop()


# The registry of indexes ----------------------------------------------------------------------


def index_name(root: Path) -> str:
    """This index directory's lasting name, kept in the directory."""
    path = root / "name"
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        root.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        # Its own temporary file: two threads of one process may name it at once (a request
        # and the indexer).
        temporary = root / f"name.{name}.tmp"
        temporary.write_text(name, encoding="utf-8")
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)  # the first to name it wins
        temporary.unlink(missing_ok=True)
        return path.read_text(encoding="utf-8").strip()


def register(search, applied: int, suffix: str = "") -> None:
    """Record how far this index is (`suffix` ":rebuild" for a rebuild under way, which holds
    back pruning until it has caught up)."""
    name = index_name(search.root) + suffix
    values = {"host": socket.gethostname(), "directory": str(search.root), "applied": applied,
              "updated_at": utcnow()}  # fmt: skip
    with search.engine().begin() as connection:
        changed = connection.execute(
            update(SearchIndexState).where(SearchIndexState.name == name).values(**values)
        ).rowcount
        if not changed:
            connection.execute(SearchIndexState.__table__.insert().values(name=name, **values))


def unregister(search, suffix: str) -> None:
    name = index_name(search.root) + suffix
    with search.engine().begin() as connection:
        connection.execute(delete(SearchIndexState).where(SearchIndexState.name == name))


def prune(engine) -> int:
    """Delete the rows every known index has applied."""
    with engine.begin() as connection:
        lowest = connection.scalar(select(func.min(SearchIndexState.applied)))
        if not lowest:
            return 0
        return connection.execute(delete(SearchChange).where(SearchChange.id <= lowest)).rowcount


def status() -> dict:
    from flask import current_app

    search = current_app.extensions["campus.search"]
    with search.engine().connect() as connection:
        newest = newest_id(connection)
        rows = connection.scalar(select(func.count()).select_from(SearchChange))
        indexes = connection.execute(select(SearchIndexState).order_by(SearchIndexState.name))
        listed = [
            {
                "name": row.name,
                "host": row.host,
                "directory": row.directory,
                "applied": row.applied,
                "behind": max(newest - row.applied, 0),
                "updated_at": row.updated_at,
            }
            for row in indexes
        ]
    return {"newest": newest, "rows": rows, "indexes": listed}
