"""Chat safeguarding (DESIGN.md "Chat safeguarding"): editing and removing messages, muting a
member of a course room, and reports to those who look after a room."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import url_for
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from app import audit
from app.blueprints.chat import services
from app.blueprints.notifications.services import notify
from app.errors import InvalidInput, NotAllowed, NotFound
from app.extensions import db
from app.forms import text_problem, whole_number
from app.live import live, render_fragment
from app.models import ChatMessage, ChatMute, ChatReport, ChatRoom, Course, Role, User
from app.models.chat import MUTE_MINUTES_MAX, REASON_MAX
from app.models.user import utcnow

EDIT_WINDOW = timedelta(minutes=15)
# How long the text of a removed message stays readable for admins (`flask chat purge`).
REMOVED_TEXT_DAYS = 30


@dataclass(frozen=True)
class Found:
    message: ChatMessage
    room: ChatRoom
    members: list[int]


def message_for(user: User, message_id: int) -> Found:
    """The message, its room and the room's members. A message in a room one is not a member
    of is as good as missing (404), except to admins, who look after every room."""
    message = db.session.get(ChatMessage, message_id)
    room = db.session.get(ChatRoom, message.room_id) if message is not None else None
    if room is None:
        raise NotFound("There is no such message.")
    members = services.member_ids(room)
    if user.id not in members and not user.is_admin:
        raise NotFound("There is no such message.")
    return Found(message, room, members)


def teacher_of(room: ChatRoom) -> int | None:
    if room.course_id is None:
        return None
    return db.session.scalar(select(Course.teacher_id).where(Course.id == room.course_id))


def moderates(user: User, room: ChatRoom) -> bool:
    """Who looks after a room: admins, and the teacher of a course room."""
    return user.is_admin or (room.course_id is not None and teacher_of(room) == user.id)


def may_edit(user_id: int, message: ChatMessage, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (
        message.author_id == user_id
        and not message.is_removed
        and now - services.as_utc(message.created_at) <= EDIT_WINDOW
    )


def editable(user: User, message_id: int) -> Found:
    """The message, if `user` may edit it now: its author, within EDIT_WINDOW (403 otherwise;
    404 to someone who cannot see it)."""
    found = message_for(user, message_id)
    message = found.message
    if message.author_id != user.id:
        raise NotAllowed("Only its author can edit a message.")
    if message.is_removed:
        raise NotAllowed("This message was removed.")
    if not may_edit(user.id, message):
        raise NotAllowed("A message can be edited for 15 minutes after it was sent.")
    services.refuse_if_archived(found.room)
    return found


def edit(user: User, message_id: int, body: object) -> ChatMessage:
    """The author changes their message within EDIT_WINDOW; every open tab shows the new text,
    marked edited."""
    found = editable(user, message_id)
    message = found.message
    text = services.clean_body(body)
    if text != message.body:
        message.body, message.edited_at = text, utcnow()
        db.session.commit()
        live().publish(found.members, render_fragment("chat/_edited.html", message=message))
    return message


def remove(user: User, message_id: int) -> ChatMessage:
    """The author, the course's teacher or an admin removes a message: every open tab shows a
    stub in its place; the text is kept for admins (reports) for REMOVED_TEXT_DAYS."""
    found = message_for(user, message_id)
    message = found.message
    if message.author_id != user.id and not moderates(user, found.room):
        raise NotAllowed("Only its author, the course's teacher or an admin can remove a message.")
    if message.is_removed:
        return message
    message.removed_body, message.body = message.body, ""
    message.removed_at, message.removed_by_id = utcnow(), user.id
    if message.author_id != user.id:
        author = db.session.get(User, message.author_id)
        audit.record(
            "message_removed",
            user,
            author,
            course_id=found.room.course_id,
            course_title=services.title_of(found.room, user.id) if found.room.course_id else "",
            details=f"message {message.id} in room {found.room.id}",
        )
    db.session.commit()
    live().publish(found.members, render_fragment("chat/_removed.html", message=message))
    return message


def changed_before(room_id: int, up_to: int) -> list[ChatMessage]:
    """Messages up to `up_to` edited or removed lately: a tab that reconnects may show them as
    they were, so they are sent again (a tab that does not show them ignores them)."""
    since = utcnow() - timedelta(days=1)
    return list(
        db.session.scalars(
            select(ChatMessage)
            .where(
                ChatMessage.room_id == room_id,
                ChatMessage.id <= up_to,
                (ChatMessage.edited_at >= since) | (ChatMessage.removed_at >= since),
            )
            .order_by(ChatMessage.id.desc())
            .limit(services.PAGE_SIZE)
        )
    )


def change_fragment(message: ChatMessage) -> str:
    template = "chat/_removed.html" if message.is_removed else "chat/_edited.html"
    return render_fragment(template, message=message)


# Muting


def moderated_room(user: User, room_id: int) -> tuple[ChatRoom, list[int]]:
    """A course room `user` looks after: members who do not get 403, others 404."""
    room = db.session.get(ChatRoom, room_id)
    if room is None:
        raise NotFound("There is no such chat room.")
    members = services.member_ids(room)
    if user.id not in members and not user.is_admin:
        raise NotFound("There is no such chat room.")
    if room.course_id is None:
        raise NotAllowed("Only course rooms have muting.")
    if not moderates(user, room):
        raise NotAllowed("Only the course's teacher or an admin can mute members.")
    return room, members


def muted_in(room_id: int) -> list[tuple[User, datetime]]:
    """Who is muted in a room now, and until when."""
    rows = db.session.execute(
        select(User, ChatMute.until)
        .join(ChatMute, ChatMute.user_id == User.id)
        .where(ChatMute.room_id == room_id, ChatMute.until > utcnow())
        .order_by(User.username)
    ).all()
    return [(user, services.as_utc(until)) for user, until in rows]


def _member_named(room: ChatRoom, members: list[int], username: object) -> User:
    name = username.strip().lower() if isinstance(username, str) else ""
    person = db.session.scalar(select(User).where(User.username == name)) if name else None
    if person is None or person.id not in members:
        raise InvalidInput({"username": "Choose a member of this room."})
    return person


def mute(actor: User, room_id: int, username: object, minutes: object) -> tuple[User, datetime]:
    room, members = moderated_room(actor, room_id)
    person = _member_named(room, members, username)
    length = whole_number(minutes.strip() if isinstance(minutes, str) else "", max_digits=6)
    if length is None or not 1 <= length <= MUTE_MINUTES_MAX:
        problem = f"Give a whole number of minutes, 1 to {MUTE_MINUTES_MAX:,}."
        raise InvalidInput({"minutes": problem})
    if person.id == actor.id or person.role != Role.STUDENT or person.id == teacher_of(room):
        raise InvalidInput({"username": "Only students can be muted."})
    until = utcnow() + timedelta(minutes=length)
    existing = db.session.get(ChatMute, (room.id, person.id))
    if existing is None:
        try:
            with db.session.begin_nested():
                db.session.add(
                    ChatMute(room_id=room.id, user_id=person.id, until=until, muted_by_id=actor.id)
                )
        except IntegrityError:  # another moderator muted them at the same moment: ours wins
            existing = db.session.get(ChatMute, (room.id, person.id))
    if existing is not None:
        existing.until, existing.muted_by_id = until, actor.id
    title = services.title_of(room, actor.id)
    audit.record(
        "muted",
        actor,
        person,
        course_id=room.course_id,
        course_title=title,
        details=f"in the chat of {title} for {length} minutes, until {until:%Y-%m-%d %H:%M} UTC",
    )
    db.session.commit()
    _tell_muted(room.id, person.id, until)
    return person, until


def unmute(actor: User, room_id: int, username: object) -> User:
    room, members = moderated_room(actor, room_id)
    person = _member_named(room, members, username)
    db.session.execute(
        delete(ChatMute).where(ChatMute.room_id == room.id, ChatMute.user_id == person.id)
    )
    title = services.title_of(room, actor.id)
    audit.record(
        "unmuted",
        actor,
        person,
        course_id=room.course_id,
        course_title=title,
        details=f"in the chat of {title}",
    )
    db.session.commit()
    _tell_muted(room.id, person.id, None)
    return person


def _tell_muted(room_id: int, user_id: int, until: datetime | None) -> None:
    """The muted person's open tabs of the room show (or drop) the notice at once."""
    html = render_fragment("chat/_mute_notice.html", room_id=room_id, until=until, oob=True)
    live().publish([user_id], html)


# Reports


def reportable(user: User, message_id: int) -> Found:
    """The message, if `user` may report it: a member of its room (404 otherwise), not its
    author, and not removed already (403)."""
    found = message_for(user, message_id)
    if user.id not in found.members:
        raise NotFound("There is no such message.")
    if found.message.author_id == user.id:
        raise NotAllowed("You cannot report your own message.")
    if found.message.is_removed:
        raise NotAllowed("This message was removed already.")
    return found


def report(user: User, message_id: int, reason: object) -> ChatReport:
    """A member reports a message: its text as it is now is kept with the report, and the
    course's teacher and the admins are notified."""
    found = reportable(user, message_id)
    message = found.message
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise InvalidInput({"reason": "Say what is wrong with this message."})
    if len(text) > REASON_MAX:
        raise InvalidInput({"reason": f"A reason can be at most {REASON_MAX} characters."})
    if problem := text_problem(text, multiline=True, where="the reason"):
        raise InvalidInput({"reason": problem})
    already = db.session.scalar(
        select(ChatReport).where(
            ChatReport.message_id == message.id,
            ChatReport.reporter_id == user.id,
            ChatReport.resolved_at.is_(None),
        )
    )
    if already is not None:  # a second report of the same message: the newer reason, no news
        already.reason = text
        db.session.commit()
        return already
    filed = ChatReport(
        message_id=message.id,
        room_id=found.room.id,
        reporter_id=user.id,
        body=message.body,
        reason=text,
    )
    db.session.add(filed)
    told = set(
        db.session.scalars(
            select(User.id).where(User.role == Role.ADMIN, User.deactivated_at.is_(None))
        )
    )
    if (teacher := teacher_of(found.room)) is not None:
        told.add(teacher)
    told.discard(user.id)
    where = (
        f"the chat of {services.title_of(found.room, user.id)}"
        if found.room.course_id is not None
        else "a direct conversation"
    )
    notify(
        sorted(told),
        "chat_report",
        f"{user.full_name} reported a message in {where}.",
        url_for("admin.reports"),
    )
    db.session.commit()
    return filed


@dataclass(frozen=True)
class ReportRow:
    report: ChatReport
    author: User
    reporter_name: str
    room_title: str
    course_id: int | None
    removed: bool
    kept_text: str | None  # the message's text now: edited since, or kept after removal


def reports_for(user: User) -> list[ReportRow]:
    """Open reports, oldest first: all of them for admins, those in their courses' rooms for
    teachers; everyone else may not see any."""
    if not user.is_teacher:
        raise NotAllowed("Reports are for teachers and admins.")
    reporter = aliased(User)
    query = (
        select(ChatReport, ChatMessage, User, reporter.full_name, Course)
        .join(ChatMessage, ChatMessage.id == ChatReport.message_id)
        .join(User, User.id == ChatMessage.author_id)
        .join(ChatRoom, ChatRoom.id == ChatReport.room_id)
        .outerjoin(Course, Course.id == ChatRoom.course_id)
        .outerjoin(reporter, reporter.id == ChatReport.reporter_id)
        .where(ChatReport.resolved_at.is_(None))
        .order_by(ChatReport.id)
    )
    if not user.is_admin:
        query = query.where(Course.teacher_id == user.id)
    rows = []
    for filed, message, author, reporter_name, course in db.session.execute(query):
        now = message.removed_body if message.is_removed else message.body
        rows.append(
            ReportRow(
                filed,
                author,
                reporter_name or "Former member",
                course.title if course is not None else "Direct conversation",
                course.id if course is not None else None,
                message.is_removed,
                now if now != filed.body else None,
            )
        )
    return rows


def resolve(user: User, report_id: int) -> ChatReport:
    filed = db.session.get(ChatReport, report_id)
    if filed is None:
        raise NotFound("There is no such report.")
    room = db.session.get(ChatRoom, filed.room_id)
    if not moderates(user, room):
        if user.is_teacher:
            raise NotFound("There is no such report.")
        raise NotAllowed("Reports are for teachers and admins.")
    if filed.resolved_at is None:
        filed.resolved_at, filed.resolved_by_id = utcnow(), user.id
        db.session.commit()
    return filed


def purge(now: datetime | None = None) -> int:
    """Erase the kept text of messages removed more than REMOVED_TEXT_DAYS ago, and the copy
    in their resolved reports; the number of messages erased."""
    before = (now or utcnow()) - timedelta(days=REMOVED_TEXT_DAYS)
    old = select(ChatMessage.id).where(
        ChatMessage.removed_at < before, ChatMessage.removed_body.is_not(None)
    )
    old_ids = list(db.session.scalars(old))
    if old_ids:
        db.session.execute(
            update(ChatReport)
            .where(ChatReport.message_id.in_(old_ids), ChatReport.resolved_at.is_not(None))
            .values(body="")
        )
        db.session.execute(
            update(ChatMessage).where(ChatMessage.id.in_(old_ids)).values(removed_body=None)
        )
    db.session.commit()
    return len(old_ids)


def students_in(members: list[int]) -> list[User]:
    """The room's students: whom its teacher may mute."""
    return list(
        db.session.scalars(
            select(User)
            .where(User.id.in_(members), User.role == Role.STUDENT)
            .order_by(User.full_name, User.username)
        )
    )


@dataclass(frozen=True)
class Viewer:
    """Who looks at a room page, for the actions beside each message."""

    id: int
    moderates: bool
    now: datetime

    def may_edit(self, message: ChatMessage) -> bool:
        return may_edit(self.id, message, self.now)


# The message the room page's actions template is rendered for: campus.js puts the id of each
# message that arrives live in place of its 0.
ACTION_STUB = ChatMessage(id=0, author_id=0, body="", created_at=datetime(2000, 1, 1))


def viewer_of(user: User, room: ChatRoom) -> Viewer:
    return Viewer(user.id, moderates(user, room), utcnow())


@dataclass(frozen=True)
class RemovedRow:
    message: ChatMessage
    author: User
    room_title: str


def recently_removed(user: User, limit: int = 50) -> list[RemovedRow]:
    """For admins: messages removed in the last REMOVED_TEXT_DAYS whose text is still kept,
    newest removal first."""
    if not user.is_admin:
        return []
    query = (
        select(ChatMessage, User, func.coalesce(Course.title, ""))
        .join(User, User.id == ChatMessage.author_id)
        .join(ChatRoom, ChatRoom.id == ChatMessage.room_id)
        .outerjoin(Course, Course.id == ChatRoom.course_id)
        .where(ChatMessage.removed_body.is_not(None))
        .order_by(ChatMessage.removed_at.desc())
        .limit(limit)
    )
    return [
        RemovedRow(message, author, title or "Direct conversation")
        for message, author, title in db.session.execute(query)
    ]
