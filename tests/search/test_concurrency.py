"""Four processes change 500 courses at once: every request succeeds, and afterwards the index
holds exactly what the database holds."""

from __future__ import annotations

import multiprocessing

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import Course
from tests.conftest import PASSWORD

PROCESSES, CHANGES = 4, 125  # 500 in all
COURSES_EACH = 25


def change_courses(database_url: str, index_dir: str, username: str, worker: int) -> list[int]:
    """One process: sign in as its teacher, create courses, then edit, publish and unpublish
    them. Returns the status of every request that did not answer 303."""
    from app import create_app
    from tests.conftest import CampusClient

    app = create_app(
        "testing", SQLALCHEMY_DATABASE_URI=database_url, SEARCH_INDEX_DIR=index_dir,
        SEARCH_CHECK_ON_START=False,
    )  # fmt: skip
    app.test_client_class = CampusClient
    failures: list[int] = []
    with app.app_context():
        client = app.test_client()
        response = client.post_form("/auth/login", {"login": username, "password": PASSWORD})
        assert response.status_code == 303
        ids: list[int] = []
        for n in range(CHANGES):
            form = {"description": f"Written by worker {worker}.", "keywords": "rocks",
                    "capacity": "", "published": "y" if n % 3 else ""}  # fmt: skip
            if n < COURSES_EACH:
                response = client.post_form("/courses", form | {"title": f"Geology {worker}-{n}"})
                if response.status_code == 303:
                    ids.append(int(response.headers["Location"].rsplit("/", 1)[1]))
            else:
                course_id = ids[n % len(ids)]
                title = f"Geology {worker}-{course_id} edit {n}"
                response = client.post_form(f"/courses/{course_id}/edit", form | {"title": title})
            if response.status_code != 303:
                failures.append(response.status_code)
    return failures


def test_four_processes_writing_at_once_leave_index_and_database_in_agreement(app, make_user):
    teachers = [make_user(f"teacher{n}", role="teacher").username for n in range(PROCESSES)]
    database_url = app.config["SQLALCHEMY_DATABASE_URI"]
    index_dir = app.config["SEARCH_INDEX_DIR"]
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        results = pool.starmap(
            change_courses,
            [(database_url, index_dir, username, n) for n, username in enumerate(teachers)],
        )
    assert [status for failures in results for status in failures] == []

    db.session.expire_all()
    rows = {
        course.id: {"title": course.title, "published": course.published}
        for course in db.session.scalars(select(Course))
    }
    assert len(rows) == PROCESSES * COURSES_EACH
    indexed = current_app.extensions["campus.search"].stored("courses")
    assert {
        course_id: {"title": fields["title"], "published": fields["published"]}
        for course_id, fields in indexed.items()
    } == rows
