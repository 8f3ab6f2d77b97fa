"""The dashboard's contents, and the health of the parts the app depends on."""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app
from sqlalchemy import text

from app.extensions import db

HealthCheck = Callable[[], str]


def database_health() -> str:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as error:  # any failure is reported, not raised
        db.session.rollback()
        return f"error: {type(error).__name__}"
    return "ok"


def health_checks() -> dict[str, HealthCheck]:
    """Each part's check; search and the live broker add theirs with `add_health_check`."""
    return {"database": database_health, **current_app.extensions.get("campus.health", {})}


def add_health_check(app, name: str, check: HealthCheck) -> None:
    app.extensions.setdefault("campus.health", {})[name] = check


def health() -> tuple[dict[str, str], bool]:
    report = {name: check() for name, check in health_checks().items()}
    healthy = all(state == "ok" for state in report.values())
    return {"status": "ok" if healthy else "degraded", **report}, healthy


def dashboard(user) -> dict:
    """What the dashboard shows, each list in one query whatever its length."""
    from app.blueprints.courses.services import taught_by
    from app.blueprints.enrollments.services import StudentCourses, courses_of
    from app.blueprints.notifications.services import unread

    taught = taught_by(user) if user.is_teacher else []
    mine = courses_of(user) if user.role == "student" else StudentCourses([], [])
    # Archived courses are "Past courses", apart from those running now.
    return {
        "taught": [item for item in taught if not item.course.is_archived],
        "mine": StudentCourses(
            [item for item in mine.enrolled if not item.course.is_archived], mine.waitlisted
        ),
        "past": [item for item in [*taught, *mine.enrolled] if item.course.is_archived],
        "unread": unread(user),
    }
