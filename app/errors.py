"""Domain errors raised by services, and the one place that turns errors into pages."""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A broken rule; `status` is the HTTP status it answers with."""

    status = 400

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class NotAllowed(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class InvalidInput(DomainError):
    """Input that passed the form but breaks a rule; `errors` maps field names to messages."""

    status = 422

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class Gone(DomainError):
    """A one-time link that was used, expired or never valid."""

    status = 410


class Throttled(DomainError):
    """Too many attempts; `retry_after` says in how many seconds one more is allowed."""

    status = 429

    def __init__(self, message: str = "", retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class UnsupportedType(DomainError):
    status = 415


TITLES = {
    400: ("Bad request", "The request could not be understood. Reload the page and try again."),
    401: ("Please sign in", "You need to sign in to see this page."),
    403: ("Not allowed", "You do not have permission to do that."),
    404: ("Not found", "There is nothing here. Check the address, or go back to the start."),
    405: ("Not allowed here", "That action is not available at this address."),
    408: ("Too slow", "What you sent arrived too slowly. Check your connection and try again."),
    410: ("Link no longer works", "That link was used already or has expired."),
    413: ("Too large", "What you sent is larger than this site accepts."),
    415: ("Unsupported type", "That type of file or content is not accepted here."),
    416: ("Range not available", "That part of the file does not exist."),
    422: ("Cannot process", "Some of what you sent is not valid. Check it and try again."),
    429: ("Too many attempts", "Too many attempts. Wait a few minutes, then try again."),
    500: ("Something went wrong", "Something went wrong on our side. Please try again later."),
}


def render_error(status: int, message: str | None = None):
    title, default_message = TITLES.get(status, TITLES[400] if status < 500 else TITLES[500])
    message = message or default_message
    if request.path == "/healthz" or request.accept_mimetypes.best == "application/json":
        return jsonify(error=title, message=message), status
    template = "errors/_error.html" if request.headers.get("HX-Request") else "errors/error.html"
    return render_template(template, status=status, title=title, message=message), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        body, status = render_error(error.status, error.message or None)
        if isinstance(error, Throttled):
            return body, status, {"Retry-After": str(error.retry_after)}
        return body, status

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return render_error(
            400,
            "Your form has expired or was not sent from this site. Reload the page and try again.",
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        status = error.code or 500
        if status == 408:
            # Only a client too slow to send its request gets this, often hundreds at once
            # in an attack: a few bytes, no page to render.
            return TITLES[408][1], 408, {"Content-Type": "text/plain; charset=utf-8"}
        message = None
        if status == 413 and g.get("spool_uploads"):
            message = (
                f"Files can be at most {current_app.config['MAX_UPLOAD_MB']} MB. Nothing was kept."
            )
        body, status = render_error(status, message)
        # Keep the headers werkzeug sets (Allow on 405, Retry-After on 429, WWW-Authenticate).
        headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
        return body, status, headers

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        log.exception("Unhandled error on %s %s", request.method, request.path)
        return render_error(500)
