"""The versions of what cached page parts show (app/fragments.py), when there is no Redis: one
row per scope, bumped in the transaction that changed what it stands for."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db


class PageVersion(db.Model):
    __tablename__ = "page_versions"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
