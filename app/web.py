"""Request and response helpers shared by the blueprints."""

from __future__ import annotations

import csv
import io
import logging
import math
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial, wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
)
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required
from limits import parse_many
from werkzeug.routing import IntegerConverter

from app.errors import InvalidInput, NotAllowed, Throttled
from app.extensions import limiter
from app.forms import whole_number
from app.signing import csrf_token

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LargeBody:
    """What a view that reads more than the small body limit allows, and to whom."""

    max_bytes: Callable[[Flask], int]
    allowed: Callable[..., None]  # raises NotAllowed / NotFound for anyone else
    to_disk: bool


def accepts_large_body(
    max_bytes: Callable[[Flask], int], allowed: Callable[..., None], to_disk: bool = False
) -> Callable:
    """Let this view read a body up to `max_bytes(app)` (multipart files spooled to
    UPLOAD_DIR/tmp when `to_disk`), for a signed-in person `allowed(**view_args)` accepts.

    Every other request, and anyone else here, gets the small MAX_CONTENT_LENGTH: 413 as soon
    as the headers announce more, before any of the body is read (DESIGN.md "Security")."""

    def decorator(view: Callable) -> Callable:
        view.large_body = LargeBody(max_bytes, allowed, to_disk)  # type: ignore[attr-defined]
        return view

    return decorator


def admit_large_body() -> None:
    """Before anything reads the body (the CSRF check reads the form): raise the limit for a
    view marked with `accepts_large_body`, once the person is known to be allowed there."""
    view = current_app.view_functions.get(request.endpoint or "")
    spec: LargeBody | None = getattr(view, "large_body", None)
    if spec is None or request.method != "POST" or not current_user.is_authenticated:
        return
    spec.allowed(**(request.view_args or {}))
    request.max_content_length = spec.max_bytes(current_app)
    request.max_form_memory_size = spec.max_bytes(current_app)  # a large field, too
    g.spool_uploads = spec.to_disk


def register_body_limits(app: Flask) -> None:
    """Call before CSRFProtect.init_app: this hook must run before the CSRF check reads."""
    app.before_request(admit_large_body)


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: at most 18 digits, which every id a database column holds
    fits (a signed 64-bit integer goes to 9,223,372,036,854,775,807). A longer number matches
    no route: 404, not a driver's overflow (500). Bounded in the pattern rather than with
    `max`: werkzeug checks `max` only once it has picked a rule, and a POST to a path whose GET
    is another rule would then be 405."""

    regex = r"\d{1,18}"


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def is_cross_site() -> bool:
    """The browser says a page of another site sent this request (`Sec-Fetch-Site`): a link
    from elsewhere, which may show a page but not act for the person, such as marking what
    they have not seen as read. Typed addresses and our own links say "none", "same-origin"."""
    return request.headers.get("Sec-Fetch-Site") == "cross-site"


def redirect_303(location: str) -> Response:
    """A redirect after a successful POST: the browser follows it with a GET."""
    return redirect(location, code=303)


def wants_partial() -> bool:
    """htmx asked for part of a page, not for a whole one to restore its history with."""
    return is_htmx() and not request.headers.get("HX-History-Restore-Request")


def render_page_or_partial(full: str, partial: str, status: int = 200, **context: Any):
    """The full page for a normal request, only the partial when htmx asked for it."""
    template = partial if wants_partial() else full
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


SECURITY_HEADERS = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
]
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")


def register_security_headers(app: Flask) -> None:
    """The same headers on every response, added in one go: this runs on every request."""
    headers_for_all = (
        [*SECURITY_HEADERS, HSTS] if app.config.get("SESSION_COOKIE_SECURE") else SECURITY_HEADERS
    )

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.extend(headers_for_all)
        # Pages with someone's data are kept by no cache, shared or the back button's. The
        # session says who is signed in without loading the user again.
        if "_user_id" in session and "Cache-Control" not in response.headers:
            response.headers["Cache-Control"] = "no-store"
        return response


def add_errors(form: Any, error: InvalidInput) -> None:
    """Put a service's messages beside the form's fields."""
    for name, message in error.errors.items():
        field = getattr(form, name)
        field.errors = [*field.errors, message]


def form_invalid(template: str, invalid: Any, error: InvalidInput | None = None, **context: Any):
    """The page again with every message beside its field: 422.

    The `invalid` form gets the service's messages; the template sees it as `form` unless the
    context names the forms itself (a page with two forms)."""
    if error is not None:
        add_errors(invalid, error)
    context.setdefault("form", invalid)
    return render_template(template, **context), 422


# The signed-out pages (front page, sign-in, register, the catalogue, a course) are the same for
# every visitor but for the CSRF token, and they are what bots and crowds on the first day of
# term hit. They are rendered once with a placeholder token, kept per process, and sent with the
# visitor's token.
TOKEN_PLACEHOLDER = f"csrf-placeholder-{secrets.token_hex(16)}"
PAGE_CACHE_SIZE = 64


def cached_for_visitors(
    view: Callable | None = None,
    *,
    scopes: Callable[..., Sequence[str]] | None = None,
    signed_in: bool = False,
) -> Callable:
    """Keep the view's signed-out page. Without `scopes` the page never changes while the
    process runs (it shows no rows); with them (a function of the view's arguments naming the
    versions the page follows, app/fragments.py) it is kept under those versions, so the next
    request after a change renders it afresh. Only a 200 HTML page is kept, and none while a
    message waits to be shown.

    With `signed_in` (and `scopes`), each signed-in person's page is kept too: see
    `kept_for_person`."""
    if view is None:
        return partial(cached_for_visitors, scopes=scopes, signed_in=signed_in)

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any):
        if "_user_id" in session:
            if not (signed_in and scopes):
                return view(*args, **kwargs)
            return kept_for_person(scopes(*args, **kwargs), lambda: view(*args, **kwargs))
        if not _may_keep():
            return view(*args, **kwargs)
        key = _page_key()
        if scopes is not None:
            from app import fragments

            page = fragments.kept(
                scopes(*args, **kwargs),
                ("visitor", *key),
                lambda: _with_placeholder(lambda: view(*args, **kwargs)),
                keep=lambda value: isinstance(value, str),
            )
        else:
            cache: dict[tuple, str] = current_app.extensions.setdefault("campus.visitor_pages", {})
            page = cache.get(key)
            if page is None:
                page = _with_placeholder(lambda: view(*args, **kwargs))
                if isinstance(page, str) and len(cache) < PAGE_CACHE_SIZE:
                    cache[key] = page
        return _page_response(page)

    return wrapped


def kept_for_person(
    scopes: Sequence[str],
    make: Callable[[], Any],
    named: Callable[[], Iterable[str]] | None = None,
) -> Any:
    """The signed-in person's page as `make()` answers it, kept for them under `scopes` and
    their own version (app/fragments.py), with this request's CSRF token put in: for a page
    that shows nothing but what `scopes` follow and the person (their row, role, zone, unread
    count), and the scopes `named()` names from the person's own rows (`fragments.kept`).
    What the view writes (a notification marked read) happens before, not in `make`. The
    person's session is checked at every request as on any page."""
    from app import fragments

    claimed = fragments.signed_in_id()
    if not _may_keep() or claimed is None:
        return make()
    followed = [*scopes, fragments.person_scope(claimed)]
    fragments.read_ahead(followed)  # with the person's own: one round trip for both
    if not current_user.is_authenticated or current_user.id != claimed:
        return make()
    page = fragments.kept(
        followed,
        ("person", claimed, *_page_key()),
        lambda: _with_placeholder(make),
        keep=lambda value: isinstance(value, str),
        seconds=fragments.PERSON_SECONDS,
        named=named,
    )
    return _page_response(page)


def _may_keep() -> bool:
    return (
        current_app.config["CACHE_VISITOR_PAGES"]
        and request.method == "GET"
        and "_flashes" not in session
    )


def _page_key() -> tuple:
    return (request.path, request.query_string, wants_partial())


def _with_placeholder(make: Callable[[], Any]) -> str | Response:
    """The page with the placeholder token, or the response itself when it is no page."""
    g.csrf_token = TOKEN_PLACEHOLDER  # what csrf_token() returns for this rendering
    try:
        response = current_app.make_response(make())
    finally:
        g.pop("csrf_token", None)
    page = response.get_data(as_text=True)
    if response.status_code != 200 or response.mimetype != "text/html":
        response.set_data(page.replace(TOKEN_PLACEHOLDER, csrf_token()))
        return response
    return page


def _page_response(page: str | Response) -> Response:
    """A kept page with this request's own token, or a response that was not kept."""
    if not isinstance(page, str):
        return page
    response = Response(page.replace(TOKEN_PLACEHOLDER, csrf_token()), mimetype="text/html")
    response.vary.add("HX-Request")
    return response


def _limit_store(action: str, limits: str, identifiers: tuple[str, ...]) -> bool:
    """Run a Flask-Limiter strategy call for each limit (its storage: Redis with REDIS_URL,
    memory otherwise). If the store cannot be reached the attempt is allowed and the failure
    logged: people signing in matter more than counting them."""
    strategy = limiter.limiter
    try:
        results = [getattr(strategy, action)(item, *identifiers) for item in parse_many(limits)]
    except Exception:  # any storage failure (connection refused, timeout): the request goes on
        log.warning("rate-limit storage unavailable; %s not counted", identifiers[0], exc_info=True)
        return True
    return all(result is not False for result in results)


def count_attempt(limits: str, *identifiers: str) -> bool:
    """Count one attempt; False once past any of `limits` ("10 per 15 minutes; ...")."""
    return _limit_store("hit", limits, identifiers)


def attempts_left(limits: str, *identifiers: str) -> bool:
    """Whether one more attempt would stay within `limits`, without counting it."""
    return _limit_store("test", limits, identifiers)


def forget_attempts(limits: str, *identifiers: str) -> None:
    _limit_store("clear", limits, identifiers)


def seconds_until_allowed(limits: str, *identifiers: str) -> int:
    """How long until one more attempt fits within `limits`: a 429's `Retry-After`."""
    strategy = limiter.limiter
    waits = [1]
    try:
        for item in parse_many(limits):
            stats = strategy.get_window_stats(item, *identifiers)
            if stats.remaining <= 0:
                waits.append(math.ceil(stats.reset_time - time.time()))
    except Exception:  # the store is unreachable: a minute is a fair guess
        log.warning("rate-limit storage unavailable; Retry-After guessed", exc_info=True)
        return 60
    return max(waits)


def throttle_address(limits: str, scope: str) -> None:
    """Count one attempt from the client's address; past any of `limits`, 429.

    Called for the POSTs that need it rather than through Flask-Limiter's decorator, which
    costs every GET of the page too."""
    address = get_remote_address()
    if not count_attempt(limits, scope, address):
        raise Throttled(
            "Too many attempts from your network. Wait a minute, then try again.",
            retry_after=seconds_until_allowed(limits, scope, address),
        )


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_response(filename: str, header: list[str], rows: Iterable[Iterable[object]]) -> Response:
    """A CSV download whose cells no spreadsheet runs as formulas."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def page_count(total: int, per_page: int = 20) -> int:
    """How many pages `total` items fill (at least one, for the empty list)."""
    return max(1, -(-total // per_page))


def page_number() -> int:
    """`?page=N` as a whole number of at least 1; anything else is page 1."""
    return whole_number(request.args.get("page", ""), max_digits=6) or 1
