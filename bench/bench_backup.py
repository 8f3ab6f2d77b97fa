"""`flask backup` and `flask restore` on a school's worth of data, against the floor of the same
work done by the plain tools in the same run, and the app's page time while a backup runs.

The school: 10,000 published courses (each with its chat room), 100,000 chat messages and
2 GB of uploaded files (200 files of 10 MB of random bytes, as material rows), in SQLite in a
temporary folder or in the PostgreSQL database of DATABASE_URL (whose `public` schema is
dropped and migrated again; the restores go to a second database, `<name>_restore`).

- Backup floor: `sqlite3 DB ".backup FILE"` (or `pg_dump -Fc`), then `tar -cf` of the upload
  folder's files. Campus: `flask backup --to DIR` (the snapshot, every file hashed, the
  manifest, one tar).
- Restore floor: `tar -xf` into an empty folder, then `sqlite3 NEW ".restore FILE"` (or
  `pg_restore`). Campus: `flask restore ARCHIVE` into an empty database and folder (every
  member checked, the migrations brought up to date, the search index rebuilt); its own
  progress lines give the time of each part.
- Backups are timed twice: with the files in the page cache (just written or read), and,
  when the bench runs as root, after emptying the page cache before each side, so that the
  files come from the disk as in a nightly backup.
- Pages: gunicorn (gunicorn.conf.py's settings) serves the school; one client asks for
  catalogue pages and course pages back to back, for 10 s idle and then for as long as a
  third backup runs; p50/p95 of each.

Goals: backup and restore within 1.3x of their floor; the p95 during a backup within 2x idle.

    .venv/bin/python bench/bench_backup.py [--courses 10000] [--messages 100000]
        [--files 200] [--file-mb 10] [--runs 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from server import ROOT, bench_environment, gunicorn, migrate
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]
BACKUP_GOAL, PAGES_GOAL = 1.3, 2.0


def seed(env: dict[str, str], courses: int, messages: int, files: int, file_mb: int) -> None:
    """The school, inserted with SQLAlchemy Core in batches; the files written straight to disk."""
    os.environ.update(env)
    from app import create_app
    from app.extensions import db
    from app.models import ChatMessage, ChatRoom, Course, Material, User

    app = create_app("production")
    with app.app_context():
        teachers = [
            {"username": f"teacher{n}", "email": f"teacher{n}@bench.example",
             "full_name": f"Teacher {n}", "role": "teacher", "password_hash": "", "bio": ""}
            for n in range(100)
        ]  # fmt: skip
        db.session.execute(insert(User), teachers)
        teacher_ids = db.session.scalars(text("SELECT id FROM users ORDER BY id")).all()
        for start in range(0, courses, 2000):
            db.session.execute(
                insert(Course),
                [
                    {"title": f"Course {n} on subject {n % 97}", "keywords": "bench, school",
                     "description": f"Lessons {n}: reading, writing and the sums of {n}.",
                     "capacity": None, "published": True,
                     "teacher_id": teacher_ids[n % len(teacher_ids)]}
                    for n in range(start, min(start + 2000, courses))
                ],
            )  # fmt: skip
        course_ids = db.session.scalars(text("SELECT id FROM courses ORDER BY id")).all()
        db.session.execute(insert(ChatRoom), [{"course_id": cid} for cid in course_ids])
        room_ids = db.session.scalars(text("SELECT id FROM chat_rooms ORDER BY id")).all()
        for start in range(0, messages, 10_000):
            db.session.execute(
                insert(ChatMessage),
                [
                    {"room_id": room_ids[n % len(room_ids)],
                     "author_id": teacher_ids[n % len(teacher_ids)],
                     "body": f"Message {n}: see the notes for this week."}
                    for n in range(start, min(start + 10_000, messages))
                ],
            )  # fmt: skip
        folder = Path(app.config["UPLOAD_DIR"]) / "files"
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for n in range(files):
            block = os.urandom(1024 * 1024)
            name, sha = secrets.token_hex(16), hashlib.sha256()
            with (folder / name).open("wb") as out:
                for part in range(file_mb):
                    chunk = block[part:] + block[:part]  # no two megabytes alike
                    out.write(chunk)
                    sha.update(chunk)
            rows.append(
                {"course_id": course_ids[n % len(course_ids)], "title": f"File {n}",
                 "original_name": f"file{n}.zip", "stored_name": name,
                 "content_type": "application/zip", "size": file_mb * 1024 * 1024,
                 "sha256": sha.hexdigest(), "uploaded_by_id": teacher_ids[0]}
            )  # fmt: skip
        db.session.execute(insert(Material), rows)
        db.session.commit()
        db.engine.dispose()


def run(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Run a command to the end; its wall time and output (stops the bench if it fails)."""
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return took, result.stdout + result.stderr


def timed_lines(command: list[str], env: dict[str, str]) -> list[tuple[float, str]]:
    """Run a command, noting when each line of its output arrived (seconds from the start)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = [(time.perf_counter() - started, line.rstrip()) for line in process.stdout]
    if process.wait():
        raise SystemExit(f"{' '.join(command)} failed:\n" + "\n".join(line for _, line in lines))
    return [*lines, (time.perf_counter() - started, "(done)")]


class Pages:
    """One client asking for catalogue and course pages back to back, timing each."""

    def __init__(self, url: str, course_ids: list[int]) -> None:
        self.url, self.course_ids = url, course_ids
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._ask)

    def _ask(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            path = (
                f"/courses?page={n % 400 + 1}"
                if n % 2
                else f"/courses/{self.course_ids[n % len(self.course_ids)]}"
            )
            started = time.perf_counter()
            with urllib.request.urlopen(self.url + path, timeout=30) as answer:
                answer.read()
            self.times.append((time.perf_counter() - started) * 1000)

    def __enter__(self) -> Pages:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> tuple[float, float, int]:
        ordered = sorted(self.times)
        return statistics.median(ordered), ordered[int(len(ordered) * 0.95) - 1], len(ordered)


def fresh_database(env: dict[str, str], workdir: Path, name: str) -> str:
    """An empty database for a restore: a new SQLite file, or `<db>_restore` emptied."""
    url = make_url(env["DATABASE_URL"])
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{workdir / name}.db"
    target = url.set(database=f"{url.database}_restore")
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()
    return target.render_as_string(hide_password=False)


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def floor_backup(env: dict[str, str], workdir: Path) -> tuple[float, Path, Path]:
    url, uploads = make_url(env["DATABASE_URL"]), Path(env["UPLOAD_DIR"])
    dump = workdir / ("floor.sqlite" if url.get_backend_name() == "sqlite" else "floor.pgdump")
    tar = workdir / "floor.tar"
    if url.get_backend_name() == "sqlite":
        database, _ = run(["sqlite3", url.database, f".backup {dump}"])
    else:
        database, _ = run(
            ["pg_dump", "-Fc", "--no-owner", "-f", str(dump), plain(env["DATABASE_URL"])]
        )
    files, _ = run(["tar", "-cf", str(tar), "-C", str(uploads), "files"])
    return database + files, dump, tar


def floor_restore(env: dict[str, str], workdir: Path, dump: Path, tar: Path) -> float:
    target_url = fresh_database(env, workdir, "floor-restored")
    folder = workdir / "floor-restored"
    folder.mkdir()
    files, _ = run(["tar", "-xf", str(tar), "-C", str(folder)])
    if dump.suffix == ".sqlite":
        database, _ = run(["sqlite3", make_url(target_url).database, f".restore {dump}"])
    else:
        database, _ = run(
            ["pg_restore", "--no-owner", "--single-transaction", "-d", plain(target_url), str(dump)]
        )
    return files + database


def campus_restore(env: dict[str, str], workdir: Path, archive: Path) -> tuple[float, dict]:
    target = env | {
        "DATABASE_URL": fresh_database(env, workdir, "restored"),
        "UPLOAD_DIR": str(workdir / "restored-uploads"),
        "SEARCH_INDEX_DIR": str(workdir / "restored-index"),
    }
    lines = timed_lines([*FLASK, "restore", str(archive)], target)
    marks = {"checked": "Restoring the database", "database": "Restoring the files",
             "files": "Bringing the database", "migrations": "Rebuilding the search index",
             "search index": "(done)"}  # fmt: skip
    parts, before = {}, 0.0
    for part, ends_at in marks.items():
        at = next((when for when, line in lines if line.startswith(ends_at)), before)
        parts[part], before = at - before, at
    parts = {"starting (and checking)": parts.pop("checked"), **parts}
    return lines[-1][0], parts


def clean(workdir: Path, *keep: str) -> None:
    for path in workdir.iterdir():
        if path.name in keep:
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--courses", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--file-mb", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()

    school = Path(tempfile.mkdtemp(prefix="campus-bench-backup-"))
    work = Path(tempfile.mkdtemp(prefix="campus-bench-backup-work-"))
    env = bench_environment(
        UPLOAD_DIR=str(school / "uploads"), SEARCH_INDEX_DIR=str(school / "index")
    )
    url = make_url(env["DATABASE_URL"])
    if url.get_backend_name() != "sqlite":
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public;"))
        engine.dispose()
    print(
        f"database: {url.get_backend_name()}; seeding {options.courses:,} courses, "
        f"{options.messages:,} messages, {options.files} files of {options.file_mb} MB…"
    )
    migrate(env)
    started = time.perf_counter()
    seed(env, options.courses, options.messages, options.files, options.file_mb)
    run([*FLASK, "search", "reindex"], env)
    print(f"seeded in {time.perf_counter() - started:.1f} s\n")

    engine = create_engine(url)
    with engine.connect() as connection:
        course_ids = connection.execute(text("SELECT id FROM courses ORDER BY id")).scalars().all()
    engine.dispose()

    results = []
    with gunicorn("wsgi:app", env, "/healthz") as base:
        for number in range(1, options.runs + 1):
            run_result = one_run(env, work, base, course_ids)
            results.append(run_result)
            report(number, run_result)
    clean(work)
    shutil.rmtree(work)
    shutil.rmtree(school, ignore_errors=True)  # a stopped server may still be closing its index
    print(f"\nmedian of {len(results)} runs:")
    for kind in ("warm", "cold"):
        if all(kind in result for result in results):
            backups = [r[kind]["campus"] / r[kind]["floor"] for r in results]
            print(f"  backup, files {kind}: {statistics.median(backups):.2f}x of the floor")
    restores = [r["restore"]["campus"] / r["restore"]["floor"] for r in results]
    pages = [r["pages"]["busy"][1] / r["pages"]["idle"][1] for r in results]
    print(f"  restore: {statistics.median(restores):.2f}x of the floor")
    print(f"  pages p95 during a backup: {statistics.median(pages):.2f}x idle")


def drop_caches() -> bool:
    """Empty the kernel's page cache (root only), so that files are read from the disk, as by
    a nightly backup; False when this machine does not allow it."""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def campus_backup(env: dict[str, str], work: Path) -> tuple[float, float, Path]:
    """`flask backup`: its wall time, the part spent starting the command, the archive."""
    shutil.rmtree(work / "archives", ignore_errors=True)
    lines = timed_lines([*FLASK, "backup", "--to", str(work / "archives")], env)
    return lines[-1][0], lines[0][0], next((work / "archives").glob("campus-backup-*.tar"))


def one_run(env: dict[str, str], work: Path, base: str, course_ids: list[int]) -> dict:
    """Backups with the files in the page cache (just read) and, where allowed, read from the
    disk; page times idle and during a backup; both restores."""
    clean(work)
    result: dict = {}
    floor, dump, tar = floor_backup(env, work)
    campus, starting, archive = campus_backup(env, work)
    result["warm"] = {"floor": floor, "campus": campus, "starting": starting}
    if drop_caches():
        floor = floor_backup(env, work)[0]
        drop_caches()
        campus, starting, archive = campus_backup(env, work)
        result["cold"] = {"floor": floor, "campus": campus, "starting": starting}
    with Pages(base, course_ids) as idle:
        time.sleep(10)
    with Pages(base, course_ids) as busy:
        campus_backup(env, work)
    result["pages"] = {"idle": idle.summary(), "busy": busy.summary()}
    archive = next((work / "archives").glob("campus-backup-*.tar"))
    result["size"] = archive.stat().st_size / 2**30
    floor = floor_restore(env, work, dump, tar)
    campus, parts = campus_restore(env, work, archive)
    result["restore"] = {"floor": floor, "campus": campus, "parts": parts}
    return result


def report(number: int, result: dict) -> None:
    print(f"run {number}: archive {result['size']:.2f} GiB")
    for kind, said in (("warm", "files in the page cache"), ("cold", "files read from disk")):
        if kind in result:
            r = result[kind]
            print(f"  backup, {said}: floor {r['floor']:5.1f} s  campus {r['campus']:5.1f} s  "
                  f"{r['campus'] / r['floor']:.2f}x (goal ≤ {BACKUP_GOAL}x); starting the "
                  f"command (Python, the app) {r['starting']:.1f} s of it")  # fmt: skip
    r = result["restore"]
    told = ", ".join(f"{part} {seconds:.1f} s" for part, seconds in r["parts"].items())
    print(f"  restore: floor {r['floor']:5.1f} s  campus {r['campus']:5.1f} s  "
          f"{r['campus'] / r['floor']:.2f}x (goal ≤ {BACKUP_GOAL}x): {told}")  # fmt: skip
    (i50, i95, i_n), (b50, b95, b_n) = result["pages"]["idle"], result["pages"]["busy"]
    print(f"  pages: idle p50 {i50:5.1f} ms p95 {i95:5.1f} ms (n={i_n}); during a backup "
          f"p50 {b50:5.1f} ms p95 {b95:5.1f} ms (n={b_n}): {b95 / i95:.2f}x (goal ≤ "
          f"{PAGES_GOAL}x)")  # fmt: skip


if __name__ == "__main__":
    main()
