"""Erasing an account (GDPR article 17): by the person from their profile, or by an admin.

The account's row stays, so that what others still need keeps its author: the messages it
wrote and its feedback read "Former member". Everything that named the person goes: name,
email, username (free to register again), bio, password, their own notifications and mail,
and the copies of their name in other people's notifications and mail and in the audit log
(which keeps the account's id, so the history of what happened stays whole). Their
enrolments are withdrawn as if they had withdrawn (seats go to the waitlists), their
sessions and sockets end, and the search index forgets them (the user's row changed: see
app/search/sync.py). A teacher who still owns courses is refused until the courses are
given to another teacher or deleted."""

from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import escape
from sqlalchemy import Table, delete, func, or_, select, update

from app import audit
from app.blueprints.admin.services import LAST_ADMIN, Actor, lock_admins
from app.blueprints.courses.services import enrolled_count
from app.blueprints.enrollments.services import fill_from_waitlist
from app.blueprints.profile.services import taught_titles
from app.errors import InvalidInput, NotAllowed, NotFound
from app.extensions import db
from app.models import (
    AuditEvent,
    ChatRead,
    Course,
    Enrollment,
    EnrollmentStatus,
    Notification,
    NotificationChoice,
    NotificationDigest,
    OutboxMessage,
    User,
)
from app.models.user import FORMER_MEMBER, utcnow

# Where other people's rows may carry the person's name, username or email as text.
NAMED_IN: tuple[tuple[Table, tuple[str, ...]], ...] = (
    (Notification.__table__, ("text", "link")),
    (OutboxMessage.__table__, ("subject", "text_body", "html_body")),
    # The audit log is append-only for the app (app/models/audit.py guards the ORM); erasure
    # is the one change it allows: the name goes, the ids and what happened stay.
    (AuditEvent.__table__, ("actor", "subject", "details")),
)


@dataclass(frozen=True)
class Names:
    """What identified the person, to be found and replaced wherever it was copied."""

    username: str
    full_name: str
    email: str

    def terms(self) -> list[str]:
        plain = {self.email, self.full_name, self.username}
        escaped = {str(escape(term)) for term in plain}  # as mail's HTML part wrote them
        # Longest first: the email before the username it may contain.
        return sorted((term for term in plain | escaped if term), key=len, reverse=True)


def placeholder(user_id: int) -> str:
    """The erased account's username and email: `~` can be neither registered nor typed as a
    sign-in name, so nobody can take it, and it names no one."""
    return f"~{user_id}"


def erase(actor: Actor, username: str) -> User:
    """Erase the account `username` for `actor`: the person themselves or an active admin.
    Everything happens in one transaction, under the admins' and the courses' locks."""
    actor_id = actor.id if isinstance(actor, User) else None
    admins = lock_admins()
    user = db.session.scalar(
        select(User)
        .where(User.username == username.lower(), User.erased_at.is_(None))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if user is None:
        db.session.rollback()
        raise NotFound("There is no such account.")
    if actor_id is not None and actor_id != user.id and actor_id not in admins:
        db.session.rollback()
        raise NotAllowed("Only admins erase other people's accounts.")
    if user.id in admins and len(admins) == 1:
        _refuse(LAST_ADMIN)
    if taught := taught_titles(user):
        whose = "You still teach" if actor_id == user.id else f"{user.full_name} still teaches"
        _refuse(
            f"{whose} {', '.join(taught)}: "
            "give those courses to another teacher or delete them first."
        )
    names = Names(user.username, user.full_name, user.email)
    _withdraw_everywhere(user.id)
    for model in (Notification, NotificationChoice, NotificationDigest, ChatRead):
        db.session.execute(delete(model).where(model.user_id == user.id))
    db.session.execute(
        delete(OutboxMessage).where(func.lower(OutboxMessage.recipient) == user.email)
    )
    user.username = user.email = placeholder(user.id)
    user.full_name = FORMER_MEMBER
    user.bio = ""
    user.password_hash = ""  # matches no password
    user.last_sign_in_at = None
    user.erased_at = utcnow()
    user.deactivated_at = user.deactivated_at or user.erased_at
    user.end_sessions()
    db.session.flush()
    _scrub(names)
    audit.record("erased", actor, user)
    db.session.commit()
    return user


def _refuse(message: str) -> None:
    db.session.rollback()
    raise InvalidInput({"confirm": message})


def _withdraw_everywhere(user_id: int) -> None:
    """Leave every course and waitlist; each freed seat in a running course goes to the first
    on its waitlist, who is told, as when a student withdraws."""
    places = db.session.execute(
        select(Enrollment.course_id, Enrollment.status)
        .where(Enrollment.student_id == user_id)
        .order_by(Enrollment.course_id)
    ).all()
    if not places:
        return
    course_ids = [course_id for course_id, _ in places]
    courses = {
        course.id: course
        for course in db.session.scalars(
            select(Course).where(Course.id.in_(course_ids)).order_by(Course.id).with_for_update()
        )
    }
    db.session.execute(delete(Enrollment).where(Enrollment.student_id == user_id))
    db.session.flush()
    for course_id, status in places:
        course = courses[course_id]
        running = course.published and course.archived_at is None
        if status == EnrollmentStatus.ENROLLED and running:
            fill_from_waitlist(course, enrolled_count(course_id))


def _scrub(names: Names) -> None:
    """Replace the person's name, username and email, as whole words, in the text others'
    rows copied them into."""
    terms = names.terms()
    pattern = re.compile(
        r"(?<![\w.@-])(?:" + "|".join(map(re.escape, terms)) + r")(?![\w@-])", re.IGNORECASE
    )
    for table, columns in NAMED_IN:
        mentions = or_(
            *(
                func.lower(table.c[column]).contains(term.lower(), autoescape=True)
                for column in columns
                for term in terms
            )
        )
        rows = db.session.execute(
            select(table.c.id, *(table.c[column] for column in columns)).where(mentions)
        ).all()
        for row in rows:
            values = {
                column: pattern.sub(FORMER_MEMBER, getattr(row, column) or "") for column in columns
            }
            db.session.execute(update(table).where(table.c.id == row.id).values(**values))
