"""The user aggregate: an account, its role, its profile and its session version."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.after_commit import pending
from app.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


FORMER_MEMBER = "Former member"


class Role(enum.StrEnum):
    STUDENT = "student"
    TEACHER = "teacher"
    ADMIN = "admin"


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('student', 'teacher', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased, so the unique index makes both unique ignoring case.
    username: Mapped[str] = mapped_column(String(32), unique=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(100))
    bio: Mapped[str] = mapped_column(Text, default="")
    role: Mapped[str] = mapped_column(String(16), default=Role.STUDENT.value, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # Raised to end every session of this user: logout, password change, role change.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set while the account is deactivated: it cannot sign in, its sessions have ended.
    deactivated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when the account was erased: its name, email, bio and password are gone, and what
    # remains of it (messages, feedback) reads "Former member".
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # An IANA zone name (app/timezones.py): every time this person is shown is in it.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    def get_id(self) -> str:
        # Flask-Login keeps this in the session and the remember cookie; the version makes an
        # old cookie useless once the user's sessions have been ended.
        return f"{self.id}:{self.session_version}"

    def end_sessions(self) -> None:
        self.session_version += 1
        pending("ended_sessions").add(self.id)  # open live sockets close too (app/live)

    @property
    def is_active(self) -> bool:  # Flask-Login: a deactivated account is never signed in
        return self.deactivated_at is None

    @property
    def display_name(self) -> str:
        """The name as others see it: a deactivated account says so."""
        if self.erased_at is not None:
            return FORMER_MEMBER
        return self.full_name if self.is_active else f"{self.full_name} (deactivated)"

    @property
    def is_teacher(self) -> bool:
        return self.role in (Role.TEACHER, Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def __repr__(self) -> str:
        return f"<User {self.username} ({self.role})>"
