"""Rules every form shares: no control characters, and the first invalid field named."""

from __future__ import annotations

import unicodedata

from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

LINE_BREAKS = {"\n", "\r"}


def control_characters(value: str, multiline: bool) -> bool:
    """True when the text holds characters a person does not type (NUL, escapes, ...)."""
    allowed = LINE_BREAKS | {"\t"} if multiline else set()
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value)


def whole_number(text: str, max_digits: int = 15) -> int | None:
    """`text` as a whole number when it is ASCII digits only, at most `max_digits` of them;
    else None. (`str.isdigit()` alone also accepts "²" and "١٢", which `int()` refuses.)"""
    if text and len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


class BaseForm(FlaskForm):
    """A FlaskForm that refuses control characters in every text field (DESIGN.md "Limits")."""

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field in self:
            if isinstance(field, StringField) and isinstance(field.data, str):
                multiline = isinstance(field, TextAreaField)
                if control_characters(field.data, multiline):
                    field.errors = [*field.errors, "Remove the control characters from this field."]
                    valid = False
        return valid

    @property
    def first_error_field(self) -> str | None:
        return next((field.id for field in self if field.errors), None)
