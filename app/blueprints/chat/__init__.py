"""Chat: course rooms and direct rooms, their pages, and the live channel at /ws."""

from flask import Blueprint

bp = Blueprint("chat", __name__)

from app.blueprints.chat import routes  # noqa: E402,F401 - registers the routes
