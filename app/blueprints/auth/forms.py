"""Forms for registration and signing in."""

from __future__ import annotations

from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    RadioField,
    SelectChoice,
    StringField,
)
from wtforms.validators import DataRequired, Email, EqualTo, InputRequired, Length, Regexp

from app.forms import BaseForm, timezone_field

USERNAME_PATTERN = r"^[a-z0-9_.\-]+$"
PASSWORD_MIN, PASSWORD_MAX = 10, 128


def strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def lower(value: str | None) -> str | None:
    return value.strip().lower() if isinstance(value, str) else value


def password_field(label: str) -> PasswordField:
    return PasswordField(
        label,
        validators=[
            InputRequired("Enter a password."),
            Length(
                PASSWORD_MIN,
                PASSWORD_MAX,
                f"Use {PASSWORD_MIN} to {PASSWORD_MAX} characters.",
            ),
        ],
    )


def email_field() -> EmailField:
    return EmailField(
        "Email",
        filters=[lower],
        validators=[
            DataRequired("Enter your email address."),
            Length(max=254, message="An email address has at most 254 characters."),
            Email("Enter a valid email address, like name@school.org.", check_deliverability=False),
        ],
    )


def full_name_field() -> StringField:
    return StringField(
        "Full name",
        filters=[strip],
        validators=[
            DataRequired("Enter your name."),
            Length(max=100, message="A name has at most 100 characters."),
        ],
    )


def login_field() -> StringField:
    return StringField(
        "Username or email",
        filters=[strip],
        validators=[
            DataRequired("Enter your username or email."),
            Length(max=254, message="That is longer than any username or email."),
        ],
    )


def confirm_new_password_field() -> PasswordField:
    return PasswordField(
        "Confirm new password",
        validators=[
            InputRequired("Type the new password again."),
            EqualTo("new_password", "The two passwords do not match."),
        ],
    )


class RegistrationForm(BaseForm):
    username = StringField(
        "Username",
        filters=[lower],
        validators=[
            DataRequired("Choose a username."),
            Length(3, 32, "A username has 3 to 32 characters."),
            Regexp(USERNAME_PATTERN, message="Use only letters a–z, digits, and _ . -"),
        ],
    )
    email = email_field()
    full_name = full_name_field()
    password = password_field("Password")
    password_confirm = PasswordField(
        "Confirm password",
        validators=[
            InputRequired("Type the password again."),
            EqualTo("password", "The two passwords do not match."),
        ],
    )
    role = RadioField(
        "I am a",
        choices=[SelectChoice("student", "Student"), SelectChoice("teacher", "Teacher")],
        default="student",
        validate_choice=True,
    )
    teacher_code = PasswordField(
        "Teacher code",
        validators=[Length(max=128, message="That code is too long.")],
    )
    # Preset from the browser's zone by static/js/times.js; UTC without JavaScript.
    timezone = timezone_field()


class LoginForm(BaseForm):
    login = login_field()
    password = PasswordField(
        "Password",
        validators=[
            InputRequired("Enter your password."),
            Length(max=PASSWORD_MAX, message="That is longer than any password here."),
        ],
    )
    remember = BooleanField("Keep me signed in on this device")


class ForgotPasswordForm(BaseForm):
    login = login_field()


class SetPasswordForm(BaseForm):
    """The page a password link opens."""

    new_password = password_field("New password")
    new_password_confirm = confirm_new_password_field()
