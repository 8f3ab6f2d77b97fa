"""The course aggregate: what a teacher offers, its capacity and whether it is published."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.user import User, utcnow

TITLE_MIN, TITLE_MAX = 3, 120
DESCRIPTION_MAX = 10_000
KEYWORDS_MAX, KEYWORD_MAX = 20, 40
CAPACITY_MAX = 10_000


class Course(db.Model):
    __tablename__ = "courses"
    __table_args__ = (
        CheckConstraint(
            f"capacity IS NULL OR capacity BETWEEN 1 AND {CAPACITY_MAX}", name="capacity"
        ),
        # The catalogue: published courses, newest first.
        Index("ix_courses_published_created_at", "published", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    description: Mapped[str] = mapped_column(Text, default="")
    # Normalised: trimmed, lower-cased, joined with ", ".
    keywords: Mapped[str] = mapped_column(Text, default="")
    capacity: Mapped[int | None] = mapped_column(Integer)  # None: unlimited
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    # Archived: read-only, out of the catalogue and search, kept for those who took part.
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    teacher_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    teacher: Mapped[User] = relationship(lazy="raise_on_sql")

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def is_listed(self) -> bool:
        """In the catalogue and course search: published and not archived."""
        return self.published and self.archived_at is None

    @property
    def keyword_list(self) -> list[str]:
        return [word for word in self.keywords.split(", ") if word]

    def seats_left(self, enrolled: int) -> int | None:
        return None if self.capacity is None else max(self.capacity - enrolled, 0)

    def __repr__(self) -> str:
        return f"<Course {self.id} {self.title!r}>"
