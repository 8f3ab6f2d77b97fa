"""The front page, the signed-in dashboard and the health check."""

from flask import Blueprint

bp = Blueprint("main", __name__)

from app.blueprints.main import routes  # noqa: E402,F401 - registers the routes
