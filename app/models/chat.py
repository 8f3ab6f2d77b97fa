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

    author: Mapped[User] = relationship(lazy="raise_on_sql")


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


@event.listens_for(Course, "after_insert")
def open_course_room(_mapper, connection, course: Course) -> None:
    """Every course has its room from the moment it exists, whoever created it."""
    connection.execute(insert(ChatRoom).values(course_id=course.id, created_at=utcnow()))
