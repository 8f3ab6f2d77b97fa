"""Backups and restores (DESIGN.md "Data safety"): one archive with a consistent snapshot of the
database taken while the app serves, every stored file, and a manifest with each member's
SHA-256; a restore checks all of it before it writes anything.

The archive is a plain tar (uploads are mostly compressed already): `database.sqlite` (SQLite's
online backup API) or `database.pgdump` (`pg_dump -Fc`); `search/<file>`, a copy of the search
index taken just before the snapshot (a restore catches it up instead of rebuilding it); then
`files/<stored name>` for every file a material row of the snapshot points to, then
`manifest.json`. Each member is hashed as it is written, so every file is read once; the
manifest comes last because only then are all the hashes known (a restore also reads archives
with the manifest first, as earlier ones were)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from alembic.script import ScriptDirectory
from flask import Flask, current_app
from sqlalchemy import Connection, create_engine, inspect, text
from sqlalchemy.engine import make_url
from whoosh.filedb.filestore import FileStorage

CHUNK = 1024 * 1024
FORMAT = 1
PREFIX = "campus-backup-"
# What a stored file may be called inside the archive's files/ (never a path of its own).
STORED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
INDEX_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")

Progress = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore that cannot be done, with the reason for the operator."""


@dataclass(frozen=True)
class Written:
    path: Path
    files: int
    bytes: int
    seconds: float


def _script_directory(app: Flask) -> ScriptDirectory:
    from flask_migrate import Migrate

    migrate: Migrate = app.extensions["migrate"].migrate
    return ScriptDirectory.from_config(migrate.get_config())


def _database_url(app: Flask) -> str:
    return app.config["SQLALCHEMY_DATABASE_URI"]


@contextlib.contextmanager
def _connected(url: str) -> Iterator[Connection]:
    """A connection of an engine of its own, in a transaction committed at the end: not the
    app's pool, whose connections may predate a snapshot or a restore."""
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


def _revision(connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


# Backing up -------------------------------------------------------------------------------


def backup(to: Path, keep: int | None = None, progress: Progress = print) -> Written:
    """Write one archive into `to` (a temporary name, renamed when complete); with `keep`, the
    oldest archives beyond that many are removed."""
    app = current_app._get_current_object()
    started = time.monotonic()
    to.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    final = to / f"{PREFIX}{stamp}.tar"
    with (
        tempfile.TemporaryDirectory(dir=to, prefix=".backup-") as work,
        _search_copy(app, progress) as index_copy,
    ):
        work_dir = Path(work)
        database, kind, revision, counts, stored = _snapshot(app, work_dir, progress)
        files_dir = Path(app.config["UPLOAD_DIR"]) / "files"
        manifest = {
            "format": FORMAT,
            "campus_revision": revision,
            "database": kind,
            "created_at": datetime.now(UTC).isoformat(),
            "counts": counts,
            "members": {},
        }
        partial = to / f".{final.name}.partial"
        total = 0
        with (
            tarfile.open(partial, "w", copybufsize=CHUNK) as archive,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-sha") as hasher,
        ):
            members = manifest["members"]
            members[database.name] = _add_hashed(archive, database, database.name, hasher)[0]
            for path in sorted(index_copy.iterdir()) if index_copy is not None else []:
                name = f"search/{path.name}"
                members[name] = _add_hashed(archive, path, name, hasher)[0]
            copied = []
            for number, name in enumerate(stored, start=1):
                try:
                    sha, size = _add_hashed(archive, files_dir / name, f"files/{name}", hasher)
                except FileNotFoundError:  # deleted since the snapshot: nothing to keep
                    progress(f"  {name}: gone since the snapshot, left out")
                    continue
                members[f"files/{name}"] = sha
                copied.append(name)
                total += size
                if number % 500 == 0:
                    progress(f"  archived {number:,} of {len(stored):,} files")
            manifest["files"] = len(copied)
            data = json.dumps(manifest, indent=1, sort_keys=True).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mtime = len(data), int(time.time())
            archive.addfile(info, io.BytesIO(data))
        os.replace(partial, final)
    if keep is not None:
        for old in sorted(to.glob(f"{PREFIX}*.tar"))[:-keep] if keep > 0 else []:
            old.unlink()
            progress(f"  removed the older {old.name}")
    return Written(final, len(copied), total, time.monotonic() - started)


@contextlib.contextmanager
def _search_copy(app: Flask, progress: Progress) -> Iterator[Path | None]:
    """The search index as it is now, hard-linked beside it while Whoosh's write locks are
    held (milliseconds: the indexer waits), its progress file first, so the copy has applied
    at least what its progress says. Taken before the database snapshot, so the snapshot holds
    every change the copy lacks; until the snapshot is taken the feed keeps those rows (the
    copy is registered like an index, which holds back pruning). A restore then catches the
    copy up instead of rebuilding the index (minutes for a large school). None when there is
    no index to copy; the restore rebuilds then."""
    from app.search.indexer import PROGRESS, load_progress, register, unregister
    from app.search.store import NAMES

    search = app.extensions.get("campus.search")
    directory = search.current_directory() if search is not None else None
    found = load_progress(directory) if directory is not None else None
    if found is None:
        yield None
        return
    register(search, found.done, suffix=":backup")
    copy = search.root / f".backup-{os.getpid()}-{time.monotonic_ns()}"
    try:
        copy.mkdir()
        shutil.copy2(Path(directory) / PROGRESS, copy / PROGRESS)
        storage = FileStorage(directory)
        locks = [storage.lock(f"{name}_WRITELOCK") for name in NAMES]
        deadline = time.monotonic() + 60
        taken = []
        try:
            for lock in locks:
                while not lock.acquire(blocking=False):
                    if time.monotonic() > deadline:
                        raise BackupError("The search index stayed busy for a minute.")
                    time.sleep(0.01)
                taken.append(lock)
            for path in Path(directory).iterdir():
                if path.is_file() and path.name != PROGRESS and not path.name.endswith("LOCK"):
                    try:
                        os.link(path, copy / path.name)
                    except OSError:  # a file system without hard links
                        shutil.copy2(path, copy / path.name)
        finally:
            for lock in taken:
                lock.release()
        progress(f"Copied the search index (changes applied up to {found.done}).")
        yield copy
    finally:
        shutil.rmtree(copy, ignore_errors=True)
        with contextlib.suppress(Exception):
            unregister(search, ":backup")


def _add_hashed(
    archive: tarfile.TarFile, path: Path, name: str, hasher: ThreadPoolExecutor
) -> tuple[str, int]:
    """Add one file to the archive; its SHA-256 and size. The kernel copies the data into
    the archive (no pass through Python's buffers) while a second thread hashes the same open
    file (hashlib lets go of the GIL); a file read from the disk is read once, the second
    reader finding it in the page cache. Stored files are never changed in place (written
    under another name, then renamed), so both see the same bytes."""
    with path.open("rb") as file:
        info = archive.gettarinfo(arcname=name, fileobj=file)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        digest = hasher.submit(_sha256, file.fileno(), info.size)
        archive.addfile(info)  # the header only: the data follows
        _append_data(archive, file.fileno(), info.size)
        return digest.result(), info.size


def _sha256(fd: int, size: int) -> str:
    sha, offset = hashlib.sha256(), 0
    while offset < size and (chunk := os.pread(fd, CHUNK, offset)):
        sha.update(chunk)
        offset += len(chunk)
    return sha.hexdigest()


def _append_data(archive: tarfile.TarFile, fd: int, size: int) -> None:
    """`size` bytes of `fd` after the member's header, padded to tar's blocks, as
    `TarFile.addfile` would write them."""
    out = archive.fileobj
    out.flush()
    copied = 0
    while copied < size:
        try:
            sent = os.copy_file_range(fd, out.fileno(), size - copied, copied)
        except OSError:  # another file system, an older kernel: through Python
            sent = out.raw.write(os.pread(fd, min(CHUNK, size - copied), copied) or b"")
        if not sent:
            raise BackupError(f"{archive.name}: a file grew shorter while it was archived")
        copied += sent
    out.seek(0, os.SEEK_END)  # the buffered file learns where the kernel left it
    blocks, remainder = divmod(size, tarfile.BLOCKSIZE)
    if remainder:
        out.write(tarfile.NUL * (tarfile.BLOCKSIZE - remainder))
        blocks += 1
    archive.offset += blocks * tarfile.BLOCKSIZE


def _snapshot(app: Flask, work: Path, progress: Progress):
    """The database as of one moment, the revision, row counts and the stored file names."""
    url = make_url(_database_url(app))
    if url.get_backend_name() == "sqlite":
        if not url.database:
            raise BackupError("An in-memory SQLite database cannot be backed up.")
        target = work / "database.sqlite"
        progress("Copying the database (SQLite's online backup)…")
        source = sqlite3.connect(url.database)
        try:
            copy = sqlite3.connect(target)
            with copy:
                source.backup(copy)
            copy.close()
        finally:
            source.close()
        snapshot_url = f"sqlite:///{target}"
        kind = "sqlite"
    elif url.get_backend_name() == "postgresql":
        target = work / "database.pgdump"
        progress("Dumping the database (pg_dump -Fc)…")
        _pg_tool_matches(app, "pg_dump")
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        result = subprocess.run(  # noqa: S603 - our own tool and URL
            ["pg_dump", "-Fc", "--no-owner", "--file", str(target), plain],  # noqa: S607
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
        snapshot_url = None
        kind = "postgresql"
    else:
        raise BackupError(f"Backing up {url.get_backend_name()} is not supported.")
    # What the snapshot holds: read from the copy for SQLite; for PostgreSQL from the live
    # database, which may have gained rows since pg_dump's snapshot (extra files are harmless,
    # and the counts say "at least").
    with _connected(snapshot_url or _database_url(app)) as connection:
        revision = _revision(connection)
        counts = {
            table: connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar()  # noqa: S608
            for table in sorted(inspect(connection).get_table_names())
        }
        stored = list(connection.execute(text("SELECT stored_name FROM materials")).scalars())
    return target, kind, revision, counts, stored


def _pg_tool_matches(app: Flask, tool: str) -> None:
    """pg_dump / pg_restore of the server's major version, with a clear message otherwise."""
    if shutil.which(tool) is None:
        raise BackupError(
            f"{tool} is not installed: install PostgreSQL's client of the server's version "
            "(Debian: postgresql-client)."
        )
    found = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout  # noqa: S603
    tool_major = found.split()[-1].split(".")[0] if found else "?"
    with _connected(_database_url(app)) as connection:
        server = connection.execute(text("SHOW server_version")).scalar() or ""
    server_major = server.split(".")[0]
    if tool_major != server_major:
        raise BackupError(
            f"{tool} is version {tool_major} but the server is {server_major}: install the "
            f"client of version {server_major}."
        )


# Restoring --------------------------------------------------------------------------------


def restore(archive_path: Path, force: bool = False, progress: Progress = print) -> dict:
    """Fill an empty database and upload folder from an archive. Every member is checked
    against the manifest before anything is written; a damaged, truncated or newer archive is
    refused and the target left as it was."""
    app = current_app._get_current_object()
    if not archive_path.is_file():
        raise BackupError(f"There is no archive at {archive_path}.")
    files_dir = Path(app.config["UPLOAD_DIR"]) / "files"
    files_dir.mkdir(parents=True, exist_ok=True)
    if not force:
        _refuse_unless_empty(app, files_dir)
    from app.search import store

    search_dir = Path(app.config["SEARCH_INDEX_DIR"])
    search_dir.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=files_dir.parent, prefix=".restore-") as work,
        tempfile.TemporaryDirectory(dir=search_dir, prefix=".restore-") as index_work,
    ):
        work_dir = Path(work)
        manifest = _unpack_checked(archive_path, work_dir, progress)
        revision = manifest.get("campus_revision")
        _check_revision(app, revision)
        progress("Restoring the database…")
        _restore_database(app, manifest, work_dir)
        progress("Restoring the files…")
        for path in (work_dir / "files").glob("*") if (work_dir / "files").exists() else []:
            os.replace(path, files_dir / path.name)
        # The index copy is used only by the code that wrote it: another revision may index
        # other fields.
        index_copy = None
        if (work_dir / "search").is_dir() and revision == _script_directory(app).get_current_head():
            index_copy = Path(index_work) / "index"
            shutil.move(str(work_dir / "search"), str(index_copy))
        progress("Bringing the database to this version's revision…")
        from flask_migrate import upgrade

        upgrade()
        _forget_indexes(app)
        if index_copy is not None:
            progress("Catching up the archive's search index…")
            manifest["search"] = store.adopt(index_copy, app)
        else:
            progress("Rebuilding the search index…")
            manifest["search"] = store.rebuild(app)
    return manifest


def _forget_indexes(app: Flask) -> None:
    """The archive's list of search indexes is its server's, not this one's: an index it names
    would hold back the pruning of the feed here for ever. This server's registers itself."""
    with _connected(_database_url(app)) as connection:
        connection.execute(text("DELETE FROM search_indexes"))


def _refuse_unless_empty(app: Flask, files_dir: Path) -> None:
    with _connected(_database_url(app)) as connection:
        tables = set(inspect(connection).get_table_names())
        rows = (
            connection.execute(text("SELECT count(*) FROM users")).scalar()
            if "users" in tables
            else 0
        )
    if rows or any(files_dir.iterdir()):
        raise BackupError(
            "The database or the upload folder is not empty: restore into empty ones, or add "
            "--force to replace what is there."
        )


def _unpack_checked(archive_path: Path, work: Path, progress: Progress) -> dict:
    """Extract into `work`, checking every member's SHA-256; BackupError on any damage."""
    try:
        with tarfile.open(archive_path, "r:") as archive:
            manifest, found = _extract_hashed(archive, work)
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError) as error:
        raise BackupError(f"The archive cannot be read (truncated or damaged): {error}") from None
    if manifest is None:
        raise BackupError(
            "This is not a whole Campus backup (truncated or damaged): it has no manifest."
        )
    expected: dict[str, str] = manifest["members"]
    for name, sha in found.items():
        if name not in expected:
            raise BackupError(f"The archive holds {name!r}, which its manifest does not.")
        if sha != expected[name]:
            raise BackupError(f"{name} is damaged: its SHA-256 does not match.")
    missing = set(expected) - set(found)
    if missing:
        raise BackupError(f"The archive is incomplete: {len(missing)} members missing.")
    progress(f"Checked {len(found)} members against the manifest.")
    return manifest


def _extract_hashed(archive: tarfile.TarFile, work: Path) -> tuple[dict | None, dict[str, str]]:
    """Every member into `work` with its SHA-256, and the manifest (None if there is none)."""
    manifest, found = None, {}
    for member in archive:
        name = member.name
        if name == "manifest.json" and manifest is None:
            manifest = json.loads(archive.extractfile(member).read())
            continue
        if not member.isfile() or name in found or not _safe_name(name):
            raise BackupError(f"The archive holds {name!r}, which a Campus backup does not.")
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256()
        with archive.extractfile(member) as source, target.open("wb") as out:
            while chunk := source.read(CHUNK):
                sha.update(chunk)
                out.write(chunk)
        found[name] = sha.hexdigest()
    return manifest, found


def _safe_name(name: str) -> bool:
    """The database or one stored file: nothing that could land outside the work folder."""
    if name in ("database.sqlite", "database.pgdump"):
        return True
    folder, _, stored = name.partition("/")
    if folder == "search":  # Whoosh's files: `_courses_2.toc`, `courses_x1y2.seg`
        return INDEX_FILE.fullmatch(stored) is not None
    return folder == "files" and STORED_NAME.fullmatch(stored) is not None


def _check_revision(app: Flask, revision: str | None) -> None:
    scripts = _script_directory(app)
    if revision is None:
        raise BackupError("The archive does not say which database revision it holds.")
    try:
        scripts.get_revision(revision)
    except Exception:
        raise BackupError(
            f"The archive's database is at revision {revision}, which this version of Campus "
            "does not know (a newer Campus made it): upgrade Campus first."
        ) from None


def _restore_database(app: Flask, manifest: dict, work: Path) -> None:
    url = make_url(_database_url(app))
    kind = manifest["database"]
    if kind != url.get_backend_name():
        raise BackupError(f"The archive holds a {kind} database; this Campus uses {url}.")
    if kind == "sqlite":
        source = sqlite3.connect(work / "database.sqlite")
        try:
            target = sqlite3.connect(url.database)
            with target:
                source.backup(target)
            target.close()
        finally:
            source.close()
    else:
        _pg_tool_matches(app, "pg_restore")
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with _connected(_database_url(app)) as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public;"))
        result = subprocess.run(  # noqa: S603 - our own tool and URL
            [  # noqa: S607
                "pg_restore",
                "--no-owner",
                "--single-transaction",
                "--exit-on-error",
                "-d",
                plain,
                str(work / "database.pgdump"),
            ],
            capture_output=True,
            text=True,
        )
        if result.returncode:
            raise BackupError(f"pg_restore failed: {result.stderr.strip()}")
