"""Full-text search of courses and people: every use of Whoosh lives in this package.

`init_app` binds it to the app (start-up check, health check, `flask search reindex`,
indexing after each commit); `courses` and `users` answer queries (app.search.queries)."""

from __future__ import annotations

from app.search import patches  # noqa: F401 - fixes Whoosh before any search runs
from app.search.queries import CourseHits, UserHits, courses, users
from app.search.store import SearchUnavailable, init_app, rebuild

__all__ = [
    "CourseHits",
    "SearchUnavailable",
    "UserHits",
    "courses",
    "init_app",
    "rebuild",
    "users",
]
