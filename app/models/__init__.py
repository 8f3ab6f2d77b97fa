"""The database models, one module per aggregate."""

from app.models.user import Role, User

__all__ = ["Role", "User"]
