"""The search feed: each change the search index must follow, written in the transaction that
made it, and each server's index with the last change it applied (app/search/indexer.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.user import utcnow

# Ids only grow, even after rows are pruned (SQLite's AUTOINCREMENT, PostgreSQL's sequence):
# an index's "last applied" must never meet a reused id.
CHANGE_ID = BigInteger().with_variant(Integer, "sqlite")


class SearchChange(db.Model):
    __tablename__ = "search_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(CHANGE_ID, primary_key=True, autoincrement=True)
    # "course" (the course), "teacher" (every course of that teacher: a rename), "user".
    kind: Mapped[str] = mapped_column(String(8))
    key: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SearchIndexState(db.Model):
    """One row per index directory (a server's SEARCH_INDEX_DIR), kept by its indexer: changes
    up to `applied` are in it, so rows every index has applied can be pruned."""

    __tablename__ = "search_indexes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    directory: Mapped[str] = mapped_column(String(1000))
    applied: Mapped[int] = mapped_column(CHANGE_ID, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
