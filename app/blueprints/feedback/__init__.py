"""Course feedback: ratings and comments from enrolled students, and teachers' replies."""

from flask import Blueprint

bp = Blueprint("feedback", __name__)

from app.blueprints.feedback import routes  # noqa: E402,F401 - registers the routes
