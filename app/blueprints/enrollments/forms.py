"""Forms of the roster: adding students by username."""

from __future__ import annotations

from wtforms import TextAreaField
from wtforms.validators import DataRequired, Length

from app.forms import BaseForm


class AddStudentsForm(BaseForm):
    usernames = TextAreaField(
        "Usernames",
        validators=[
            DataRequired("Type the usernames of the students to add."),
            Length(max=10_000, message="That is more than a class: use the import instead."),
        ],
    )
