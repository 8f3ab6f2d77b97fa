"""Forms for editing one's profile and changing one's password."""

from __future__ import annotations

from wtforms import PasswordField, RadioField, SelectChoice, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from app.blueprints.auth.forms import (
    confirm_new_password_field,
    email_field,
    full_name_field,
    password_field,
)
from app.forms import BaseForm, timezone_field


class ProfileForm(BaseForm):
    full_name = full_name_field()
    email = email_field()
    bio = TextAreaField(
        "About me",
        validators=[Length(max=1000, message="Keep it to 1,000 characters.")],
    )
    timezone = timezone_field()
    # Needed only to change the email (services.update_profile). Its own id: the password
    # form on the same page has a `current_password` too.
    current_password = PasswordField(
        "Your password (needed for a new address)",
        id="email_current_password",
        validators=[Length(max=128)],
    )


class PasswordForm(BaseForm):
    current_password = PasswordField(
        "Current password",
        validators=[InputRequired("Enter your current password."), Length(max=128)],
    )
    new_password = password_field("New password")
    new_password_confirm = confirm_new_password_field()


def mail_choice(label: str) -> RadioField:
    return RadioField(
        label,
        choices=[
            SelectChoice("immediately", "Immediately"),
            SelectChoice("daily", "Once a day"),
            SelectChoice("off", "Off"),
        ],
        validate_choice=True,
    )


class NotificationChoicesForm(BaseForm):
    """One choice per kind (notifications.services.KINDS), each field named after its kind."""

    enrolment = mail_choice("Enrolment: a seat opens for you, a course you attend changes")
    materials = mail_choice("New and updated materials in your courses")
    feedback = mail_choice("Feedback on your courses, and replies to yours")
    chat = mail_choice(
        "Chat messages while you are away, and reported messages in rooms you look after"
    )


class EraseForm(BaseForm):
    """Erasing one's own account: the password, and the username typed out as a last check."""

    current_password = PasswordField(
        "Your password",
        id="erase_current_password",
        validators=[InputRequired("Enter your password."), Length(max=128)],
    )
    confirm = StringField(
        "Type your username to confirm",
        validators=[InputRequired("Type your username to confirm."), Length(max=64)],
    )
