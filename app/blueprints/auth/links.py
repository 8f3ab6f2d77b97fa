"""One-time links that set a password: made by an admin or an import (72 hours), or asked for
by someone who forgot theirs (30 minutes).

A link is signed, not stored: it names the account and a fingerprint of its password hash and
session version. Setting a password changes both, so a link works once, and any password
change or ended session (by any path) kills every older link of that account."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.blueprints.auth.services import hash_password, password_problem
from app.errors import Gone, InvalidInput
from app.extensions import db
from app.models import User

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
