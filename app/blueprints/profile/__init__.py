"""Profiles: one's own (view, edit, change password) and other people's public page."""

from flask import Blueprint

bp = Blueprint("profile", __name__)

from app.blueprints.profile import routes  # noqa: E402,F401 - registers the routes
