"""Course materials: uploading, listing, downloading and deleting files."""

from flask import Blueprint

bp = Blueprint("materials", __name__)

from app.blueprints.materials import routes  # noqa: E402,F401 - registers the routes
