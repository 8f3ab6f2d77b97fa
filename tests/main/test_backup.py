"""`flask backup` and `flask restore` on the database the tests use (SQLite, or PostgreSQL in
CI): an archive restored into a fresh database and upload folder gives back every row and
file, and a damaged, truncated or newer archive is refused with the target left empty."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from app import create_app
from app.blueprints.chat.services import course_room_id
from app.blueprints.enrollments.services import enroll
from app.blueprints.materials import storage
from app.extensions import db
from app.models import ChatMessage, Course, Enrollment, Material, SearchIndexState, User
from app.search.indexer import index_name
from tests.conftest import CampusClient


@pytest.fixture
def school(app, client, make_user, make_course, login_as):
    """Accounts, a course with enrolments, two uploaded files and chat messages."""
    teacher = make_user("tina", role="teacher", full_name="Tina Teacher")
    course = make_course(teacher, title="Volcanoes of the World", keywords=["geology"])
    for name in ("sam", "lea"):
        enroll(make_user(name), course.id)
    login_as(teacher)
    files = [(b"%PDF-1.4\n" + bytes(range(256)) * 400, "lava.pdf"), (b"Week 1\n" * 300, "w.txt")]
    for content, name in files:
        response = client.post_form(
            f"/courses/{course.id}/materials",
            {"file": [(io.BytesIO(content), name)]},
            content_type="multipart/form-data",
        )
        assert response.status_code == 303
    room = course_room_id(course.id)
    db.session.add_all(
        ChatMessage(room_id=room, author_id=teacher.id, body=f"Note {n}") for n in range(30)
    )
    db.session.commit()
    return course


def snapshot(database_url: str, upload_dir: Path) -> dict:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            queries = {
                "users": "SELECT username, email FROM users ORDER BY 1",
                "courses": "SELECT title FROM courses",
                "enrollments": "SELECT student_id, course_id, status FROM enrollments ORDER BY 1,2",
                "messages": "SELECT count(*) FROM chat_messages",
                "materials": "SELECT stored_name, sha256 FROM materials ORDER BY 1",
            }
            rows = {name: connection.execute(text(sql)).all() for name, sql in queries.items()}
    finally:
        engine.dispose()
    rows["files"] = sorted(p.name for p in (upload_dir / "files").glob("*"))
    return rows


@pytest.fixture
def fresh_target(migrated_database: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An empty database of the same kind, and an empty upload folder."""
    url = make_url(migrated_database)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'restored.db'}", tmp_path / "restored-uploads"
        return
    name = f"restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False), tmp_path / "up"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def restored_app(target: tuple[str, Path]):
    database_url, upload_dir = target
    app = create_app(
        "testing",
        SQLALCHEMY_DATABASE_URI=database_url,
        UPLOAD_DIR=str(upload_dir),
        SEARCH_INDEX_DIR=str(upload_dir.parent / "restored-index"),
    )
    app.test_client_class = CampusClient
    return app


def run(app, *args: str):
    """A `flask` command of `app` (the test's own app context is pushed: Flask's runner would
    use that one)."""
    with app.app_context():
        return app.test_cli_runner().invoke(args=list(args))


def make_backup(app, tmp_path: Path) -> Path:
    result = app.test_cli_runner().invoke(args=["backup", "--to", str(tmp_path / "backups")])
    assert result.exit_code == 0, result.output
    archives = list((tmp_path / "backups").glob("campus-backup-*.tar"))
    assert len(archives) == 1
    return archives[0]


def test_a_backup_restored_into_an_empty_school_gives_everything_back(
    app, school, tmp_path, fresh_target, migrated_database
):
    before = snapshot(migrated_database, Path(app.config["UPLOAD_DIR"]))
    archive = make_backup(app, tmp_path)
    assert not list(archive.parent.glob(".*"))  # no partial archive left beside it

    # The copy of the index held back the pruning of the feed only while the backup ran.
    assert not [name for name in db.session.scalars(select(SearchIndexState.name))
                if name.endswith(":backup")]  # fmt: skip
    with tarfile.open(archive) as opened:
        names = opened.getnames()
    assert "search/applied.json" in names and any(n.endswith(".toc") for n in names)

    target = restored_app(fresh_target)
    result = run(target, "restore", str(archive))
    assert result.exit_code == 0, result.output
    # The archive's copy of the search index is caught up, not rebuilt from the tables.
    assert "Catching up the archive's search index" in result.output
    assert "Rebuilding" not in result.output
    after = snapshot(*fresh_target)
    assert after == before
    assert len(after["files"]) == 2 and after["messages"] == [(30,)]
    for stored_name, sha256 in after["materials"]:
        assert storage.digest(fresh_target[1] / "files" / stored_name) == sha256
    # The archive's list of indexes (its server's) is not carried over: they would hold back
    # the pruning of the feed here for ever.
    with target.app_context():
        own = index_name(target.extensions["campus.search"].root)
        assert set(db.session.scalars(select(SearchIndexState.name))) <= {own}
    # The restored school runs: its search finds the course, people sign in, files download.
    client = target.test_client()
    found = client.get("/search/courses?q=volcano").get_data(as_text=True)
    assert "data-course-id" in found and "Volcanoes" in found
    assert (
        client.post_form(
            "/auth/login", {"login": "sam", "password": "Correct-Horse-42"}
        ).status_code
        == 303
    )
    with target.app_context():
        material_id = db.session.scalar(select(Material.id))
    assert client.get(f"/materials/{material_id}/download").status_code == 200
    with target.app_context():
        db.engine.dispose()


def test_a_second_restore_is_refused_unless_forced(app, school, tmp_path, fresh_target):
    archive = make_backup(app, tmp_path)
    target = restored_app(fresh_target)
    assert run(target, "restore", str(archive)).exit_code == 0
    again = run(target, "restore", str(archive))
    assert again.exit_code != 0 and "not empty" in again.output
    forced = run(target, "restore", str(archive), "--force")
    assert forced.exit_code == 0, forced.output
    with target.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 3
        db.engine.dispose()


def rewritten(archive: Path, change) -> Path:
    """A copy of the archive with `change(name, data) -> data` applied to each member."""
    copy = archive.with_name("changed.tar")
    with tarfile.open(archive) as source, tarfile.open(copy, "w") as out:
        for member in source:
            data = change(member.name, source.extractfile(member).read())
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    return copy


def flip_a_byte(name: str, data: bytes) -> bytes:
    if name.startswith("files/") and name.endswith(tuple("0123456789abcdef")):
        return bytes([data[0] ^ 0xFF]) + data[1:]
    return data


def newer_revision(name: str, data: bytes) -> bytes:
    if name == "manifest.json":
        manifest = json.loads(data)
        manifest["campus_revision"] = "9999"
        return json.dumps(manifest).encode()
    return data


@pytest.mark.parametrize("damage", ["truncated", "flipped byte", "newer revision"])
def test_a_damaged_archive_is_refused_and_leaves_the_target_empty(
    app, school, tmp_path, fresh_target, damage
):
    archive = make_backup(app, tmp_path)
    if damage == "truncated":
        broken = archive.with_name("truncated.tar")
        broken.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
        says = "truncated or damaged"
    elif damage == "flipped byte":
        broken, says = rewritten(archive, flip_a_byte), "damaged"
    else:
        broken, says = rewritten(archive, newer_revision), "upgrade Campus first"
    target = restored_app(fresh_target)
    result = run(target, "restore", str(broken))
    assert result.exit_code != 0
    assert says in result.output
    engine = create_engine(fresh_target[0])
    try:
        with engine.connect() as connection:
            assert inspect(connection).get_table_names() == []
    finally:
        engine.dispose()
    files = fresh_target[1] / "files"
    assert not files.exists() or not any(files.iterdir())


def test_an_archive_member_that_would_land_outside_the_upload_folder_is_refused(
    app, school, tmp_path, fresh_target
):
    archive = make_backup(app, tmp_path)
    crafted = archive.with_name("crafted.tar")
    with tarfile.open(archive) as source, tarfile.open(crafted, "w") as out:
        for member in source:
            data = source.extractfile(member).read()
            if member.name.startswith("files/"):
                member.name = "files/../../escaped"
            out.addfile(member, io.BytesIO(data))
    result = run(restored_app(fresh_target), "restore", str(crafted))
    assert result.exit_code != 0 and "which a Campus backup does not" in result.output
    assert not (fresh_target[1].parent / "escaped").exists()
    assert not (fresh_target[1] / "escaped").exists()


def test_keep_prunes_the_oldest_archives(app, school, tmp_path):
    runner = app.test_cli_runner()
    folder = tmp_path / "nightly"
    for _ in range(3):
        result = runner.invoke(args=["backup", "--to", str(folder), "--keep", "2"])
        assert result.exit_code == 0, result.output
        import time

        time.sleep(1.1)  # archives are named by the second
    assert len(list(folder.glob("campus-backup-*.tar"))) == 2


def test_the_counts_in_the_manifest(app, school, tmp_path):
    archive = make_backup(app, tmp_path)
    with tarfile.open(archive) as opened:
        manifest = json.loads(opened.extractfile("manifest.json").read())
    counts = manifest["counts"]
    assert counts["users"] == 3 and counts["materials"] == 2 and counts["chat_messages"] == 30
    assert manifest["files"] == 2
    assert db.session.scalar(select(func.count(Enrollment.id))) == counts["enrollments"]
    assert db.session.scalar(select(func.count(Course.id))) == counts["courses"]


def test_a_backup_taken_while_twenty_people_write_restores_whole(
    live_server, make_user, make_course, tmp_path, fresh_target, migrated_database
):
    """20 students enrol and chat and a teacher uploads files through the live server while
    `flask backup` runs: what was committed before the backup began is all restored, and
    every restored material has its file, byte for byte."""
    import threading
    import time

    from app.blueprints.auth.services import hash_password
    from tests.conftest import PASSWORD, ROOT
    from tests.live_client import LiveClient

    teacher = make_user("tina", role="teacher")
    courses = [make_course(teacher, title=f"Course {n}").id for n in range(3)]
    password_hash = hash_password(PASSWORD)
    db.session.add_all(
        User(username=f"busy{n}", email=f"busy{n}@school.example", full_name=f"Busy {n}",
             role="student", password_hash=password_hash, bio="")
        for n in range(20)
    )  # fmt: skip
    db.session.commit()
    people = []
    for n in range(20):
        person = LiveClient(live_server)
        person.sign_in(f"busy{n}", PASSWORD)
        people.append(person)
    tina = LiveClient(live_server)
    tina.sign_in("tina", PASSWORD)
    rooms = {course_id: course_room_id(course_id) for course_id in courses}
    stop = threading.Event()
    errors: list[str] = []

    def student(n: int, person: LiveClient) -> None:
        course_id = courses[n % 3]
        if person.post(f"/courses/{course_id}/enroll") != 303:
            errors.append(f"busy{n} could not enrol")
        while not stop.is_set():
            status = person.post(f"/chat/{rooms[course_id]}/messages", {"body": f"hi from {n}"})
            if status not in (303, 429):
                errors.append(f"busy{n} chat {status}")
            time.sleep(0.05)

    def teacher_uploads() -> None:
        import http.client

        count = 0
        while not stop.is_set():
            count += 1
            boundary = "campus-bench"
            content = b"%PDF-1.4\n" + str(count).encode() * 5000
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n'
                    f'{tina.token}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file";'
                    f' filename="notes{count}.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
                ).encode()
                + content
                + f"\r\n--{boundary}--\r\n".encode()
            )
            connection = http.client.HTTPConnection(tina.host, tina.port, timeout=30)
            headers = {
                "Content-Type": f"multipart/form-data; boundary={boundary}",
                "Cookie": "; ".join(f"{k}={v}" for k, v in tina.cookies.items()),
            }
            connection.request("POST", f"/courses/{courses[0]}/materials", body, headers)
            status = connection.getresponse().status
            connection.close()
            if status != 303:
                errors.append(f"upload {status}")

    threads = [threading.Thread(target=student, args=(n, p)) for n, p in enumerate(people)]
    threads.append(threading.Thread(target=teacher_uploads))
    for thread in threads:
        thread.start()
    try:
        # The school is busy: at least 20 messages and a file committed (on a loaded machine
        # that takes longer than the usual second and a half).
        engine = create_engine(migrated_database)
        deadline = time.monotonic() + 60
        with engine.connect() as connection:
            while time.monotonic() < deadline:
                messages, files = (
                    connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()  # noqa: S608
                    for table in ("chat_messages", "materials")
                )
                connection.rollback()
                if messages >= 20 and files:
                    break
                time.sleep(0.1)
        engine.dispose()
        source = create_app(
            "testing",
            SQLALCHEMY_DATABASE_URI=migrated_database,
            UPLOAD_DIR=str(ROOT / "instance" / "test-live-uploads"),
        )
        engine = create_engine(migrated_database)
        with engine.connect() as connection:  # committed before the backup began
            committed = {
                table: set(connection.execute(text(f"SELECT id FROM {table}")).scalars())  # noqa: S608
                for table in ("chat_messages", "enrollments", "materials", "users")
            }
        engine.dispose()
        result = run(source, "backup", "--to", str(tmp_path / "busy"))
        assert result.exit_code == 0, result.output
        time.sleep(0.5)  # and goes on after it
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert errors == []
    assert len(committed["chat_messages"]) >= 20 and committed["materials"]
    archive = next((tmp_path / "busy").glob("campus-backup-*.tar"))
    target = restored_app(fresh_target)
    restored = run(target, "restore", str(archive))
    assert restored.exit_code == 0, restored.output
    engine = create_engine(fresh_target[0])
    with engine.connect() as connection:
        for table, ids in committed.items():
            there = set(connection.execute(text(f"SELECT id FROM {table}")).scalars())  # noqa: S608
            assert ids <= there, f"{table}: {len(ids - there)} committed rows missing"
        materials = connection.execute(text("SELECT stored_name, sha256 FROM materials")).all()
    engine.dispose()
    for stored_name, sha256 in materials:
        assert storage.digest(fresh_target[1] / "files" / stored_name) == sha256
    with target.app_context():
        db.engine.dispose()
