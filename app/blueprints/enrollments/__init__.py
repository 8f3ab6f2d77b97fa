"""Enrolments: joining and leaving courses, the waitlist, and teachers' rosters."""

from flask import Blueprint

bp = Blueprint("enrollments", __name__)

from app.blueprints.enrollments import routes  # noqa: E402,F401 - registers the routes
