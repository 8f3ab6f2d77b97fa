"""Full-text search of courses and people: every use of Whoosh lives in this package.

`init_app` binds it to the app (start-up check, health check, `flask search reindex` and
`status`, the feed of changes and this server's indexer); `courses` and `users` answer
queries (app.search.queries)."""

from __future__ import annotations

from app.search import patches  # noqa: F401 - fixes Whoosh before any search runs
from app.search.queries import CourseHits, UserHits, courses, users
from app.search.store import SearchUnavailable, init_app, rebuild
from app.search.sync import do_not_wait, wait_for_all

__all__ = [
    "CourseHits",
    "SearchUnavailable",
    "UserHits",
    "courses",
    "do_not_wait",
    "init_app",
    "rebuild",
    "users",
    "wait_for_all",
]
