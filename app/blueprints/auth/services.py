"""Account rules: passwords, registration, signing in with throttling, ending sessions."""

from __future__ import annotations

import hmac
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from app.errors import InvalidInput, Throttled
from app.extensions import db
from app.models import Role, User
from app.web import attempts_left, count_attempt, forget_attempts, seconds_until_allowed

T = TypeVar("T")
log = logging.getLogger(__name__)

COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")
LOGIN_FAILED = "That username or email and password do not match an account."
LOCKED_OUT = (
    "Too many failed sign-ins for this account. Wait 15 minutes, or ask your school's admin."
)


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
    if errors:
        raise InvalidInput(errors)
    return create_user(data.username, data.email, data.full_name, data.password, data.role)


def create_user(username: str, email: str, full_name: str, password: str, role: str) -> User:
    user = User(
        username=username.lower(),
        email=email.lower(),
        full_name=full_name,
        role=Role(role).value,
        password_hash=hash_password(password),
        bio="",
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


def authenticate(login: str, password: str, address: str = "") -> User:
    """The account these credentials open. Too many failures lock the account for a while,
    whatever address they come from; unknown accounts are locked the same way so that a
    lockout tells nothing about which accounts exist. Each failure is one warning line in the
    log, with the login as typed and the client's address."""
    user = find_by_login(login)
    lockout = current_app.config["LOGIN_ACCOUNT_LOCKOUT"]
    key = _lockout_key(login, user)
    if not attempts_left(lockout, "lockout", key):
        log.warning("sign-in refused for %s from %s: locked", shown_in_log(login), address)
        raise Throttled(LOCKED_OUT, seconds_until_allowed(lockout, "lockout", key))
    if user is None:
        hash_password(password)  # spend the same time as a real check
        ok = False
    else:
        ok = verify_password(user, password)
    if not ok:
        count_attempt(lockout, "lockout", key)
        reason = "no such account" if user is None else "wrong password"
        log.warning("sign-in failed for %s from %s: %s", shown_in_log(login), address, reason)
        raise InvalidInput({"login": LOGIN_FAILED})
    forget_attempts(lockout, "lockout", key)
    db.session.commit()  # a rehashed password, if the cost changed
    return user


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
