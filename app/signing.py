"""The session cookie and the CSRF token, signed as Flask and Flask-WTF sign them, without the
work they repeat on every request.

Both sign with itsdangerous's `URLSafeTimedSerializer`, and the profile of a signed-out page put
a third of its time there: a serializer and its signer built anew for each use, the key derived
again by HMAC at each signature, and a `zlib.compress` of every payload (a session of a few
dozen bytes, a 40-character token) that is then thrown away because it saves nothing. Here the
serializers are built once per secret, the derived keys kept, and payloads left uncompressed.

What is written reads as before: the same salts, keys and signatures, so a cookie or token
made here is accepted by Flask and Flask-WTF (`validate_csrf`) and one they made is accepted
here (a compressed payload, marked by its leading ".", still loads).
"""

from __future__ import annotations

import functools
import secrets
from typing import Any

from flask import Flask, current_app, g, session
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode, want_bytes
from itsdangerous.url_safe import URLSafeSerializerMixin

CSRF_SALT = "wtf-csrf-token"  # Flask-WTF's


@functools.lru_cache(maxsize=64)
def _derived_key(secret: bytes, salt: bytes, key_derivation: str, digest_method: Any) -> bytes:
    signer = TimestampSigner(
        secret, salt=salt, key_derivation=key_derivation, digest_method=digest_method
    )
    return signer.derive_key()


class KeptKeySigner(TimestampSigner):
    """A signer whose derived keys are computed once per secret, not at every signature."""

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        secret = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        return _derived_key(secret, self.salt, self.key_derivation, self.digest_method)


class PlainSerializer(URLSafeTimedSerializer):
    """URL-safe, timed and signed; payloads base64-encoded but never compressed."""

    signer = KeptKeySigner

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(super(URLSafeSerializerMixin, self).dump_payload(obj))


# Messages wait in the session cookie until a page shows them. A client that never reads them
# (a script, a tab closed before the redirect) would grow the cookie past the 4 KB browsers
# keep, and a browser drops a larger cookie without a word, and the session with it: the same
# message is kept once, and only the newest few.
MESSAGES_KEPT = 5


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions with one serializer per app (rebuilt if the secret or
    its fallbacks change) instead of one per request, and the messages waiting in the
    cookie bounded."""

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        if "_flashes" in session:
            _fewer_messages(session)
        super().save_session(app, session, response)

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)  # current last
        kept = app.extensions.get("campus.session_serializer")
        if kept is None or kept[0] != keys:
            serializer = PlainSerializer(
                list(keys),
                salt=self.salt,
                serializer=self.serializer,
                signer_kwargs={
                    "key_derivation": self.key_derivation,
                    "digest_method": self.digest_method,
                },
            )
            kept = app.extensions["campus.session_serializer"] = (keys, serializer)
        return kept[1]


def _fewer_messages(session: Any) -> None:
    waiting = session["_flashes"]
    if len(waiting) < 2:
        return
    kept = list({tuple(message): message for message in reversed(waiting)}.values())
    if len(kept) < len(waiting) or len(kept) > MESSAGES_KEPT:
        session["_flashes"] = kept[:MESSAGES_KEPT][::-1]


@functools.lru_cache(maxsize=8)
def _csrf_serializer(secret: str | bytes) -> PlainSerializer:
    return PlainSerializer(secret, salt=CSRF_SALT)


def csrf_token() -> str:
    """This request's CSRF token, as Flask-WTF's `generate_csrf` makes it (the raw token kept
    in the session, signed with the time): one per request, kept in `g` where Flask-WTF's
    forms and its `csrf_token()` find it."""
    config = current_app.config
    field = config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    token = g.get(field)
    if token is None:
        raw = session.get(field)
        if not isinstance(raw, str):
            raw = session[field] = secrets.token_hex(20)
        secret = config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
        token = _csrf_serializer(secret).dumps(raw)
        setattr(g, field, token)
    return token


def init_app(app: Flask) -> None:
    app.session_interface = CookieSessions()
    # In place of Flask-WTF's, registered after its own (the later context processor wins).
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.context_processor(lambda: {"csrf_token": csrf_token})
