"""Writing and reading notifications. Other features call `notify`; nothing else inserts them."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, update

from app.after_commit import pending, when_committed
from app.errors import NotFound
from app.extensions import db
from app.models import Notification, User
from app.models.user import utcnow
from app.web import page_count

log = logging.getLogger(__name__)

PAGE_SIZE = 20


def notify(user_ids: Iterable[int], kind: str, text: str, link: str = "") -> None:
    """Add a notification for each user to the current transaction (the caller commits, so a
    notification exists exactly when what it reports does)."""
    user_ids = list(dict.fromkeys(user_ids))
    db.session.add_all(
        Notification(user_id=user_id, kind=kind, text=text[:500], link=link) for user_id in user_ids
    )
    pending("badges").update(user_ids)


@when_committed("badges")
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


def unread_count(user: User) -> int:
    query = select(func.count()).where(
        Notification.user_id == user.id, Notification.read_at.is_(None)
    )
    return db.session.scalar(query.select_from(Notification))


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
        pending("badges").add(user.id)
        db.session.commit()
    return notification


def mark_all_read(user: User) -> None:
    db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
    pending("badges").add(user.id)
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
    pending("badges").add(user.id)
    db.session.commit()
    return True
