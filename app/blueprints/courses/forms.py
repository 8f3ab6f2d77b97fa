"""The course form, for creating and editing alike."""

from __future__ import annotations

from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from app.blueprints.auth.forms import strip
from app.forms import BaseForm, whole_number
from app.models.course import (
    CAPACITY_MAX,
    DESCRIPTION_MAX,
    KEYWORD_MAX,
    KEYWORDS_MAX,
    TITLE_MAX,
    TITLE_MIN,
)


def normalise_keywords(text: str) -> list[str]:
    """Comma-separated, trimmed, lower-cased, each once, in the order given."""
    words = (word.strip().lower() for word in text.split(","))
    return list(dict.fromkeys(word for word in words if word))


class CourseForm(BaseForm):
    title = StringField(
        "Title",
        filters=[strip],
        validators=[
            DataRequired("Give the course a title."),
            Length(TITLE_MIN, TITLE_MAX, f"A title has {TITLE_MIN} to {TITLE_MAX} characters."),
        ],
    )
    description = TextAreaField(
        "Description",
        validators=[Length(max=DESCRIPTION_MAX, message="Keep it to 10,000 characters.")],
    )
    keywords = StringField(
        "Keywords",
        filters=[strip],
        validators=[Length(max=KEYWORDS_MAX * (KEYWORD_MAX + 2), message="Too many keywords.")],
    )
    capacity = StringField("Capacity")
    published = BooleanField("Published: students can find and join it")

    def validate_keywords(self, field: StringField) -> None:
        words = normalise_keywords(field.data or "")
        if len(words) > KEYWORDS_MAX:
            raise ValidationError(f"Use at most {KEYWORDS_MAX} keywords.")
        if any(len(word) > KEYWORD_MAX for word in words):
            raise ValidationError(f"Each keyword has at most {KEYWORD_MAX} characters.")

    def validate_capacity(self, field: StringField) -> None:
        text = str(field.data or "").strip()
        if text and not 1 <= (whole_number(text) or 0) <= CAPACITY_MAX:
            raise ValidationError(
                f"Leave it empty for no limit, or give a whole number from 1 to {CAPACITY_MAX:,}."
            )

    @property
    def capacity_value(self) -> int | None:
        """The validated capacity: None for unlimited."""
        return whole_number(str(self.capacity.data or "").strip())

    @property
    def keyword_list(self) -> list[str]:
        return normalise_keywords(self.keywords.data or "")


class DeleteCourseForm(BaseForm):
    confirm = StringField(
        "Type the course's title to confirm",
        validators=[DataRequired("Type the course's title to confirm.")],
    )


class TransferForm(BaseForm):
    teacher = StringField(
        "The new teacher's username",
        filters=[strip],
        validators=[DataRequired("Type the new teacher's username.")],
    )
