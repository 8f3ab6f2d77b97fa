"""The audit log's one way in: a service records what it changed, in the same transaction, so
the row and the change are committed together or not at all."""

from __future__ import annotations

from app.extensions import db
from app.models import AuditEvent, User

COMMAND_LINE = "command line"


def record(
    action: str,
    actor: User | str,
    subject: User | None = None,
    *,
    course_id: int | None = None,
    course_title: str = "",
    details: str = "",
) -> AuditEvent:
    """Add one row: `actor` did `action` to `subject` (an account) and/or a course."""
    named = subject.username if subject is not None else course_title
    event = AuditEvent(
        actor_id=actor.id if isinstance(actor, User) else None,
        actor=actor.username if isinstance(actor, User) else actor,
        action=action,
        subject_id=subject.id if subject is not None else None,
        subject=named[:200],
        course_id=course_id,
        details=details[:500],
    )
    db.session.add(event)
    return event
