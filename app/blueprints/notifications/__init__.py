"""Notifications: the list, marking them read, and the service other features write through."""

from flask import Blueprint

bp = Blueprint("notifications", __name__)

from app.blueprints.notifications import routes  # noqa: E402,F401 - registers the routes
