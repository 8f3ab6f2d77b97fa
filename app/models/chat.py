"""The chat aggregate: rooms (one per course, or direct between two people), their messages,
and how far each member has read."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    insert,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.course import Course
from app.models.user import User, utcnow

BODY_MAX = 2000
REASON_MAX = 500
MUTE_MINUTES_MAX = 10_080  # 7 days


class ChatRoom(db.Model):
    """A course room's members are the course's teacher and enrolled students, read from the
    enrolments each time, so membership follows enrolment at once. A direct room's two members
    are stored on it, the smaller user id first, so a pair has one room."""

    __tablename__ = "chat_rooms"
    __table_args__ = (
        UniqueConstraint("user_a_id", "user_b_id", name="uq_chat_rooms_pair"),
        CheckConstraint(
            "(course_id IS NOT NULL AND user_a_id IS NULL AND user_b_id IS NULL)"
            " OR (course_id IS NULL AND user_a_id IS NOT NULL AND user_b_id IS NOT NULL"
            " AND user_a_id < user_b_id)",
            name="course_or_pair",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int | None] = mapped_column(
        ForeignKey("courses.id", ondelete="CASCADE"), unique=True
    )
    user_a_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    user_b_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def is_direct(self) -> bool:
        return self.course_id is None


class ChatMessage(db.Model):
    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_room_id_id", "room_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("chat_rooms.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A removed message keeps its row (a stub in every list) but not its text: `body` is
    # emptied, and the text moves to `removed_body`, read only by the reports page, until
    # `flask chat purge` erases it (REMOVED_TEXT_DAYS after the removal).
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    removed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    removed_body: Mapped[str | None] = mapped_column(Text)

    author: Mapped[User] = relationship(lazy="raise_on_sql", foreign_keys=[author_id])

    @property
    def is_removed(self) -> bool:
        return self.removed_at is not None


class ChatRead(db.Model):
    """The newest message a member has seen in a room; unread = newer messages by others."""

    __tablename__ = "chat_reads"

    room_id: Mapped[int] = mapped_column(
        ForeignKey("chat_rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    last_read_id: Mapped[int] = mapped_column(Integer, default=0)


class ChatMute(db.Model):
    """A member of a course room who may read it but not post until `until`."""

    __tablename__ = "chat_mutes"

    room_id: Mapped[int] = mapped_column(
        ForeignKey("chat_rooms.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    muted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ChatReport(db.Model):
    """A member's report of a message, with the message's text as it was then (it stays
    readable for whoever handles the report even if the message is edited or removed since)."""

    __tablename__ = "chat_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("chat_messages.id", ondelete="CASCADE"), index=True
    )
    room_id: Mapped[int] = mapped_column(
        ForeignKey("chat_rooms.id", ondelete="CASCADE"), index=True
    )
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(REASON_MAX))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


@event.listens_for(Course, "after_insert")
def open_course_room(_mapper, connection, course: Course) -> None:
    """Every course has its room from the moment it exists, whoever created it."""
    connection.execute(insert(ChatRoom).values(course_id=course.id, created_at=utcnow()))
