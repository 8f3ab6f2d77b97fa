"""Request and response helpers shared by the blueprints."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, redirect, render_template, request
from flask_login import current_user, login_required

from app.errors import InvalidInput, NotAllowed


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def redirect_303(location: str) -> Response:
    """A redirect after a successful POST: the browser follows it with a GET."""
    return redirect(location, code=303)


def render_page_or_partial(page: str, partial: str, status: int = 200, **context: Any):
    """The full page for a normal request, only the partial when htmx asked for it."""
    template = (
        partial if is_htmx() and not request.headers.get("HX-History-Restore-Request") else page
    )
    response = Response(render_template(template, **context), status=status)
    response.vary.add("HX-Request")
    return response


def is_safe_next(target: str | None) -> bool:
    """Only a path on this site: no scheme, no host, no `//host` or `/\\host` tricks."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return False
    if any(ch in target for ch in "\\\r\n\t\x00") or not target.isprintable():
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def role_required(*roles: str) -> Callable:
    """Signed in, with one of these roles; otherwise 403."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any):
            if current_user.role not in roles:
                raise NotAllowed()
            return view(*args, **kwargs)

        return wrapped

    return decorator


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def register_security_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if app.config.get("SESSION_COOKIE_SECURE"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if current_user and current_user.is_authenticated:
            # Pages with someone's data are not kept by shared caches or the back button.
            headers.setdefault("Cache-Control", "no-store")
        return response


def form_invalid(template: str, invalid: Any, error: InvalidInput | None = None, **context: Any):
    """The page again with every message beside its field: 422.

    The `invalid` form gets the service's messages; the template sees it as `form` unless the
    context names the forms itself (a page with two forms)."""
    if error is not None:
        for name, message in error.errors.items():
            field = getattr(invalid, name)
            field.errors = [*field.errors, message]
    context.setdefault("form", invalid)
    return render_template(template, **context), 422
