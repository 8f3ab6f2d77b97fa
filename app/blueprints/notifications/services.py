"""Writing and reading notifications. Other features call `notify`; nothing else inserts them."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app, g, has_app_context, has_request_context, request, url_for
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import Select, and_, bindparam, event, func, select, update
from sqlalchemy.orm import Session

from app import fragments, mail
from app.after_commit import pending, when_committed
from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.models import Notification, NotificationChoice, NotificationDigest, User
from app.models.user import utcnow
from app.web import page_count

log = logging.getLogger(__name__)

PAGE_SIZE = 20
UNREAD = "campus_unread"  # in `g`: each person's unread count, read with them this request

# The kinds of mail one may choose, and the notifications each covers (by their `kind`).
KINDS = {
    "enrolment": "Enrolment: a seat opens for you, a course you attend changes",
    "materials": "New and updated materials in your courses",
    "feedback": "Feedback on your courses, and replies to yours",
    "chat": "Chat messages while you are away, and reported messages in rooms you look after",
}
CHOICES = ("immediately", "daily", "off")
# Until someone chooses: what cannot wait (a seat that opened, a reply to one's feedback)
# comes at once, the rest in the daily digest.
DEFAULT_CHOICES = {
    "enrolment": "immediately",
    "materials": "daily",
    "feedback": "immediately",
    "chat": "daily",
}
DIGEST = "digest"  # an unsubscribe link in a digest turns every daily kind off
UNSUBSCRIBE_SALT = "campus.unsubscribe"


def mail_kind(notification_kind: str) -> str | None:
    """The choice that covers a notification, or None (in the app only, e.g. a lockout)."""
    for prefix, kind in (
        ("waitlist", "enrolment"),
        ("course", "enrolment"),
        ("enrol", "enrolment"),
        ("material", "materials"),
        ("feedback", "feedback"),
        ("chat", "chat"),
    ):
        if notification_kind.startswith(prefix):
            return kind
    return None


def notify(user_ids: Iterable[int], kind: str, text: str, link: str = "") -> None:
    """Add a notification for each user to the current transaction (the caller commits, so a
    notification exists exactly when what it reports does)."""
    user_ids = list(dict.fromkeys(user_ids))
    db.session.add_all(
        Notification(user_id=user_id, kind=kind, text=text[:500], link=link) for user_id in user_ids
    )
    pending(fragments.BADGES).update(user_ids)
    if (chosen := mail_kind(kind)) is not None and user_ids:
        _mail_now(user_ids, chosen, text, link)


def _mail_now(user_ids: list[int], kind: str, text: str, link: str) -> None:
    """A mail to each of them who chose `kind` immediately, in the same transaction."""
    base = public_base()
    wanting = db.session.execute(
        select(User.id, User.email, User.full_name)
        .outerjoin(NotificationChoice, _choice_of(kind))
        .where(
            User.id.in_(user_ids),
            User.deactivated_at.is_(None),
            User.email != "",
            _chosen(kind) == "immediately",
        )
    ).all()
    if wanting and base is None:
        log.warning("notification mail not written: no PUBLIC_URL outside a request")
        return
    for user_id, email, full_name in wanting:
        unsubscribe = unsubscribe_url(user_id, kind)
        mail.enqueue(
            email,
            "mail/notification.html",
            headers=unsubscribe_headers(unsubscribe),
            full_name=full_name,
            text=text,
            link=f"{base}{link}" if link.startswith("/") else f"{base}/notifications",
            kind=KINDS[kind],
            unsubscribe=unsubscribe,
            settings=f"{base}{url_for('profile.notifications_page')}",
        )


def _choice_of(kind: str):
    """Join condition: the person's own choice for `kind`, if they made one."""
    return and_(NotificationChoice.user_id == User.id, NotificationChoice.kind == kind)


def _chosen(kind: str):
    """The choice in force for `kind`: the person's own, or the default."""
    return func.coalesce(NotificationChoice.choice, DEFAULT_CHOICES[kind])


def public_base() -> str | None:
    """The start of every link in a notification mail: PUBLIC_URL, else this request's own
    address; None from a command without PUBLIC_URL."""
    configured = current_app.config.get("PUBLIC_URL")
    if configured:
        return configured.rstrip("/")
    return request.host_url.rstrip("/") if has_request_context() else None


def _unsubscribe_tokens() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=UNSUBSCRIBE_SALT)


def unsubscribe_url(user_id: int, kind: str) -> str:
    token = _unsubscribe_tokens().dumps({"u": user_id, "k": kind})
    return f"{public_base()}{url_for('notifications.unsubscribe', token=token)}"


def unsubscribe_headers(url: str) -> dict[str, str]:
    """RFC 8058: mail clients offer "unsubscribe", which POSTs to the link with no session."""
    return {"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}


@dataclass(frozen=True)
class Unsubscribe:
    user: User
    kind: str  # one of KINDS, or DIGEST

    @property
    def what(self) -> str:
        return "daily digests" if self.kind == DIGEST else KINDS[self.kind].lower()


def unsubscription(token: str) -> Unsubscribe:
    """What an unsubscribe link names; 404 for anything Campus did not make."""
    try:
        data = _unsubscribe_tokens().loads(token)
    except BadData:
        raise NotFound("That is not a link Campus made.") from None
    kind = data.get("k") if isinstance(data, dict) else None
    user_id = data.get("u") if isinstance(data, dict) else None
    user = db.session.get(User, user_id) if isinstance(user_id, int) else None
    if user is None or (kind not in KINDS and kind != DIGEST):
        raise NotFound("That is not a link Campus made.")
    return Unsubscribe(user, kind)


def unsubscribe(token: str) -> Unsubscribe:
    """Turn off the kind the link names (a digest's: every daily kind)."""
    found = unsubscription(token)
    current = choices_for(found.user)
    if found.kind == DIGEST:
        off = {kind: "off" for kind, choice in current.items() if choice == "daily"}
    else:
        off = {found.kind: "off"}
    set_choices(found.user, current | off)
    return found


def choices_for(user: User) -> dict[str, str]:
    stored = dict(
        db.session.execute(
            select(NotificationChoice.kind, NotificationChoice.choice).where(
                NotificationChoice.user_id == user.id
            )
        ).all()
    )
    return {kind: stored.get(kind, DEFAULT_CHOICES[kind]) for kind in KINDS}


def set_choices(user: User, choices: dict[str, str]) -> None:
    errors = {
        kind: "Choose immediately, daily or off."
        for kind in KINDS
        if choices.get(kind) not in CHOICES
    }
    if errors:
        raise InvalidInput(errors)
    stored = {
        row.kind: row
        for row in db.session.scalars(
            select(NotificationChoice).where(NotificationChoice.user_id == user.id)
        )
    }
    for kind in KINDS:
        if kind in stored:
            stored[kind].choice = choices[kind]
        else:
            db.session.add(NotificationChoice(user_id=user.id, kind=kind, choice=choices[kind]))
    db.session.commit()


def send_digests() -> int:
    """One mail to each active person with `daily` choices, of what they have not read among
    those kinds since their last digest; the digest's time is kept in the same transaction,
    so running this twice sends nothing new. How many mails were written."""
    base = public_base()
    if base is None:
        raise RuntimeError("set PUBLIC_URL: digests are made outside any request")
    kinds_of: dict[int, set[str]] = {}
    for kind in KINDS:  # a kind nobody chose for themself follows its default
        daily = db.session.scalars(
            select(User.id)
            .outerjoin(NotificationChoice, _choice_of(kind))
            .where(User.deactivated_at.is_(None), _chosen(kind) == "daily")
        )
        for user_id in daily:
            kinds_of.setdefault(user_id, set()).add(kind)
    written = 0
    for user_id, kinds in sorted(kinds_of.items()):
        written += _digest(user_id, kinds, base)
    return written


def _digest(user_id: int, kinds: set[str], base: str) -> int:
    now = utcnow()
    mark = db.session.get(NotificationDigest, user_id, with_for_update=True)
    since = mark.sent_at if mark else None
    query = select(Notification).where(
        Notification.user_id == user_id, Notification.read_at.is_(None)
    )
    if since is not None:
        query = query.where(Notification.created_at > since)
    notes = [
        n for n in db.session.scalars(query.order_by(Notification.id)) if mail_kind(n.kind) in kinds
    ]
    if mark is None:
        db.session.add(NotificationDigest(user_id=user_id, sent_at=now))
    else:
        mark.sent_at = now
    user = db.session.get(User, user_id)
    if notes:
        unsubscribe = unsubscribe_url(user_id, DIGEST)
        mail.enqueue(
            user.email,
            "mail/digest.html",
            headers=unsubscribe_headers(unsubscribe),
            full_name=user.full_name,
            notes=[(n.text, f"{base}{n.link}" if n.link.startswith("/") else "") for n in notes],
            unsubscribe=unsubscribe,
            settings=f"{base}{url_for('profile.notifications_page')}",
        )
    db.session.commit()
    return 1 if notes else 0


@when_committed(fragments.BADGES)
def push_badges(user_ids: set[int]) -> None:
    """Every open tab of the people whose unread count changed shows the new count, on any
    page."""
    from app.live import live, render_fragment

    with db.engine.connect() as connection:
        counts = dict.fromkeys(user_ids, 0) | dict(
            connection.execute(
                select(Notification.user_id, func.count())
                .where(Notification.user_id.in_(user_ids), Notification.read_at.is_(None))
                .group_by(Notification.user_id)
            ).all()
        )
    for user_id, count in counts.items():
        html = render_fragment("notifications/_badge.html", notification_count=count, oob=True)
        live().publish([user_id], html)


@functools.cache
def _signed_in_statement() -> Select:
    unread = (
        select(func.count(Notification.id))
        .where(Notification.user_id == User.id, Notification.read_at.is_(None))
        .correlate(User)
        .scalar_subquery()
    )
    return select(User, unread).where(User.id == bindparam("user_id"))


def load_with_unread_count(user_id: int) -> User | None:
    """The signed-in person and their unread count for the header's badge: kept in the
    worker's memory under the person's version (app/fragments.py), else read in one statement
    built once. Each request gets its own copy of the row in its session, as if just read."""
    found = fragments.kept(
        [fragments.person_scope(user_id)],
        ("person", user_id),
        lambda: _read_signed_in(user_id),
        keep=lambda found: found is not None,
        seconds=fragments.PERSON_SECONDS,
    )
    if found is None:
        return None
    kept_row, unread = found
    user = db.session.merge(kept_row, load=False)
    g.setdefault(UNREAD, {})[user.id] = unread
    return user


def _read_signed_in(user_id: int) -> tuple[User, int] | None:
    """The person's row as a detached copy that no session holds (to be merged into each
    request's), and their unread count."""
    row = db.session.execute(_signed_in_statement(), {"user_id": user_id}).first()
    if row is None:
        return None
    return fragments.detached_copy(row[0]), row[1]


def unread_count(user: User) -> int:
    known = g.get(UNREAD, {}) if has_app_context() else {}
    if user.id in known:
        return known[user.id]
    query = select(func.count()).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)
    )
    return db.session.scalar(query.select_from(Notification))


def _forget_unread_counts() -> None:
    if has_app_context():
        g.pop(UNREAD, None)


@event.listens_for(Session, "after_flush")
def _notifications_flushed(session: Session, flush_context) -> None:
    """A notification written, read or removed in this request: the count read with the
    person is old, and the badge counts again."""
    changed = (*session.new, *session.dirty, *session.deleted)
    if any(isinstance(obj, Notification) for obj in changed):
        _forget_unread_counts()


@event.listens_for(Session, "do_orm_execute")
def _notifications_changed(state) -> None:
    if state.is_select:
        return
    mapper = state.bind_mapper
    if mapper is not None and mapper.class_ is Notification:
        _forget_unread_counts()


def unread(user: User, limit: int = 5) -> list[Notification]:
    query = (
        select(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))


@dataclass(frozen=True)
class Page:
    items: list[Notification]
    number: int
    total: int

    @property
    def pages(self) -> int:
        return page_count(self.total, PAGE_SIZE)


def page_for(user: User, number: int) -> Page:
    total = db.session.scalar(
        select(func.count()).select_from(Notification).where(Notification.user_id == user.id)
    )
    number = min(max(number, 1), page_count(total, PAGE_SIZE))
    query = (
        select(Notification)
        .where(Notification.user_id == user.id)
        .order_by(Notification.id.desc())
        .limit(PAGE_SIZE)
        .offset((number - 1) * PAGE_SIZE)
    )
    return Page(list(db.session.scalars(query)), number, total)


def mark_read(user: User, notification_id: int) -> Notification:
    """Someone else's notification is as good as missing: 404."""
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != user.id:
        raise NotFound("There is no such notification.")
    if notification.read_at is None:
        notification.read_at = utcnow()
        pending(fragments.BADGES).add(user.id)
        db.session.commit()
    return notification


def mark_all_read(user: User) -> None:
    db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    pending(fragments.BADGES).add(user.id)
    db.session.commit()


def mark_read_for_link(user: User, link: str) -> bool:
    """Seeing the page a notification points to reads it. True when one was unread."""
    result = db.session.execute(
        update(Notification)
        .where(
            Notification.user_id == user.id,
            Notification.link == link,
            Notification.read_at.is_(None),
        )
        .values(read_at=utcnow())
    )
    if not result.rowcount:
        return False
    pending(fragments.BADGES).add(user.id)
    db.session.commit()
    return True
