"""Account rules for admins: who may change whom, the last active admin, and an audit row for
every change, written in the change's own transaction. Changes go through the same paths as
the rest of the app: ending sessions closes sockets on every worker (app/after_commit.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, inspect, or_, select, text
from werkzeug.datastructures import MultiDict

from app import audit
from app.blueprints.auth import links
from app.errors import InvalidInput, NotAllowed, NotFound
from app.extensions import db
from app.mail import absolute_url
from app.models import AuditEvent, Course, Enrollment, Role, User
from app.models.user import utcnow
from app.web import page_count

PAGE_SIZE = 20
STATUSES = ("active", "deactivated")
LAST_ADMIN = "This is the last active admin: make someone else an admin first."


@dataclass(frozen=True)
class AccountQuery:
    q: str = ""
    role: str = ""
    status: str = ""

    @classmethod
    def of(cls, args: MultiDict) -> AccountQuery:
        role = args.get("role", "")
        status = args.get("status", "")
        return cls(
            q=args.get("q", "").strip()[:200],
            role=role if role in {r.value for r in Role} else "",
            status=status if status in STATUSES else "",
        )

    def args(self) -> dict[str, str]:
        return {name: value for name, value in vars(self).items() if value}


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    number: int

    @property
    def pages(self) -> int:
        return page_count(self.total, PAGE_SIZE)


def _like(text_: str) -> str:
    escaped = text_.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def accounts(query: AccountQuery, number: int) -> Page:
    """Every account matching the query, by name, 20 a page."""
    conditions = []
    if query.q:
        pattern = _like(query.q)
        conditions.append(
            or_(
                User.username.like(pattern, escape="\\"),
                User.email.like(pattern, escape="\\"),
                func.lower(User.full_name).like(pattern, escape="\\"),
            )
        )
    if query.role:
        conditions.append(User.role == query.role)
    if query.status == "active":
        conditions.append(User.deactivated_at.is_(None))
    elif query.status == "deactivated":
        conditions.append(User.deactivated_at.is_not(None))
    total = db.session.scalar(select(func.count(User.id)).where(*conditions))
    number = min(number, page_count(total, PAGE_SIZE))
    items = db.session.scalars(
        select(User)
        .where(*conditions)
        .order_by(func.lower(User.full_name), User.id)
        .limit(PAGE_SIZE)
        .offset((number - 1) * PAGE_SIZE)
    )
    return Page(list(items), total, number)


@dataclass(frozen=True)
class Account:
    user: User
    taught: list[Course]
    attended: list[tuple[Course, str]]  # (course, "enrolled" or "waitlisted")


def account(username: str) -> Account:
    user = db.session.scalar(select(User).where(User.username == username.lower()))
    if user is None:
        raise NotFound("There is no such account.")
    taught = list(
        db.session.scalars(
            select(Course).where(Course.teacher_id == user.id).order_by(Course.title)
        )
    )
    attended = list(
        db.session.execute(
            select(Course, Enrollment.status)
            .join(Enrollment, Enrollment.course_id == Course.id)
            .where(Enrollment.student_id == user.id)
            .order_by(Course.title)
        ).tuples()
    )
    return Account(user, taught, attended)


def lock_admins() -> set[int]:
    """Start a transaction that holds every active admin's row, so that two admins changing
    each other at the same moment cannot both pass the last-admin rule: PostgreSQL locks the
    rows (SELECT … FOR UPDATE), SQLite takes its write lock first (BEGIN IMMEDIATE)."""
    db.session.commit()
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("BEGIN IMMEDIATE"))
    admins = select(User.id).where(User.role == Role.ADMIN, User.deactivated_at.is_(None))
    return set(db.session.scalars(admins.with_for_update()))


Actor = User | str  # an admin, or audit.COMMAND_LINE


def _actor_id(actor: Actor) -> int | None:
    return actor.id if isinstance(actor, User) else None


def _actor_row(actor_id: int | None) -> Actor:
    return db.session.get(User, actor_id) if actor_id is not None else audit.COMMAND_LINE


def _subject(actor_id: int | None, admins: set[int], username: str) -> User:
    """Inside the lock: the actor is still an active admin (or the command line), and the
    account exists."""
    if actor_id is not None and actor_id not in admins:
        db.session.rollback()
        raise NotAllowed("Only admins manage accounts.")
    user = db.session.scalar(
        select(User)
        .where(User.username == username.lower())
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if user is None:
        db.session.rollback()
        raise NotFound("There is no such account.")
    return user


def _refuse(field: str, message: str) -> None:
    db.session.rollback()
    raise InvalidInput({field: message})


def change_role(actor: Actor, username: str, role: str) -> User:
    """Give the account another role; its sessions and sockets end. The last active admin
    keeps the role, and a teacher keeps it while they still teach courses."""
    if role not in {r.value for r in Role}:
        raise InvalidInput({"role": "Choose student, teacher or admin."})
    actor_id = _actor_id(actor)
    admins = lock_admins()
    user = _subject(actor_id, admins, username)
    if user.role == role:
        db.session.rollback()
        return user
    if user.id in admins and len(admins) == 1:
        _refuse("role", LAST_ADMIN)
    if role == Role.STUDENT:
        titles = db.session.scalars(select(Course.title).where(Course.teacher_id == user.id))
        if taught := sorted(titles):
            _refuse(
                "role",
                f"{user.full_name} still teaches {', '.join(taught)}: "
                "give those courses to another teacher first.",
            )
    before = user.role
    user.role = role
    user.end_sessions()
    audit.record("role_changed", _actor_row(actor_id), user, details=f"{before} → {role}")
    db.session.commit()
    return user


def deactivate(actor: Actor, username: str) -> User:
    """The account can no longer sign in; its sessions and sockets end at once. What it
    made (enrolments, files, messages) stays."""
    actor_id = _actor_id(actor)
    admins = lock_admins()
    user = _subject(actor_id, admins, username)
    if user.id == actor_id:
        _refuse("account", "You cannot deactivate your own account.")
    if user.id in admins and len(admins) == 1:
        _refuse("account", LAST_ADMIN)
    if not user.is_active:
        db.session.rollback()
        return user
    user.deactivated_at = utcnow()
    user.end_sessions()
    audit.record("deactivated", _actor_row(actor_id), user)
    db.session.commit()
    return user


def reactivate(actor: Actor, username: str) -> User:
    actor_id = _actor_id(actor)
    admins = lock_admins()
    user = _subject(actor_id, admins, username)
    if user.is_active:
        db.session.rollback()
        return user
    user.deactivated_at = None
    audit.record("reactivated", _actor_row(actor_id), user)
    db.session.commit()
    return user


@dataclass(frozen=True)
class PasswordLink:
    user: User
    url: str
    expires: datetime
    mailed: bool = False  # also sent to the account's address


def password_link(actor: User, username: str) -> PasswordLink:
    """A one-time link that sets the account's password (72 hours), for the admin to hand
    over; it is not stored, so it is shown once. It is also mailed to the account, when it
    has an address and mail is configured, in the transaction of the audit row."""
    if not actor.is_admin:
        raise NotAllowed("Only admins manage accounts.")
    user = account(username).user
    if not user.is_active:
        raise InvalidInput({"account": "Reactivate the account before giving it a password."})
    url = absolute_url("auth.reset", token=links.make_token(user, "admin"))
    mailed = links.mail_link(user, url)
    audit.record("password_link", actor, user, details="mailed" if mailed else "")
    db.session.commit()
    return PasswordLink(user, url, utcnow() + links.lifetime("admin"), mailed)


def audit_page(number: int) -> Page:
    total = db.session.scalar(select(func.count(AuditEvent.id)))
    number = min(number, page_count(total, PAGE_SIZE))
    rows = db.session.scalars(
        select(AuditEvent)
        .order_by(AuditEvent.id.desc())
        .limit(PAGE_SIZE)
        .offset((number - 1) * PAGE_SIZE)
    )
    return Page(list(rows), total, number)


def audit_rows() -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())))


def new_account_links(users: list[User], mailed: set[int] | frozenset[int] = frozenset()):
    """A set-password link for each new account of an import (the import's audit row covers
    them); `mailed`: the accounts whose link also went by mail."""
    # Expired by the import's commit: loaded again in one query, not one each.
    ids = [inspect(user).identity[0] for user in users]
    db.session.scalars(select(User).where(User.id.in_(ids))).all()
    expires = utcnow() + links.lifetime("admin")
    return [
        PasswordLink(
            user,
            absolute_url("auth.reset", token=links.make_token(user)),
            expires,
            user.id in mailed,
        )
        for user in users
    ]


def link_rows(users: list[User]) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the links CSV handed out in class."""
    made = new_account_links(users)
    rows = [[link.user.full_name, link.user.username, link.user.email, link.url] for link in made]
    return ["full_name", "username", "email", "set_password_link"], rows
