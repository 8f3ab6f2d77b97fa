"""Forms for rating a course and replying to feedback."""

from __future__ import annotations

from wtforms import RadioField, SelectChoice, TextAreaField
from wtforms.validators import DataRequired, Length, StopValidation

from app.forms import BaseForm
from app.models.feedback import COMMENT_MAX, REPLY_MAX

RATINGS = [str(n) for n in range(5, 0, -1)]


class StarsField(RadioField):
    """1 to 5 stars, and one clear message for anything else (missing, 0, 6, "five", 3.5)."""

    def pre_validate(self, form: BaseForm) -> None:
        if self.data not in RATINGS:
            raise StopValidation("Choose a rating from 1 to 5 stars.")


class FeedbackForm(BaseForm):
    rating = StarsField(
        "Your rating",
        choices=[SelectChoice(n, f"{n} {'star' if n == '1' else 'stars'}") for n in RATINGS],
    )
    comment = TextAreaField(
        "Comment (optional)",
        validators=[Length(max=COMMENT_MAX, message=f"Keep it to {COMMENT_MAX:,} characters.")],
    )


class ReplyForm(BaseForm):
    body = TextAreaField(
        "Your reply",
        validators=[
            DataRequired("Write a reply."),
            Length(max=REPLY_MAX, message=f"Keep it to {REPLY_MAX:,} characters."),
        ],
    )
