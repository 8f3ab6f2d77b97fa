"""Running the school: accounts, roles, deactivation, password links, imports, the audit log.
Admins only."""

from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from app.blueprints.admin import routes  # noqa: E402,F401 - registers the routes
