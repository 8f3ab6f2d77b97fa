"""Writing and reading notifications. Other features call `notify`; nothing else inserts them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, update

from app.errors import NotFound
from app.extensions import db
from app.models import Notification, User
from app.models.user import utcnow

PAGE_SIZE = 20


def notify(user_ids: Iterable[int], kind: str, text: str, link: str = "") -> None:
    """Add a notification for each user to the current transaction (the caller commits, so a
    notification exists exactly when what it reports does)."""
    db.session.add_all(
        Notification(user_id=user_id, kind=kind, text=text[:500], link=link)
        for user_id in dict.fromkeys(user_ids)
    )


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
        return max(1, -(-self.total // PAGE_SIZE))


def page_for(user: User, number: int) -> Page:
    total = db.session.scalar(
        select(func.count()).select_from(Notification).where(Notification.user_id == user.id)
    )
    number = min(max(number, 1), max(1, -(-total // PAGE_SIZE)))
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
        db.session.commit()
    return notification


def mark_all_read(user: User) -> None:
    db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
    )
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
    db.session.commit()
    return True
