"""Profile rules: what a user may change about themselves (never their role)."""

from __future__ import annotations

from sqlalchemy import select

from app.blueprints.auth.services import taken
from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.models import User


def update_profile(user: User, full_name: str, email: str, bio: str) -> None:
    errors = taken(user.username, email, exclude_id=user.id)
    errors.pop("username", None)
    if errors:
        raise InvalidInput(errors)
    user.full_name = full_name
    user.email = email.lower()
    user.bio = bio.replace("\r\n", "\n")
    db.session.commit()


def public_profile(username: str) -> User:
    user = db.session.scalar(select(User).where(User.username == username.lower()))
    if user is None:
        raise NotFound("There is no one with that username.")
    return user
