"""A course's life once it exists: archiving it and back. It sits above enrolments (the
waitlist an archive closes), beside the course rules it builds on."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app import audit
from app.blueprints.courses.services import lock, managed_course
from app.blueprints.notifications.services import notify
from app.extensions import db
from app.models import Enrollment, EnrollmentStatus, User
from app.models.user import utcnow


@dataclass(frozen=True)
class Change:
    course_id: int
    message: str


def archive(user: User, course_id: int) -> Change:
    """Make the course read-only and take it out of the catalogue and search. Its waitlist
    closes: those waiting are removed and told. Enrolled students keep what they had."""
    managed_course(user, course_id)  # 404 for a draft of someone else, 403 for a stranger
    course = lock(course_id)
    if course.archived_at is not None:
        db.session.rollback()
        return Change(course_id, "The course was already archived.")
    course.archived_at = utcnow()
    waiting = list(
        db.session.scalars(
            select(Enrollment).where(
                Enrollment.course_id == course_id,
                Enrollment.status == EnrollmentStatus.WAITLISTED,
            )
        )
    )
    for enrollment in waiting:
        db.session.delete(enrollment)
    notify(
        [enrollment.student_id for enrollment in waiting],
        "waitlist_closed",
        f"“{course.title}” is archived: its waitlist is closed, and you are no longer on it.",
        f"/courses/{course_id}",
    )
    details = f"{len(waiting)} removed from the waitlist" if waiting else ""
    audit.record(
        "course_archived", user, course_id=course_id, course_title=course.title, details=details
    )
    db.session.commit()
    return Change(course_id, "The course is archived: it is read-only and no longer listed.")


def unarchive(user: User, course_id: int) -> Change:
    """The course can be changed again and, when published, is listed again."""
    managed_course(user, course_id)
    course = lock(course_id)
    if course.archived_at is None:
        db.session.rollback()
        return Change(course_id, "The course is not archived.")
    course.archived_at = None
    audit.record("course_unarchived", user, course_id=course_id, course_title=course.title)
    db.session.commit()
    return Change(course_id, "The course is no longer archived.")
