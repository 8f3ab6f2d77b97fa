"""The message form: the page's path for a browser without JavaScript."""

from __future__ import annotations

from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from app.forms import BaseForm
from app.models.chat import BODY_MAX


class MessageForm(BaseForm):
    body = TextAreaField(
        "Write a message",
        validators=[
            DataRequired(message="Write a message."),
            Length(max=BODY_MAX, message=f"A message can be at most {BODY_MAX:,} characters."),
        ],
    )
