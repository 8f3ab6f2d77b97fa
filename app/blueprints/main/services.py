"""The dashboard's contents, and the health of the parts the app depends on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select, text, union

from app.extensions import db
from app.models import Course, Enrollment, EnrollmentStatus

ENROLLED, WAITLISTED = EnrollmentStatus.ENROLLED.value, EnrollmentStatus.WAITLISTED.value

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


@dataclass(frozen=True)
class Dashboard:
    """The courses of the dashboard by id, each list in the order it is shown; the cards are
    kept apart (app/fragments.py), so the lists need only the ids."""

    taught: list[int]
    enrolled: list[int]
    waitlisted: list[tuple[int, int]]  # with the student's number on the waitlist
    past: list[int]  # archived: taught or enrolled in

    def course_ids(self) -> list[int]:
        waiting = [course_id for course_id, _ in self.waitlisted]
        return list(dict.fromkeys([*self.taught, *self.enrolled, *waiting, *self.past]))


def dashboard(user) -> tuple[Dashboard, list]:
    """What the dashboard shows, each list in one query whatever its length; and the unread
    notifications."""
    from app.blueprints.courses.services import taught_ids
    from app.blueprints.enrollments.services import places_in_courses
    from app.blueprints.notifications.services import unread

    taught = taught_ids(user) if user.is_teacher else []
    places = places_in_courses(user) if user.role == "student" else []
    enrolled = [place for place in places if place.status == ENROLLED]
    # Archived courses are "Past courses", apart from those running now.
    shown = Dashboard(
        taught=[course_id for course_id, archived in taught if not archived],
        enrolled=[place.course_id for place in enrolled if not place.archived],
        waitlisted=[
            (place.course_id, place.position) for place in places if place.status == WAITLISTED
        ],
        past=[course_id for course_id, archived in taught if archived]
        + [place.course_id for place in enrolled if place.archived],
    )
    return shown, unread(user)


def dashboard_course_ids(user) -> list[int]:
    """Every course the dashboard may show for `user` (taught, enrolled in, waiting for), in no
    order, from one light statement: what the kept dashboard's versions are read for."""
    taught = select(Course.id).where(Course.teacher_id == user.id)
    joined = select(Enrollment.course_id).where(Enrollment.student_id == user.id)
    return list(db.session.scalars(union(taught, joined)))
