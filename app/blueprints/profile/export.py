"""A person's own data as one zip (DESIGN.md "Data safety"): JSON for the profile, enrolments,
feedback, their chat messages and notifications, the files they uploaded, and an index.html to
browse it offline. The rows are read first; the zip is then streamed as it is written, a file
at a time, so that a large export never sits in memory."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from markupsafe import escape
from sqlalchemy import select

from app.blueprints.materials import storage
from app.extensions import db
from app.models import (
    ChatMessage,
    ChatRoom,
    Course,
    Enrollment,
    Feedback,
    Material,
    Notification,
    User,
)

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Export:
    documents: dict[str, object]  # name (without .json) -> what it holds
    files: list[tuple[str, Path]]  # name in the zip -> stored file


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def gather(user: User) -> Export:
    """Everything about `user`, and nothing about anyone else."""
    profile = {
        "username": user.username,
        "email": user.email,
        "full_name": user.full_name,
        "bio": user.bio,
        "role": user.role,
        "member_since": _when(user.created_at),
        "last_sign_in": _when(user.last_sign_in_at),
    }
    enrolments = [
        {"course_id": course_id, "course": title, "status": status, "since": _when(since)}
        for course_id, title, status, since in db.session.execute(
            select(Course.id, Course.title, Enrollment.status, Enrollment.created_at)
            .join(Enrollment, Enrollment.course_id == Course.id)
            .where(Enrollment.student_id == user.id)
            .order_by(Enrollment.id)
        )
    ]
    feedback = [
        {
            "course_id": entry.course_id,
            "course": title,
            "rating": entry.rating,
            "comment": entry.comment,
            "written": _when(entry.created_at),
            "changed": _when(entry.updated_at),
            "teachers_reply": entry.reply,
        }
        for entry, title in db.session.execute(
            select(Feedback, Course.title)
            .join(Course, Course.id == Feedback.course_id)
            .where(Feedback.student_id == user.id)
            .order_by(Feedback.id)
        )
    ]
    # A removed message's text is still held (for admins, 30 days): it is the person's too.
    messages = [
        {
            "id": message_id,
            "room": f"course: {title}" if title else "a direct conversation",
            "sent": _when(sent),
            "text": removed_body if removed else body,
            "edited": _when(edited),
            "removed": _when(removed),
        }
        for message_id, body, sent, edited, removed, removed_body, title in db.session.execute(
            select(
                ChatMessage.id,
                ChatMessage.body,
                ChatMessage.created_at,
                ChatMessage.edited_at,
                ChatMessage.removed_at,
                ChatMessage.removed_body,
                Course.title,
            )
            .join(ChatRoom, ChatRoom.id == ChatMessage.room_id)
            .outerjoin(Course, Course.id == ChatRoom.course_id)
            .where(ChatMessage.author_id == user.id)
            .order_by(ChatMessage.id)
        )
    ]
    notifications = [
        {"text": n.text, "link": n.link, "sent": _when(n.created_at), "read": _when(n.read_at)}
        for n in db.session.scalars(
            select(Notification).where(Notification.user_id == user.id).order_by(Notification.id)
        )
    ]
    uploads = list(
        db.session.scalars(
            select(Material).where(Material.uploaded_by_id == user.id).order_by(Material.id)
        )
    )
    files = [
        (f"files/{m.id}-{m.original_name}", storage.stored_path(m.stored_name)) for m in uploads
    ]
    documents = {
        "profile": profile,
        "enrolments": enrolments,
        "feedback": feedback,
        "messages": messages,
        "notifications": notifications,
        "uploads": [
            {
                "file": name,
                "title": m.title,
                "course_id": m.course_id,
                "version": m.version,
                "uploaded": _when(m.created_at),
                "sha256": m.sha256,
            }
            for (name, _), m in zip(files, uploads, strict=True)
        ],
    }
    return Export(documents, files)


class _Pipe(io.RawIOBase):
    """What zipfile writes, kept until the response takes it."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def stream(export: Export) -> Iterator[bytes]:
    """The zip, a piece at a time: JSON compressed, files stored as they are (most are
    compressed already)."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in export.documents.items():
            archive.writestr(f"{name}.json", json.dumps(content, indent=1, ensure_ascii=False))
        archive.writestr("index.html", _index(export))
        yield pipe.take()
        for name, path in export.files:
            if not path.exists():
                continue
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            with path.open("rb") as source, archive.open(info, "w", force_zip64=True) as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)
                    yield pipe.take()
    yield pipe.take()


def _index(export: Export) -> str:
    profile = export.documents["profile"]
    sections = "".join(
        f'<li><a href="{name}.json">{name}.json</a> ({len(content)} entries)</li>'
        if isinstance(content, list)
        else f'<li><a href="{name}.json">{name}.json</a></li>'
        for name, content in export.documents.items()
    )
    files = "".join(
        f'<li><a href="{escape(name)}">{escape(name.split("/", 1)[1])}</a></li>'
        for name, _ in export.files
    )
    return (
        '<!doctype html><html lang="en"><meta charset="utf-8">'
        f"<title>Campus: the data of {escape(profile['username'])}</title>"
        f"<h1>What Campus holds about {escape(profile['full_name'])}</h1>"
        f"<p>Username {escape(profile['username'])}, email {escape(profile['email'])}.</p>"
        f"<h2>Data</h2><ul>{sections}</ul>"
        f"<h2>Files you uploaded</h2><ul>{files or '<li>None</li>'}</ul></html>"
    )
