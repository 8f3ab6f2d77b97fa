"""The material aggregate: a file shared in a course, stored under a generated name."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.user import User, utcnow

TITLE_MAX = 200
NAME_MAX = 255


class Material(db.Model):
    """One version of a file. Replacing a file adds a version: the first one's id is every
    later version's `root_id`, and only the newest is `is_current`."""

    __tablename__ = "materials"
    __table_args__ = (Index("ix_materials_course_created", "course_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    # The name it was uploaded with, cleaned for display; never used on disk.
    original_name: Mapped[str] = mapped_column(String(NAME_MAX))
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(127))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    root_id: Mapped[int | None] = mapped_column(
        ForeignKey("materials.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    is_current: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    uploaded_by: Mapped[User | None] = relationship(lazy="raise_on_sql")

    @property
    def document_id(self) -> int:
        """The id shared by all versions of this file: the first version's."""
        return self.root_id or self.id
