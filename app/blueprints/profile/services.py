"""Profile rules: what a user may change about themselves (never their role)."""

from __future__ import annotations

from sqlalchemy import select

from app import mail
from app.blueprints.auth.services import taken, verify_password
from app.errors import InvalidInput, NotFound
from app.extensions import db
from app.models import Course, User
from app.models.user import utcnow
from app.timezones import is_zone

EMAIL_NEEDS_IT = "Enter your password to change your email."
NOT_YOURS = "That is not your password."


def update_profile(
    user: User,
    full_name: str,
    email: str,
    bio: str,
    current_password: str = "",
    timezone: str | None = None,
) -> None:
    """Save one's own name, email, bio and time zone. A new email needs the account's password
    (someone at an unattended, signed-in computer cannot take the account over by it), and the
    old address is told by mail, in the same transaction."""
    email = email.lower()
    errors = taken(user.username, email, exclude_id=user.id)
    errors.pop("username", None)
    if timezone is not None and not is_zone(timezone):
        errors["timezone"] = "Choose a time zone from the list (for example Europe/Paris)."
    old_email = user.email
    if email != old_email:
        if not current_password:
            errors["current_password"] = EMAIL_NEEDS_IT
        elif not verify_password(user, current_password):
            errors["current_password"] = NOT_YOURS
    if errors:
        raise InvalidInput(errors)
    user.full_name = full_name
    user.email = email
    user.bio = bio.replace("\r\n", "\n")
    if timezone is not None:
        user.timezone = timezone
    if old_email and email != old_email:
        mail.enqueue(
            old_email,
            "mail/email_changed.html",
            user=user,
            old_email=old_email,
            new_email=email,
            when=utcnow(),
            profile=mail.absolute_url("profile.edit"),
        )
    db.session.commit()


def public_profile(username: str) -> User:
    user = db.session.scalar(
        select(User).where(User.username == username.lower(), User.erased_at.is_(None))
    )
    if user is None:
        raise NotFound("There is no one with that username.")
    return user


def taught_titles(user: User) -> list[str]:
    """The courses someone still owns: they keep an account from being erased."""
    return sorted(db.session.scalars(select(Course.title).where(Course.teacher_id == user.id)))
