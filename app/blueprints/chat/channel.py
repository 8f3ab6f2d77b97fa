"""The live channel's protocol (DESIGN.md "Live updates"): JSON in, HTML fragments out.

One socket per tab. Each incoming message is handled in a transaction of its own, and nothing
a client sends closes the socket: a bad message gets the `#live-error` fragment instead."""

from __future__ import annotations

import json
import logging
from time import monotonic
from typing import Any

from flask import current_app, g, request
from flask_login import current_user
from sqlalchemy import select

from app.blueprints.chat import safety, services
from app.blueprints.chat.services import Member
from app.errors import DomainError, InvalidInput
from app.extensions import db
from app.forms import whole_number
from app.live import Connection, live, render_fragment
from app.live.broker import new_socket_id
from app.live.hub import CLOSE_POLICY, serving
from app.models import User

log = logging.getLogger(__name__)

# How often an idle socket re-announces that it is still here (presence lives 90 s).
PRESENCE_REFRESH = 30
ROOMS_PER_RESUME = 50
BIGGEST_ID = 2**53


def refusal() -> tuple[str, int] | None:
    """Checked before the upgrade, while a status can still be answered: a session (401), a
    page of ours as the `Origin` (403), so another site cannot use a visitor's cookie, and at
    most SOCKETS_PER_PERSON open sockets for one person on all workers (429)."""
    if not current_user.is_authenticated:
        return "Sign in to use the live channel.", 401
    origin = request.headers.get("Origin", "")
    if origin.rstrip("/").lower() != f"{request.scheme}://{request.host}".lower():
        return "The live channel only answers this site's pages.", 403
    socket_id, most = new_socket_id(), current_app.config["SOCKETS_PER_PERSON"]
    if not live().broker.claim(current_user.id, socket_id, most):
        return f"You have {most} tabs with live updates open: close one, then reload.", 429
    g.live_socket = (current_user.id, socket_id)
    return None


def release() -> None:
    """After the socket's request, open or refused: its place is given back."""
    claimed = g.pop("live_socket", None)
    if claimed is not None:
        live().broker.forget(*claimed)


def member_of(user: User) -> Member:
    account_key = f"{user.id}-{user.created_at.timestamp():.6f}"
    return Member(user.id, user.username, user.full_name, user.session_version, account_key)


def serve(ws: Any) -> None:
    """Run one socket until it closes."""
    member = member_of(current_user)
    # Frames to this tab go through its own queue and writer (app/live/hub.py): a tab that
    # stops reading (a phone asleep with the socket open) holds up nobody else, and is closed
    # with 1013 once it falls too far behind.
    connection = Connection(ws, member.id, id=g.live_socket[1])
    connection.start()
    done_serving = serving(connection)
    live().open(connection)
    db.session.remove()  # a socket must not hold a database connection while it waits
    announced = monotonic()
    try:
        while True:
            raw = ws.receive(timeout=PRESENCE_REFRESH)
            # Presence (and the count of this person's sockets) lapses unless renewed, idle
            # or busy.
            if monotonic() - announced >= PRESENCE_REFRESH:
                live().broker.watch(member.id, connection.id, connection.rooms)
                announced = monotonic()
            if raw is None:
                continue
            try:
                if not handle(connection, member, raw):
                    connection.close(CLOSE_POLICY, "Signed out")
                    return
            finally:
                db.session.remove()
    finally:
        done_serving()
        live().close(connection)
        connection.stop()
        remember_read(connection, member)


def still_signed_in(member: Member) -> bool:
    """Signing out elsewhere or a new password ends open sockets too (they are also closed
    when that commits; this covers a socket that was opening at that moment)."""
    version = db.session.scalar(select(User.session_version).where(User.id == member.id))
    return version == member.session_version


def handle(connection: Connection, member: Member, raw: str | bytes) -> bool:
    """Answer one message; False when the socket's session has ended. A post checks the
    session in the query that finds its room; anything else checks it first, and a refused
    message before its error is shown."""
    try:
        if connection.over_limit():
            raise InvalidInput({"live": "Slow down: at most 10 messages in 5 seconds."})
        data = parse(raw)
        posting = "resume" not in data and data.get("typing") is not True
        if not posting and not still_signed_in(member):
            return False
        if "resume" in data:
            resume(connection, member, data["resume"])
        elif not posting:
            typing(connection, member, room_id(data.get("room")))
        else:
            services.post(member, room_id(data.get("room")), data.get("body"))
            if connection.error_shown:
                show_error(connection, "")
    except services.SessionEnded:
        db.session.rollback()
        return False
    except DomainError as error:
        db.session.rollback()
        if not still_signed_in(member):
            return False
        show_error(connection, error.message or "That could not be done.")
    except Exception:
        db.session.rollback()
        log.exception("live: a message from user %s failed", member.id)
        show_error(connection, "Something went wrong. Reload the page and try again.")
    return True


def parse(raw: str | bytes) -> dict:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput({"live": "That message could not be read."}) from None
    if not isinstance(data, dict):
        raise InvalidInput({"live": "That message could not be read."})
    return data


def id_number(value: object, smallest: int) -> int | None:
    """A number or a string of digits (DESIGN.md: a room id may come as either); else None."""
    if isinstance(value, str):
        value = whole_number(value)
    if isinstance(value, bool) or not isinstance(value, int) or not smallest <= value < BIGGEST_ID:
        return None
    return value


def room_id(value: object) -> int:
    number = id_number(value, 1)
    if number is None:
        raise InvalidInput({"room": "Choose a chat room to write in."})
    return number


def last_id(value: object) -> int:
    number = id_number(value, 0)
    if number is None:
        raise InvalidInput({"resume": "That message could not be read."})
    return number


def resume(connection: Connection, member: Member, rooms: object) -> None:
    """Send each open room what this tab missed, in order, and remember that the tab shows
    those rooms (its member is then not notified of messages there)."""
    if not isinstance(rooms, dict) or len(rooms) > ROOMS_PER_RESUME:
        raise InvalidInput({"resume": "That message could not be read."})
    wanted = {room_id(key): last_id(value) for key, value in rooms.items()}
    members_of = {room: services.room_for(member.id, room)[1] for room in wanted}
    connection.rooms = set(wanted)
    live().broker.watch(member.id, connection.id, connection.rooms)
    for room, after in wanted.items():
        for message in services.missed(room, after):
            if message.id <= connection.queued.get(room, 0):
                continue  # it arrived live while this tab was connecting
            connection.send(
                services.message_fragment(message, message.author.display_name), room, message.id
            )
        # Older messages this tab may show as they were before an edit or a removal.
        for message in safety.changed_before(room, after):
            connection.send(safety.change_fragment(message))
        # A reconnecting tab that had read everything changes no count: nothing to send.
        if services.mark_read(member.id, room, connection.queued.get(room)):
            services.publish_seen(room, members_of[room], services.newest_message(room))


def typing(connection: Connection, member: Member, room: int) -> None:
    _, members = services.room_for(member.id, room)
    if services.muted_until(room, member.id) is not None:
        return  # a muted member cannot post: nobody is told they are writing
    html = render_fragment("chat/_typing.html", room_id=room, name=member.full_name)
    others = [user_id for user_id in members if user_id != member.id]
    live().publish(others, html)


def show_error(connection: Connection, message: str) -> None:
    connection.error_shown = bool(message)
    connection.send(render_fragment("chat/_live_error.html", message=message))


def remember_read(connection: Connection, member: Member) -> None:
    """A tab that closes has seen what it was sent in the rooms it showed."""
    try:
        for room, newest in connection.seen.items():
            if room in connection.rooms:
                services.mark_read(member.id, room, newest)
    except Exception:
        log.exception("live: read marks of user %s not saved", member.id)
    finally:
        db.session.remove()
