"""Account rules: passwords, registration, signing in with throttling, ending sessions."""

from __future__ import annotations

import hmac
import logging
import math
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from app.blueprints.notifications.services import notify
from app.errors import InvalidInput, Throttled
from app.extensions import db
from app.models import Role, User
from app.models.user import utcnow
from app.timezones import DEFAULT_ZONE, is_zone
from app.web import attempts_left, count_attempt, forget_attempts, seconds_until_allowed

T = TypeVar("T")
log = logging.getLogger(__name__)

COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")
LOGIN_FAILED = "That username or email and password do not match an account."
DEACTIVATED = "This account is deactivated. Ask your school's admin."
LOCKED_OUT = (
    "Too many failed sign-ins for this account. Wait 15 minutes, sign in from a browser you "
    "have signed in with before, or ask your school's admin."
)
# One notice per lockout: as long as LOGIN_ACCOUNT_LOCKOUT's window.
LOCKOUT_NOTICE = "1 per 15 minutes"
DEVICE_COOKIE_SALT = "campus.device-cookie"


@cache
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(
        line.strip().lower() for line in lines if line.strip() and not line.startswith("#")
    )


@cache
def _hasher(profile: str) -> argon2.PasswordHasher:
    return argon2.PasswordHasher.from_parameters(getattr(argon2.profiles, profile))


def password_hasher() -> argon2.PasswordHasher:
    return _hasher(current_app.config["PASSWORD_HASH_PROFILE"])


def off_the_event_loop(work: Callable[..., T], *args: object) -> T:
    """Run CPU-heavy work (a password hash: ~100 ms, 64 MiB) in a real thread under gunicorn's
    gevent worker, so that the open sockets of that worker are not frozen meanwhile; argon2
    releases the GIL. Elsewhere simply call it."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        import gevent

        return gevent.get_hub().threadpool.apply(work, args)
    return work(*args)


def hash_password(password: str) -> str:
    return off_the_event_loop(password_hasher().hash, password)


def _password_matches(hasher: argon2.PasswordHasher, password_hash: str, password: str) -> bool:
    """argon2 answers a wrong password with an exception; raised inside gevent's thread pool,
    every one is printed as a traceback (11 lines per failed sign-in). A bool crosses back
    quietly."""
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_password(user: User, password: str) -> bool:
    hasher = password_hasher()
    if not off_the_event_loop(_password_matches, hasher, user.password_hash, password):
        return False
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return True


def password_problem(password: str, username: str, email: str) -> str | None:
    """Why a new password is too easy to guess, or None."""
    lowered = password.lower()
    if lowered in {username.lower(), email.lower(), email.lower().split("@")[0]}:
        return "Your password must not be your username or email."
    if lowered in common_passwords() or len(set(password)) < 4:
        return "That password is too common. Choose one that is harder to guess."
    return None


@dataclass(frozen=True)
class Registration:
    username: str
    email: str
    full_name: str
    password: str
    role: str = Role.STUDENT.value
    teacher_code: str = ""
    timezone: str = DEFAULT_ZONE


def teacher_code_matches(code: str) -> bool:
    expected = current_app.config.get("TEACHER_SIGNUP_CODE")
    if not expected:
        return False
    return hmac.compare_digest(code.encode(), expected.encode())


def find_by_username(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == username.strip().lower()))


def find_by_login(login: str) -> User | None:
    login = login.strip().lower()
    return db.session.scalar(select(User).where(or_(User.username == login, User.email == login)))


def taken(username: str, email: str, exclude_id: int | None = None) -> dict[str, str]:
    """Which of username and email another account already uses (both stored lower-cased)."""
    query = select(User.username, User.email).where(
        or_(User.username == username.lower(), User.email == email.lower())
    )
    if exclude_id is not None:
        query = query.where(User.id != exclude_id)
    errors: dict[str, str] = {}
    for other_username, other_email in db.session.execute(query):
        if other_username == username.lower():
            errors["username"] = "That username is taken. Choose another."
        if other_email == email.lower():
            errors["email"] = "An account with that email already exists."
    return errors


def register(data: Registration) -> User:
    """Create a student, or a teacher with the school's code. Admins come only from the CLI."""
    errors = taken(data.username, data.email)
    problem = password_problem(data.password, data.username, data.email)
    if problem:
        errors["password"] = problem
    if data.role == Role.TEACHER:
        if not current_app.config.get("TEACHER_SIGNUP_CODE"):
            errors["role"] = (
                "Teacher registration is closed. Ask your school's admin for an account."
            )
        elif not teacher_code_matches(data.teacher_code):
            errors["teacher_code"] = "That teacher code is not right. Ask your school for it."
    elif data.role != Role.STUDENT:
        errors["role"] = "Choose student or teacher."
    if not is_zone(data.timezone):
        errors["timezone"] = "Choose a time zone from the list (for example Europe/Paris)."
    if errors:
        raise InvalidInput(errors)
    return create_user(
        data.username, data.email, data.full_name, data.password, data.role, data.timezone
    )


def create_user(
    username: str,
    email: str,
    full_name: str,
    password: str,
    role: str,
    timezone: str = DEFAULT_ZONE,
) -> User:
    user = User(
        username=username.lower(),
        email=email.lower(),
        full_name=full_name,
        role=Role(role).value,
        password_hash=hash_password(password),
        bio="",
        timezone=timezone,
    )
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        # Another request took the name between our check and this insert.
        db.session.rollback()
        errors = taken(username, email) or {"username": "That username is taken."}
        raise InvalidInput(errors) from None
    return user


def _lockout_key(login: str, user: User | None) -> str:
    # By username, which never changes or passes to another account (an id may be reused by
    # SQLite after a deletion); sign-ins by username and by email count together.
    return f"user:{user.username}" if user else f"login:{login.strip().lower()}"


def shown_in_log(typed: str, limit: int = 64) -> str:
    """What someone typed, quoted for a log line: cut short, with line breaks, terminal escapes
    and bidi controls written out, so that it cannot forge or hide lines."""
    return repr(typed[:limit] + ("…" if len(typed) > limit else ""))


@dataclass(frozen=True)
class SignedIn:
    """Who signed in, and the device cookie their browser keeps from now on."""

    user: User
    device_cookie: str


def _device_cookies() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=DEVICE_COOKIE_SALT)


def new_device_cookie(user: User) -> str:
    """Signed proof that this browser signed in to `user`: the account and a random nonce, by
    which the browser's own failures are counted."""
    return _device_cookies().dumps({"account": user.username, "nonce": secrets.token_urlsafe(16)})


def trusted_device(cookie: str | None, user: User | None) -> str | None:
    """The nonce of a device cookie this browser got by signing in to `user` before, if it is
    within its lifetime and not locked itself; None for anything else (no cookie, a forged or
    altered one, another account's, an expired one, a locked one)."""
    if not cookie or user is None:
        return None
    try:
        data = _device_cookies().loads(cookie, max_age=current_app.config["DEVICE_COOKIE_DURATION"])
    except BadData:
        return None
    if not isinstance(data, dict) or data.get("account") != user.username:
        return None
    nonce = data.get("nonce")
    lockout = current_app.config["LOGIN_ACCOUNT_LOCKOUT"]
    if not isinstance(nonce, str) or not attempts_left(lockout, "device-lockout", nonce):
        return None
    return nonce


def authenticate(
    login: str, password: str, address: str = "", device_cookie: str | None = None
) -> SignedIn:
    """The account these credentials open, and a fresh device cookie for the browser.

    Too many failures lock the account for a while to every browser, whatever address they
    come from; unknown accounts are locked the same way so that a lockout tells nothing about
    which accounts exist. A browser that signed in to the account before (its device cookie,
    as OWASP describes) is not held by that lockout but by its own, so that strangers cannot
    lock the owner out; the owner is told once when their account locks. Each failure is one
    warning line in the log, with the login as typed and the client's address."""
    user = find_by_login(login)
    lockout = current_app.config["LOGIN_ACCOUNT_LOCKOUT"]
    device = trusted_device(device_cookie, user)
    scope, key = ("device-lockout", device) if device else ("lockout", _lockout_key(login, user))
    # Counted before the password is checked: a burst of guesses sent at once cannot all
    # pass the check while the first ones are still being verified.
    if not count_attempt(lockout, scope, key):
        log.warning("sign-in refused for %s from %s: locked", shown_in_log(login), address)
        raise Throttled(LOCKED_OUT, seconds_until_allowed(lockout, scope, key))
    if user is None:
        hash_password(password)  # spend the same time as a real check
        ok = False
    else:
        ok = verify_password(user, password)
    if not ok:
        reason = "no such account" if user is None else "wrong password"
        if device:
            reason += " (from a browser that signed in before)"
        log.warning("sign-in failed for %s from %s: %s", shown_in_log(login), address, reason)
        if user is not None and not device and not attempts_left(lockout, scope, key):
            _tell_owner_of_lockout(user, lockout, key)
        raise InvalidInput({"login": LOGIN_FAILED})
    forget_attempts(lockout, scope, key)
    if not user.is_active:  # only the right password learns that the account is deactivated
        log.warning("sign-in refused for %s from %s: deactivated", shown_in_log(login), address)
        raise InvalidInput({"login": DEACTIVATED})
    user.last_sign_in_at = utcnow()
    db.session.commit()  # and a rehashed password, if the cost changed
    return SignedIn(user, new_device_cookie(user))


def _tell_owner_of_lockout(user: User, lockout: str, key: str) -> None:
    """Once per lockout (concurrent failures may all see it locked): the notice."""
    if not count_attempt(LOCKOUT_NOTICE, "lockout-notice", key):
        return
    minutes = max(1, math.ceil(seconds_until_allowed(lockout, "lockout", key) / 60))
    notify(
        [user.id],
        "account_locked",
        f"Too many failed sign-ins to your account: sign-ins from new browsers are paused for "
        f"{minutes} minutes. Browsers you have signed in with before still work. If those "
        "attempts were not yours, consider changing your password.",
        "/profile/edit",
    )
    db.session.commit()


def end_sessions(user: User) -> None:
    """Every session and remember cookie of this user stops working."""
    user.end_sessions()
    db.session.commit()


def change_password(user: User, current: str, new: str) -> None:
    if not verify_password(user, current):
        raise InvalidInput({"current_password": "That is not your current password."})
    problem = password_problem(new, user.username, user.email)
    if problem:
        raise InvalidInput({"new_password": problem})
    user.password_hash = hash_password(new)
    end_sessions(user)


def set_role(user: User, role: str) -> None:
    user.role = Role(role).value
    end_sessions(user)
