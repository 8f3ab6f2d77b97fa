"""Rules every form shares: no control characters or hidden direction controls, and the
first invalid field named."""

from __future__ import annotations

import unicodedata

from flask import current_app, has_request_context
from flask_wtf import FlaskForm
from wtforms import (
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
    ValidationError,
)

from app.signing import csrf_token
from app.timezones import DEFAULT_ZONE, is_zone, zone_names

LINE_BREAKS = {"\n", "\r"}
# Embedding, override and isolate controls: pasted into a name or title they reverse or
# reorder what others see ("evil\u202efdp.exe" shows as "evilexe.pdf"). The joiners
# (U+200C, U+200D) and the direction marks (U+200E, U+200F, U+061C) stay: Persian, Indic
# scripts and emoji need them.
DIRECTION_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
ZERO_WIDTH_SPACE = "\u200b"


def control_characters(value: str, multiline: bool) -> bool:
    """True when the text holds characters a person does not type (NUL, escapes, ...)."""
    allowed = LINE_BREAKS | {"\t"} if multiline else set()
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value)


def text_problem(value: str, multiline: bool = False, where: str = "this field") -> str | None:
    """What to tell the person who typed `value` when it cannot be kept as text others will
    read (DESIGN.md "Security"), or None. A single-line text (a name, a title) also refuses
    the zero-width space, which makes two names look alike."""
    if control_characters(value, multiline):
        return f"Remove the control characters from {where}."
    if not DIRECTION_CONTROLS.isdisjoint(value):
        return f"Remove the invisible characters that change the direction of text from {where}."
    if not multiline and ZERO_WIDTH_SPACE in value:
        return f"Remove the invisible zero-width spaces from {where}."
    return None


def whole_number(text: str, max_digits: int = 15) -> int | None:
    """`text` as a whole number when it is ASCII digits only, at most `max_digits` of them;
    else None. (`str.isdigit()` alone also accepts "²" and "١٢", which `int()` refuses.)"""
    if text and len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


class BaseForm(FlaskForm):
    """A FlaskForm that holds every text field to `text_problem` (DESIGN.md "Security")."""

    def __init__(self, *args, **kwargs) -> None:
        if has_request_context() and current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf_token()  # made the quicker way; Flask-WTF's form then finds it in `g`
        super().__init__(*args, **kwargs)

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            if not isinstance(field, StringField) or not isinstance(field.data, str):
                continue
            multiline = isinstance(field, TextAreaField)
            problem = text_problem(field.data, multiline)
            if isinstance(field, PasswordField) and not control_characters(field.data, multiline):
                # A password is never shown, so nothing in it can spoof anyone; refusing more
                # than control characters would lock out whoever already chose such a password.
                problem = None
            if problem:
                field.errors = [*field.errors, problem]
                valid = False
        return valid

    @property
    def first_error_field(self) -> str | None:
        return next((field.id for field in self if field.errors), None)


def timezone_field() -> SelectField:
    """The zone one's times are shown in (DESIGN.md): an IANA name from the list; absent from a
    form, it stays as it was (UTC for a new account)."""
    return SelectField(
        "Time zone",
        choices=lambda: [SelectChoice(name, name.replace("_", " ")) for name in zone_names()],
        default=DEFAULT_ZONE,
        validate_choice=False,  # the message below instead of "Not a valid choice"
        validators=[known_zone],
    )


def known_zone(_form: FlaskForm, field: SelectField) -> None:
    if not is_zone(field.data):
        raise ValidationError("Choose a time zone from the list (for example Europe/Paris).")
