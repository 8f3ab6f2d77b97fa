"""Forms of the admin pages."""

from __future__ import annotations

from wtforms import SelectChoice, SelectField

from app.forms import BaseForm
from app.models import Role


class RoleForm(BaseForm):
    role = SelectField(
        "Role",
        choices=[SelectChoice(role.value, role.value.capitalize()) for role in Role],
        validate_choice=False,  # the service says what is wrong, in the school's words
    )
