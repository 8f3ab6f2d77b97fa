"""One-time links that set a password: made by an admin or an import (72 hours), or asked for
by someone who forgot theirs (30 minutes).

A link is signed, not stored: it names the account and a fingerprint of its password hash and
session version. Setting a password changes both, so a link works once, and any password
change or ended session (by any path) kills every older link of that account."""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app import mail
from app.blueprints.auth.services import find_by_login, hash_password, password_problem
from app.errors import Gone, InvalidInput
from app.extensions import db
from app.models import User
from app.web import count_attempt

log = logging.getLogger(__name__)

SALT = "campus.password-link"
LIFETIMES = {"admin": timedelta(hours=72), "reset": timedelta(minutes=30)}
DEAD = "This link was used already, has expired, or is not a link Campus made."


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _fingerprint(user: User) -> str:
    state = f"{user.id}:{user.password_hash}:{user.session_version}".encode()
    return hashlib.sha256(state).hexdigest()[:24]


def make_token(user: User, kind: str = "admin") -> str:
    if kind not in LIFETIMES:
        raise ValueError(f"unknown kind of link: {kind}")
    return _serializer().dumps({"u": user.id, "k": kind, "f": _fingerprint(user)})


def lifetime(kind: str) -> timedelta:
    return LIFETIMES[kind]


def account_for(token: str) -> User:
    """The account this link may set a password for; Gone (410) when it may not (any more)."""
    longest = max(LIFETIMES.values()).total_seconds()
    try:
        data, signed_at = _serializer().loads(token, max_age=longest, return_timestamp=True)
    except (BadSignature, SignatureExpired):
        raise Gone(DEAD) from None
    if not isinstance(data, dict) or data.get("k") not in LIFETIMES:
        raise Gone(DEAD)
    if time.time() - signed_at.timestamp() > LIFETIMES[data["k"]].total_seconds():
        raise Gone(DEAD)
    user = db.session.get(User, data.get("u")) if isinstance(data.get("u"), int) else None
    if user is None or not user.is_active or data.get("f") != _fingerprint(user):
        raise Gone(DEAD)
    return user


def set_password(token: str, new_password: str) -> User:
    """Set the account's password through its link, which then stops working; every session
    of the account ends. Nobody is signed in by this. A refused password keeps the link."""
    user = account_for(token)
    problem = password_problem(new_password, user.username, user.email)
    if problem:
        raise InvalidInput({"new_password": problem})
    user.password_hash = hash_password(new_password)
    user.end_sessions()
    db.session.commit()
    return user


def mail_link(user: User, url: str) -> bool:
    """Add to the current transaction a mail giving the account its set-password link (an
    admin's or an import's), when it has an address and mail is configured; whether it did."""
    if not user.email or not mail.configured():
        return False
    mail.enqueue(
        user.email,
        "mail/password_link.html",
        user=user,
        link=url,
        hours=int(lifetime("admin").total_seconds() // 3600),
        forgot=mail.absolute_url("auth.forgot"),
    )
    return True


def send_reset_link(login: str) -> None:
    """Mail a reset link (30 minutes) to the account `login` names (its username or email),
    if there is one and it is active, at most FORGOT_ACCOUNT_LIMIT times in its window.

    Whoever asks learns nothing: the caller answers the same whatever happened, and this
    takes the same time whatever happened (at least FORGOT_MIN_SECONDS, by sleeping what is
    left; a gevent worker serves others meanwhile)."""
    started = time.monotonic()
    try:
        _send_reset_link(login)
    finally:
        left = current_app.config["FORGOT_MIN_SECONDS"] - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)


def _send_reset_link(login: str) -> None:
    user = find_by_login(login)
    # Counted for unknown logins too, so that both take the same steps.
    key = f"user:{user.username}" if user else f"login:{login.strip().lower()}"
    if not count_attempt(current_app.config["FORGOT_ACCOUNT_LIMIT"], "forgot", key):
        log.info("reset link not sent to %s: asked too often", key)
        return
    if user is None or not user.is_active:
        return
    minutes = int(lifetime("reset").total_seconds() // 60)
    mail.enqueue(
        user.email,
        "mail/password_reset.html",
        user=user,
        link=mail.absolute_url("auth.reset", token=make_token(user, "reset")),
        minutes=minutes,
        forgot=mail.absolute_url("auth.forgot"),
    )
    db.session.commit()
