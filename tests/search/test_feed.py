"""The index fed from the database (DESIGN.md "Search index fed from the database"): a crash
after a commit loses nothing, a crashed reindex blocks nothing, stale entries go, the health
check notices an indexer that is stuck, and old rows are pruned once every index has them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.parse
import urllib.request
from pathlib import Path

from flask import current_app
from sqlalchemy import func, insert, select

from app import search
from app.blueprints.admin.services import deactivate
from app.blueprints.enrollments.services import enroll, withdraw
from app.extensions import db
from app.models import Course, SearchChange, SearchIndexState, User
from app.search.indexer import load_progress
from tests.conftest import ROOT, running_server
from tests.search.helpers import course_ids


def find(q: str, viewer_id: int | None = None) -> list[int]:
    return search.courses(q, "", viewer_id, 1, 20).ids


def find_users(q: str, course: int | None = None) -> list[int]:
    return search.users(q, None, course, 1, 20).ids


def current(root: str) -> str:
    return os.readlink(os.path.join(root, "current"))


def run_python(code: str, **environment: str) -> subprocess.Popen:
    env = os.environ | {"CAMPUS_CONFIG": "testing", **environment}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


KILLED_AFTER_COMMIT = """
    import os, signal, sys
    from sqlalchemy import event
    from sqlalchemy.orm import Session
    from app import create_app
    from app.blueprints.courses import services as courses
    from app.extensions import db
    from app.models import User

    app = create_app("testing")
    with app.app_context():
        indexer = app.extensions["campus.search"].indexer
        while not indexer.elected:  # this process is the server's indexer
            import time; time.sleep(0.01)
        teacher = db.session.scalar(db.select(User).where(User.username == "tina"))

        def die(session):  # committed; the index has not been written
            print(db.session.info.get("campus.search.written"), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

        event.listen(Session, "after_commit", die)
        draft = courses.CourseDraft(title="Volcanology", description="Lava.", keywords=[],
                                    capacity=None, published=True)
        courses.create(teacher, draft)
"""


def test_a_change_committed_just_before_a_crash_is_found_after_restart(app, make_user,
                                                                          tmp_path):  # fmt: skip
    make_user("tina", role="teacher")
    root = str(tmp_path / "index")
    database_url = app.config["SQLALCHEMY_DATABASE_URI"]
    # The server's only process: it indexes, and it polls the feed only when nudged.
    child = run_python(KILLED_AFTER_COMMIT, DATABASE_URL=database_url, SEARCH_INDEX_DIR=root,
                       SEARCH_POLL_SECONDS="3600")  # fmt: skip
    assert child.wait(timeout=60) == -signal.SIGKILL
    db.session.expire_all()
    course_id = db.session.scalar(select(Course.id).where(Course.title == "Volcanology"))
    assert course_id is not None  # committed
    directory = current(root)
    progress = load_progress(os.path.join(root, directory))
    change = db.session.scalar(select(func.max(SearchChange.id)))
    assert not progress.has(change)  # and not in the index

    with running_server(database_url, SEARCH_INDEX_DIR=root) as url:
        started = time.monotonic()
        while course_ids_of(url, "volcanology") != [course_id]:
            assert time.monotonic() - started < 2, "not findable 2 s after the restart"
            time.sleep(0.05)
    assert current(root) == directory  # no reindex: the feed carried it


def course_ids_of(url: str, q: str) -> list[int]:
    with urllib.request.urlopen(f"{url}/search/courses?q={q}", timeout=10) as response:
        page = response.read().decode()

    class Page:
        status_code = 200

        def get_data(self, as_text: bool) -> str:
            return page

    return course_ids(Page())


REINDEX = """
    from app import create_app
    from app.search import rebuild
    app = create_app("testing", SEARCH_CHECK_ON_START=False, SEARCH_INDEXER=False)
    with app.app_context():
        rebuild(app)
"""


def test_a_reindex_killed_halfway_blocks_nothing(own_index, make_course, make_user):
    teacher = make_user("tina", role="teacher")
    rows = [{"title": f"Course {n}", "description": "Words " * 50, "keywords": "rocks",
             "teacher_id": teacher.id, "published": True} for n in range(3_000)]  # fmt: skip
    db.session.execute(insert(Course), rows)  # written without the feed: the reindex reads them
    db.session.commit()
    search.rebuild(own_index)
    root = Path(own_index.config["SEARCH_INDEX_DIR"])
    before = current(str(root))
    child = run_python(REINDEX, DATABASE_URL=own_index.config["SQLALCHEMY_DATABASE_URI"],
                       SEARCH_INDEX_DIR=str(root))  # fmt: skip
    deadline = time.monotonic() + 60
    while not [path for path in root.glob("index-*") if path.name != before]:  # building
        assert child.poll() is None and time.monotonic() < deadline, "the reindex ended early"
        time.sleep(0.005)
    time.sleep(0.2)  # well into reading the rows
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=10) == -signal.SIGKILL
    assert current(str(root)) == before  # the old index is still the one in use

    course = make_course(teacher, title="Volcanology")  # writers carry on, at once
    assert find("volcanology") == [course.id]
    assert len(search.courses("course", "", None, 1, 20).ids) == 20

    counts = search.rebuild(own_index)
    assert counts == {"courses": 3_001, "users": 1}
    assert not (root / "indexer.lock").read_text()  # (held by a flock, never written)
    assert current(str(root)) != before and find("volcanology") == [course.id]
    assert len(list(root.glob("index-*"))) == 2  # the half-built one is gone


def test_a_deleted_user_disappears(app, make_user):
    gone = make_user("gone", full_name="Gus Gone")
    assert find_users("gus") == [gone.id]
    db.session.delete(db.session.get(User, gone.id))
    db.session.commit()
    assert find_users("gus") == []


def test_any_change_to_a_users_row_feeds_the_index_in_its_transaction(app, make_user):
    """Deactivating (or erasing: any column the index may come to read) writes the user's
    change in the same transaction, through the one generic path: no search code in the
    service that changes the row. A column the index never shows writes nothing."""
    admin, lea = make_user("ada", role="admin"), make_user("lea", full_name="Lea Left")
    before = db.session.scalar(select(func.max(SearchChange.id)))
    deactivate(db.session.get(User, admin.id), "lea")
    changes = db.session.execute(
        select(SearchChange.kind, SearchChange.key).where(SearchChange.id > before)
    ).all()
    assert ("user", lea.id) in changes
    db.session.get(User, lea.id).last_sign_in_at = db.func.now()
    db.session.commit()
    assert db.session.scalar(select(func.count()).where(SearchChange.id > before)) == len(changes)


def test_an_erasure_of_a_user_needs_no_search_code(app, make_user, make_course):
    """What erasing an account does to its row (placeholders, deactivated) reaches the index
    through the generic user change: their old name finds nothing, on courses either."""
    teacher = make_user("tina", role="teacher", full_name="Tina Okonkwo")
    course = make_course(teacher, title="Geology")
    student = make_user("lena", full_name="Lena Fischer")
    enroll(student, course.id)
    for user, number in ((db.session.get(User, teacher.id), 1),
                         (db.session.get(User, student.id), 2)):  # fmt: skip
        user.username, user.full_name = f"erased-{number}", "Erased account"
        user.email = f"erased-{number}@invalid.example"
        user.deactivated_at = db.func.now()
    db.session.commit()
    assert find_users("fischer") == [] and find_users("okonkwo") == []
    assert len(find_users("erased")) == 2  # (main leaves rows with `erased_at` out entirely)
    assert find("okonkwo") == [] and find("erased") == [course.id]


def test_enrolments_reach_the_user_index(app, make_user, make_course):
    course = make_course(title="Geology")
    pupil = make_user("sam")
    enroll(pupil, course.id)
    search.wait_for_all()  # an enrolment's answer does not wait for the index
    assert sorted(find_users("", course=course.id)) == sorted([pupil.id, course.teacher_id])
    withdraw(db.session.get(User, pupil.id), course.id)
    search.wait_for_all()
    assert find_users("", course=course.id) == [course.teacher_id]


def test_an_enrolment_is_applied_lazily_and_a_change_waited_for_at_once(
    own_index, make_user, make_course
):
    """Nobody searches for their own enrolment right after it: the indexer gathers such
    changes for SEARCH_LAZY_SECONDS into one batch, even when the poll for other servers'
    changes comes sooner. A change its request waits for (a new course) is applied at once,
    taking the gathered ones with it."""
    indexer = own_index.extensions["campus.search"].indexer
    course = make_course(title="Volcanology")
    indexer.lazy_seconds, indexer.poll_seconds = 0.6, 0.1
    students = [make_user(f"lazy{n}", full_name=f"Lazy Student {n}") for n in range(3)]
    began = time.monotonic()
    for student in students:
        enroll(student, course.id)
    assert find_users("lazy", course.id) == []  # not applied yet, and nobody waited for it
    while len(find_users("lazy", course.id)) < 3:
        assert time.monotonic() - began < 5, "the enrolments were never applied"
        time.sleep(0.02)
    assert time.monotonic() - began >= 0.5  # gathered, not one batch each

    indexer.lazy_seconds = 60  # a change waited for must not wait for the gathering
    late = make_user("late", full_name="Late Student")
    enroll(late, course.id)
    began = time.monotonic()
    other = make_course(title="Seismology")
    assert time.monotonic() - began < 5
    assert find("seismology") == [other.id]
    assert set(find_users("student", course.id)) == {s.id for s in (*students, late)}


def test_health_says_search_is_not_ok_while_the_indexer_is_stuck(own_index, make_course):
    indexer = own_index.extensions["campus.search"].indexer
    indexer.stale_seconds, indexer.wait_seconds = 0.5, 0.2
    client = own_index.test_client()
    assert client.get("/healthz").status_code == 200
    indexer.stop()  # stuck
    course = make_course(title="Volcanology")  # the commit stands, its wait gives up
    assert db.session.get(Course, course.id) is not None
    time.sleep(0.7)
    health = client.get("/healthz")
    assert health.status_code == 503 and "behind" in health.json["search"]
    indexer.start()
    assert indexer.wait_for_all(timeout=5)
    assert find("volcanology") == [course.id]
    assert client.get("/healthz").status_code == 200


def pruned() -> tuple[int, list[int]]:
    """Prune; the lowest progress of the known indexes just before, and the rows left."""
    from app.search.indexer import prune

    lowest = db.session.scalar(select(func.min(SearchIndexState.applied)))
    db.session.commit()
    prune(db.engine)
    return lowest, db.session.scalars(select(SearchChange.id)).all()


def test_status_and_pruning_once_every_index_has_the_rows(own_index, make_course):
    from app.search.indexer import register

    for n in range(3):
        make_course(title=f"Geology {n}")
    indexer = own_index.extensions["campus.search"].indexer
    newest = db.session.scalar(select(func.max(SearchChange.id)))
    indexer._publish(indexer.search.current_directory())
    result = own_index.test_cli_runner().invoke(args=["search", "status"])
    assert f"applied {newest}" in result.output and "behind 0" in result.output
    # A second server that has applied only the first rows holds back the rest.
    db.session.add(SearchIndexState(name="other", host="b", directory="/b", applied=newest - 2))
    db.session.commit()
    lowest, left = pruned()
    assert lowest <= newest - 2 and {newest - 1, newest} <= set(left)
    assert all(change_id > lowest for change_id in left)
    db.session.get(SearchIndexState, "other").applied = newest
    db.session.commit()
    register(indexer.search, newest)
    lowest, left = pruned()
    assert all(change_id > lowest for change_id in left)
    assert current_app  # the app still answers searches
    assert len(find("geology")) == 3


def segments(app, name: str) -> int:
    with app.extensions["campus.search"].searching(name) as searcher:
        return len(searcher.reader().leaf_readers())


def test_the_segments_of_a_burst_of_changes_are_folded_once_it_is_quiet(own_index, make_course):
    """Each batch of the feed adds a segment, and each segment costs every search; once no
    change has come for a moment the indexer folds them into one beside the largest."""
    indexer = own_index.extensions["campus.search"].indexer
    indexer.fold_seconds = 3600  # not yet: the burst first
    ids = [make_course(title=f"Geology {n} lava").id for n in range(12)]  # a batch each
    for course_id in ids[:4]:
        course = db.session.get(Course, course_id)
        course.title = f"{course.title} edited"
        db.session.commit()
    assert segments(own_index, "courses") >= 5
    indexer.fold_seconds = 0.1
    indexer.wake()
    deadline = time.monotonic() + 10
    while segments(own_index, "courses") > 2:
        assert time.monotonic() < deadline, "the segments were not folded"
        time.sleep(0.05)
    assert sorted(find("lava")) == sorted(ids)
    assert sorted(find("edited")) == sorted(ids[:4])  # the edits, not the first versions
    make_course(title="Geology after the fold")  # the indexer goes on as before
    assert len(find("geology")) == 13


# Two servers, one database ------------------------------------------------------------------

SERVER_QUERIES = ["geology", "geo", "rocks", "edit", "lava", "volcano", "worker", "written",
                  "geolgy", "introduction"]  # fmt: skip
# How long one server stays stopped while the other takes changes: a minute in the real
# scenario; SEARCH_STOPPED_SECONDS shortens it for a quick run.
STOPPED_SECONDS = float(os.environ.get("SEARCH_STOPPED_SECONDS") or 60)


def change_courses(url: str, username: str, worker: int, changes: int) -> None:
    """Through one server: create ten courses, then edit, publish and unpublish them."""
    import re

    from tests.conftest import PASSWORD
    from tests.live_client import LiveClient

    client = LiveClient(url)
    client.sign_in(username, PASSWORD)
    _, page = client.request("GET", "/dashboard")
    ids = sorted({int(i) for i in re.findall(r'data-course-id="(\d+)"', page)})
    for n in range(changes):
        form = {"description": f"Written by worker {worker}.", "keywords": "rocks",
                "capacity": "", "published": "y" if n % 3 else ""}  # fmt: skip
        if len(ids) < 10:
            status = client.post("/courses", form | {"title": f"Geology {worker} {n}"})
            if n == 9:
                _, page = client.request("GET", "/dashboard")
                ids = sorted({int(i) for i in re.findall(r'data-course-id="(\d+)"', page)})
        else:
            title = f"Geology {worker} edit {n} {'lava' if n % 2 else 'volcano'}"
            status = client.post(f"/courses/{ids[n % len(ids)]}/edit", form | {"title": title})
        assert status == 303, status


def test_two_servers_with_their_own_index_converge(app, make_user, tmp_path):
    """500 changes through two servers, one of them stopped for a while: afterwards both
    indexes hold what the database holds and answer alike."""
    from concurrent.futures import ThreadPoolExecutor

    teachers = [make_user(f"teacher{n}", role="teacher").username for n in range(4)]
    database_url = app.config["SQLALCHEMY_DATABASE_URI"]
    roots = [str(tmp_path / "server-a"), str(tmp_path / "server-b")]
    with running_server(database_url, SEARCH_INDEX_DIR=roots[0]) as a:
        b_server = running_server(database_url, SEARCH_INDEX_DIR=roots[1])
        b = b_server.__enter__()
        try:
            with ThreadPoolExecutor(4) as pool:  # 300 changes, half through each
                servers = [a, b, a, b]
                done = [pool.submit(change_courses, servers[n], teachers[n], n, 75)
                        for n in range(4)]  # fmt: skip
                for future in done:
                    future.result()
        finally:
            b_server.__exit__(None, None, None)
        b_directory = current(roots[1])
        stopped = time.monotonic()
        with ThreadPoolExecutor(2) as pool:  # 200 more while b is down
            done = [pool.submit(change_courses, a, teachers[n], n, 100) for n in range(2)]
            for future in done:
                future.result()
        time.sleep(max(0.0, STOPPED_SECONDS - (time.monotonic() - stopped)))
        with running_server(database_url, SEARCH_INDEX_DIR=roots[1]) as b:
            expected = database_courses()
            assert len(expected) == 40
            deadline = time.monotonic() + 10
            while indexed(roots[1]) != expected or indexed(roots[0]) != expected:
                assert time.monotonic() < deadline, "the indexes did not converge"
                time.sleep(0.1)
            assert current(roots[1]) == b_directory  # caught up from the feed, no reindex
            # The words of the titles as they are now (the last edit's numbers), and a few more.
            titles = sorted({" ".join(title.split()[1:]) for title, _ in expected.values()})
            queries = SERVER_QUERIES + titles[:40]
            assert course_ids_of(a, "geology") and course_ids_of(b, "geology")  # both answer
    readers = [index_reader(root) for root in roots]
    answers = {q: (every_match(readers[0], q), every_match(readers[1], q)) for q in queries}
    assert len(answers) == 50
    assert [q for q, (first, second) in answers.items() if first != second] == []
    assert sum(1 for first, _ in answers.values() if first) >= 45  # the queries find things


def index_reader(root: str):
    """An app that only reads the index in `root`."""
    from app import create_app

    return create_app("testing", SEARCH_INDEX_DIR=root, SEARCH_INDEXER=False,
                      SEARCH_CHECK_ON_START=False)  # fmt: skip


def every_match(reader, q: str) -> list[int]:
    """Every course the query finds in the reader's index, with no time budget (under load a
    server shows the best of what it read in its budget). The order of equal scores follows
    each index's own history, so two servers may rank ties differently: the matches are
    compared."""
    from app.search import queries

    budgets, queries.BUDGETS = queries.BUDGETS, (None, None)
    try:
        with reader.app_context():
            return sorted(search.courses(q, "", None, 1, 200).ids)
    finally:
        queries.BUDGETS = budgets


def indexed(root: str) -> dict[int, tuple[str, bool]]:
    from app.search.store import SearchIndex

    index = SearchIndex(root, lambda: db.engine)
    return {
        course_id: (fields["title"], fields["published"])
        for course_id, fields in index.stored("courses").items()
    }


def database_courses() -> dict[int, tuple[str, bool]]:
    db.session.expire_all()
    return {
        course.id: (course.title, course.published and course.archived_at is None)
        for course in db.session.scalars(select(Course))
    }


def test_threads_of_one_process_naming_a_new_index_at_once_agree(tmp_path):
    """A request registering the index and the indexer may name a new directory at the same
    moment (a restore's first start): one name, and neither fails."""
    import threading

    from app.search.indexer import index_name

    for attempt in range(20):
        root = tmp_path / f"index-{attempt}"
        names, errors = [], []
        start = threading.Barrier(8)

        def name_it(root=root, names=names, errors=errors, start=start) -> None:
            start.wait()
            try:
                names.append(index_name(root))
            except OSError as error:
                errors.append(error)

        threads = [threading.Thread(target=name_it) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and len(set(names)) == 1 and len(names) == 8
        assert sorted(p.name for p in root.iterdir()) == ["name"]  # no temporary file left
