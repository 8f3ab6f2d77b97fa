"""The chat's forms: a message (the page's path without JavaScript), an edit, a report, and
muting a member."""

from __future__ import annotations

from wtforms import IntegerField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange

from app.forms import BaseForm
from app.models.chat import BODY_MAX, MUTE_MINUTES_MAX, REASON_MAX


class MessageForm(BaseForm):
    body = TextAreaField(
        "Write a message",
        validators=[
            DataRequired(message="Write a message."),
            Length(max=BODY_MAX, message=f"A message can be at most {BODY_MAX:,} characters."),
        ],
    )


class EditForm(MessageForm):
    """The new text of one's own message."""


class ReportForm(BaseForm):
    reason = TextAreaField(
        "What is wrong with this message?",
        validators=[
            DataRequired(message="Say what is wrong with this message."),
            Length(max=REASON_MAX, message=f"A reason can be at most {REASON_MAX} characters."),
        ],
    )


class UnmuteForm(BaseForm):
    username = StringField("Member", validators=[DataRequired(message="Choose a member.")])


class MuteForm(UnmuteForm):
    minutes = IntegerField(
        "For how many minutes",
        validators=[
            InputRequired(message="Give a number of minutes."),
            NumberRange(
                min=1,
                max=MUTE_MINUTES_MAX,
                message=f"Give a whole number of minutes, 1 to {MUTE_MINUTES_MAX:,}.",
            ),
        ],
    )
