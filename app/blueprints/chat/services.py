"""Chat rules: who is in a room, storing a message before anyone sees it, what is unread, and
who is told about a message they were not there to see."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import current_app, url_for
from sqlalchemy import (
    ARRAY,
    Integer,
    Select,
    String,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    union,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, contains_eager

from app.blueprints.notifications.services import notify
from app.database import statements_alone
from app.errors import InvalidInput, NotAllowed, NotFound, Throttled
from app.extensions import db
from app.forms import text_problem
from app.live import live, render_fragment
from app.models import (
    ChatMessage,
    ChatMute,
    ChatRead,
    ChatRoom,
    Course,
    Enrollment,
    EnrollmentStatus,
    Notification,
    User,
)
from app.models.chat import BODY_MAX
from app.models.user import utcnow
from app.web import count_attempt, seconds_until_allowed

PAGE_SIZE = 50
# A tab that comes back after a long time gets at most this many messages a room; the page
# itself shows the rest.
RESUME_MAX = 500


@dataclass(frozen=True)
class Member:
    """Who a socket belongs to, kept as plain values: a socket outlives many transactions."""

    id: int
    username: str
    full_name: str
    session_version: int
    # The account's id and creation time: limits counted for it never pass to a later
    # account that reuses the id.
    account_key: str = ""


@dataclass(frozen=True)
class RoomSummary:
    room: ChatRoom
    title: str
    unread: int
    last: ChatMessage | None


@dataclass(frozen=True)
class History:
    messages: list[ChatMessage]
    older: int | None  # the id to ask `before=` for, when there are older messages


def member_ids(room: ChatRoom) -> list[int]:
    """A course room: its teacher and enrolled students, as of now. A direct room: its two."""
    if room.course_id is None:
        return [room.user_a_id, room.user_b_id]
    query = union(
        select(Course.teacher_id).where(Course.id == room.course_id),
        select(Enrollment.student_id).where(
            Enrollment.course_id == room.course_id,
            Enrollment.status == EnrollmentStatus.ENROLLED.value,
        ),
    )
    return list(db.session.scalars(query))


def room_for(user_id: int, room_id: int) -> tuple[ChatRoom, list[int]]:
    """The room and its members, if `user_id` is one; a room one is not in is as good as missing
    (DESIGN.md: 404 for everyone but its members)."""
    room = db.session.get(ChatRoom, room_id)
    if room is None:
        raise NotFound("There is no such chat room.")
    members = member_ids(room)
    if user_id not in members:
        raise NotFound("There is no such chat room.")
    return room, members


def archived(room: ChatRoom) -> bool:
    """A course room whose course is archived: its history stays, nobody posts."""
    if room.course_id is None:
        return False
    since = db.session.scalar(select(Course.archived_at).where(Course.id == room.course_id))
    return since is not None


ARCHIVED = "This course is archived: its chat can be read, not written in."


def refuse_if_archived(room: ChatRoom) -> None:
    if archived(room):
        raise NotAllowed(ARCHIVED)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back times without their zone; every time stored here is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def muted_until(room_id: int, user_id: int) -> datetime | None:
    """Until when `user_id` may read but not post in the room (DESIGN.md "Chat
    safeguarding"), or None."""
    until = db.session.scalar(
        select(ChatMute.until).where(ChatMute.room_id == room_id, ChatMute.user_id == user_id)
    )
    if until is None or as_utc(until) <= utcnow():
        return None
    return as_utc(until)


class SessionEnded(NotAllowed):
    """The poster's session ended (signed out elsewhere, a new password) after their socket
    or page was opened."""

    def __init__(self) -> None:
        super().__init__("You have been signed out: sign in again to write.")


@functools.cache
def _post_statement() -> Select:
    """`room_to_post_in`'s query, built once (a message's path is short: building the statement
    and its cache key each time cost as much as its round trip)."""
    user_id = bindparam("user_id")
    enrolled = (
        select(func.aggregate_strings(cast(Enrollment.student_id, String), ","))
        .where(
            Enrollment.course_id == ChatRoom.course_id,
            Enrollment.status == EnrollmentStatus.ENROLLED.value,
        )
        .correlate(ChatRoom)
        .scalar_subquery()
    )
    version = select(User.session_version).where(User.id == user_id).scalar_subquery()
    return (
        select(ChatRoom, Course.archived_at, Course.teacher_id, ChatMute.until, enrolled, version)
        .outerjoin(Course, Course.id == ChatRoom.course_id)
        .outerjoin(ChatMute, and_(ChatMute.room_id == ChatRoom.id, ChatMute.user_id == user_id))
        .where(ChatRoom.id == bindparam("room_id"))
    )


def room_to_post_in(
    user_id: int, room_id: int, session_version: int | None = None
) -> tuple[ChatRoom, list[int]]:
    """`room_for`, refusing an archived course's room and a muted member (403) and, given
    the version the poster signed in with, a session that has ended since (SessionEnded).
    One query, as every message goes through here: the room, its course's archive time and
    teacher, the poster's mute, the enrolled students' ids as one string, and the poster's
    session version."""
    found = db.session.execute(_post_statement(), {"room_id": room_id, "user_id": user_id}).first()
    if found is None:
        raise NotFound("There is no such chat room.")
    room, archived_at, teacher_id, muted, enrolled_ids, signed_in_as = found
    if session_version is not None and signed_in_as != session_version:
        raise SessionEnded()
    if room.course_id is None:
        members = [room.user_a_id, room.user_b_id]
    else:
        students = [int(part) for part in enrolled_ids.split(",")] if enrolled_ids else []
        members = list(dict.fromkeys([teacher_id, *students]))
    if user_id not in members:
        raise NotFound("There is no such chat room.")
    if archived_at is not None:
        raise NotAllowed(ARCHIVED)
    if muted is not None and as_utc(muted) > utcnow():
        until = as_utc(muted)
        raise NotAllowed(f"You are muted in this room until {until:%-d %b %Y, %H:%M} UTC.")
    return room, members


def course_room_id(course_id: int) -> int | None:
    return db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course_id))


def title_of(room: ChatRoom, viewer_id: int) -> str:
    if room.course_id is not None:
        return db.session.scalar(select(Course.title).where(Course.id == room.course_id))
    other = room.user_b_id if room.user_a_id == viewer_id else room.user_a_id
    return db.session.get(User, other).display_name


def rooms_of(user: User) -> list[RoomSummary]:
    """Every room of mine, the most recently active first, with unread counts and the last
    message, in a fixed number of queries. Each room comes with its title, newest message id
    and unread count in one statement: a course or person removed meanwhile takes their room
    out of the list whole, and the count agrees with the last line."""
    mine = or_(
        ChatRoom.course_id.in_(select(Course.id).where(Course.teacher_id == user.id)),
        ChatRoom.course_id.in_(
            select(Enrollment.course_id).where(
                Enrollment.student_id == user.id,
                Enrollment.status == EnrollmentStatus.ENROLLED.value,
            )
        ),
        ChatRoom.user_a_id == user.id,
        ChatRoom.user_b_id == user.id,
    )
    other = aliased(User)
    other_id = case((ChatRoom.user_a_id == user.id, ChatRoom.user_b_id), else_=ChatRoom.user_a_id)
    newest = (
        select(func.max(ChatMessage.id))
        .where(ChatMessage.room_id == ChatRoom.id)
        .correlate(ChatRoom)
        .scalar_subquery()
    )
    read_up_to = (
        select(ChatRead.last_read_id)
        .where(ChatRead.room_id == ChatRoom.id, ChatRead.user_id == user.id)
        .correlate(ChatRoom)
        .scalar_subquery()
    )
    unread = (
        select(func.count(ChatMessage.id))
        .where(
            ChatMessage.room_id == ChatRoom.id,
            ChatMessage.author_id != user.id,
            ChatMessage.id > func.coalesce(read_up_to, 0),
        )
        .correlate(ChatRoom)
        .scalar_subquery()
    )
    query = (
        select(ChatRoom, func.coalesce(Course.title, other.full_name))
        .add_columns(newest, unread, other.deactivated_at)
        .outerjoin(Course, Course.id == ChatRoom.course_id)
        .outerjoin(other, and_(ChatRoom.course_id.is_(None), other.id == other_id))
        .where(mine)
    )
    rows = db.session.execute(query).all()
    last_ids = [row[2] for row in rows if row[2] is not None]
    lasts = {
        message.room_id: message
        for message in db.session.scalars(
            select(ChatMessage)
            .join(ChatMessage.author)
            .options(contains_eager(ChatMessage.author))
            .where(ChatMessage.id.in_(last_ids))
        )
    }
    rows.sort(key=lambda row: (row[2] or 0, row[0].id), reverse=True)
    return [
        RoomSummary(
            room,
            f"{title} (deactivated)" if gone_since else title or "",
            unread_count,
            lasts.get(room.id),
        )
        for room, title, _, unread_count, gone_since in rows
    ]


def history(room: ChatRoom, before: int | None = None) -> History:
    """The newest PAGE_SIZE messages (before `before`), oldest first."""
    query = (
        select(ChatMessage)
        .join(ChatMessage.author)
        .options(contains_eager(ChatMessage.author))
        .where(ChatMessage.room_id == room.id)
        .order_by(ChatMessage.id.desc())
        .limit(PAGE_SIZE + 1)
    )
    if before is not None:
        query = query.where(ChatMessage.id < before)
    newest_first = list(db.session.scalars(query))
    older = newest_first[PAGE_SIZE - 1].id if len(newest_first) > PAGE_SIZE else None
    return History(newest_first[:PAGE_SIZE][::-1], older)


def missed(room_id: int, after_id: int) -> list[ChatMessage]:
    """What a tab that last saw `after_id` has not seen, oldest first."""
    return list(
        db.session.scalars(
            select(ChatMessage)
            .join(ChatMessage.author)
            .options(contains_eager(ChatMessage.author))
            .where(ChatMessage.room_id == room_id, ChatMessage.id > after_id)
            .order_by(ChatMessage.id)
            .limit(RESUME_MAX)
        )
    )


def clean_body(body: object) -> str:
    if not isinstance(body, str):
        raise InvalidInput({"body": "Write a message."})
    body = body.strip()
    if not body:
        raise InvalidInput({"body": "Write a message."})
    if len(body) > BODY_MAX:
        raise InvalidInput({"body": f"A message can be at most {BODY_MAX:,} characters."})
    problem = text_problem(body, multiline=True, where="the message")
    if problem:
        raise InvalidInput({"body": problem})
    return body


def post(author: Member, room_id: int, body: object) -> ChatMessage:
    """Store the message, then send it to every member's open tabs, then notify the members who
    do not have the room open (once per room until they read it). What was shown was saved."""
    text = clean_body(body)
    # Two statements, the room's query and the insert, with nothing between them to undo: on
    # PostgreSQL without BEGIN and COMMIT, two round trips instead of four (app/database.py).
    with statements_alone(db.session()):
        room, members = room_to_post_in(author.id, room_id, author.session_version)
        limit, who = current_app.config["CHAT_POST_LIMIT"], author.account_key or str(author.id)
        if not count_attempt(limit, "chat-post", who):
            raise Throttled(
                "Slow down: at most 10 messages in 5 seconds.",
                seconds_until_allowed(limit, "chat-post", who),
            )
        message = ChatMessage(room_id=room.id, author_id=author.id, body=text)
        db.session.add(message)
        db.session.flush()  # its id and time: the fragment is made before the commit expires them
        others = [member for member in members if member != author.id]
        # Who has the room open sees the message now: "seen by" travels with it.
        watching = live().broker.watchers(room.id, others)
        html = message_fragment(message, author.full_name, seen=len(watching))
        message_id = message.id
        db.session.commit()
    live().publish(members, html, room=room_id, message_id=message_id)
    away = set(others) - watching
    if away:
        notify_away(room_id, room, author, sorted(away))
    return message


def seen_by(room_id: int, members: list[int], newest: ChatMessage, watching: set[int]) -> int:
    """How many members other than its author have seen the newest message: those whose read
    mark reaches it, and those who have the room open now."""
    marked = db.session.scalars(
        select(ChatRead.user_id).where(
            ChatRead.room_id == room_id,
            ChatRead.last_read_id >= newest.id,
            ChatRead.user_id.in_(members),
        )
    )
    return len((set(marked) | watching) - {newest.author_id})


def newest_message(room_id: int) -> ChatMessage | None:
    return db.session.scalar(
        select(ChatMessage).where(ChatMessage.room_id == room_id).order_by(ChatMessage.id.desc())
    )


def publish_seen(
    room_id: int, members: list[int], newest: ChatMessage | None, watching: set[int] | None = None
) -> None:
    """Tell the room's open tabs how many have seen its newest message ("Seen by 3")."""
    if newest is None:
        return
    if watching is None:
        watching = live().broker.watchers(room_id, members)
    count = seen_by(room_id, members, newest, watching)
    live().publish(
        members, render_fragment("chat/_seen.html", room_id=room_id, count=count, oob=True)
    )


def open_room(user_id: int, room: ChatRoom, members: list[int]) -> None:
    """A member opened the room: it is read up to its newest message, and the others' tabs
    show the new "seen by" count."""
    newest = newest_message(room.id)
    if mark_read(user_id, room.id, newest.id if newest else 0):
        publish_seen(room.id, members, newest)  # only when the count may have grown


def seen_of(room_id: int, members: list[int], history: History) -> int:
    if not history.messages:
        return 0
    watching = live().broker.watchers(room_id, members)
    return seen_by(room_id, members, history.messages[-1], watching)


def message_fragment(message: ChatMessage, author_name: str, seen: int | None = None) -> str:
    """The new message appended to the room's list wherever that list is on screen, with the
    room list's last line and, for a new message, its "seen by" count."""
    return render_fragment(
        "chat/_live_message.html", message=message, author_name=author_name, seen=seen
    )


@functools.cache
def _unread_notice_statement(dialect: str) -> Select:
    """Which of `ids` have an unread notice with `link`. Asked after every message with the
    room's members, so built once: on PostgreSQL the ids are one array parameter, and the
    statement's text is the same for every room size (an `IN` of 199 parameters is compiled
    and parsed anew each time, a third of a message's time)."""
    if dialect == "postgresql":
        among = Notification.user_id == any_(bindparam("ids", type_=ARRAY(Integer)))
    else:
        among = Notification.user_id.in_(bindparam("ids", expanding=True))
    return select(Notification.user_id).where(
        among, Notification.link == bindparam("link"), Notification.read_at.is_(None)
    )


def notify_away(room_id: int, room: ChatRoom, author: Member, user_ids: list[int]) -> None:
    """Notify those of `user_ids` who have no unread notice of the room yet. The room's id is
    given apart: after the message's commit, reading `room.id` would read the room again
    (the room is read only when someone is notified)."""
    link = url_for("chat.room", room_id=room_id)
    statement = _unread_notice_statement(db.session.get_bind().dialect.name)
    already = set(db.session.scalars(statement, {"ids": user_ids, "link": link}))
    fresh = [user_id for user_id in user_ids if user_id not in already]
    if not fresh:
        return
    where = (
        "a direct message" if room.course_id is None else f"the chat of {title_of(room, author.id)}"
    )
    notify(fresh, "chat", f"{author.full_name} wrote in {where}.", link)
    db.session.commit()


def mark_read(user_id: int, room_id: int, up_to: int | None = None) -> bool:
    """Everything up to `up_to` (default: the newest message) has been seen by `user_id`.
    True when that moved the mark."""
    if up_to is None:
        up_to = db.session.scalar(
            select(func.coalesce(func.max(ChatMessage.id), 0)).where(ChatMessage.room_id == room_id)
        )
    changed = _move_mark(user_id, room_id, up_to)
    if not changed and db.session.get(ChatRead, (room_id, user_id)) is None:
        changed = 1
        try:
            with db.session.begin_nested():
                db.session.add(ChatRead(room_id=room_id, user_id=user_id, last_read_id=up_to))
        except IntegrityError:
            # Another tab wrote the first mark meanwhile: keep whichever is newer.
            changed = _move_mark(user_id, room_id, up_to)
    db.session.commit()
    return bool(changed)


def _move_mark(user_id: int, room_id: int, up_to: int) -> int:
    """Raise an existing read mark to `up_to` (never lower it); the number of rows moved."""
    return db.session.execute(
        update(ChatRead)
        .where(
            ChatRead.room_id == room_id,
            ChatRead.user_id == user_id,
            ChatRead.last_read_id < up_to,
        )
        .values(last_read_id=up_to)
    ).rowcount


def direct_room(user: User, username: str) -> ChatRoom:
    """The one room between two people, opened the first time either asks."""
    other = db.session.scalar(
        select(User).where(User.username == username.lower(), User.erased_at.is_(None))
    )
    if other is None:
        raise NotFound("There is no such person.")
    if other.id == user.id:
        raise InvalidInput({"username": "You cannot open a conversation with yourself."})
    a, b = sorted((user.id, other.id))
    pair = and_(ChatRoom.user_a_id == a, ChatRoom.user_b_id == b)
    room = db.session.scalar(select(ChatRoom).where(pair))
    if room is not None:
        return room
    try:
        with db.session.begin_nested():
            room = ChatRoom(user_a_id=a, user_b_id=b)
            db.session.add(room)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # both opened it at once: use the one that won
        room = db.session.scalar(select(ChatRoom).where(pair))
    return room
