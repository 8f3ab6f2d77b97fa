"""Small helpers for reading what a page shows."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from app.extensions import db
from app.models import User


def user_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def field_error(html: str, field_id: str) -> str | None:
    """The message tied to a field through aria-describedby, or None."""
    match = re.search(rf'<small id="{field_id}-error"[^>]*>(.*?)</small>', html, re.S)
    return match.group(1).strip() if match else None


def input_tag(html: str, field_id: str) -> str:
    """The opening tag of the input (or textarea) with this id."""
    match = re.search(rf'<(?:input|textarea)\b[^>]*\bid="{field_id}"[^>]*>', html)
    assert match, f"no input #{field_id}"
    return match.group(0)
