"""A course's life once it exists: archiving it and back, deleting it with everything in it,
handing it to another teacher.
It sits above enrolments (the waitlist an archive closes), materials (the files a deletion
removes) and chat, beside the course rules it builds on."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, or_, select

from app import audit, fragments
from app.after_commit import pending
from app.blueprints.courses.services import lock, managed_course
from app.blueprints.materials import storage
from app.blueprints.notifications.services import notify
from app.errors import InvalidInput, NotAllowed
from app.extensions import db
from app.models import (
    ChatMessage,
    ChatRoom,
    Course,
    Enrollment,
    EnrollmentStatus,
    Feedback,
    Material,
    Notification,
    Role,
    User,
)
from app.models.user import utcnow


@dataclass(frozen=True)
class Change:
    course_id: int
    message: str


def archive(user: User, course_id: int) -> Change:
    """Make the course read-only and take it out of the catalogue and search. Its waitlist
    closes: those waiting are removed and told. Enrolled students keep what they had."""
    managed_course(user, course_id)  # 404 for a draft of someone else, 403 for a stranger
    course = lock(course_id)
    if course.archived_at is not None:
        db.session.rollback()
        return Change(course_id, "The course was already archived.")
    course.archived_at = utcnow()
    waiting = list(
        db.session.scalars(
            select(Enrollment).where(
                Enrollment.course_id == course_id,
                Enrollment.status == EnrollmentStatus.WAITLISTED,
            )
        )
    )
    for enrollment in waiting:
        db.session.delete(enrollment)
    notify(
        [enrollment.student_id for enrollment in waiting],
        "waitlist_closed",
        f"“{course.title}” is archived: its waitlist is closed, and you are no longer on it.",
        f"/courses/{course_id}",
    )
    details = f"{len(waiting)} removed from the waitlist" if waiting else ""
    audit.record(
        "course_archived", user, course_id=course_id, course_title=course.title, details=details
    )
    db.session.commit()
    return Change(course_id, "The course is archived: it is read-only and no longer listed.")


def unarchive(user: User, course_id: int) -> Change:
    """The course can be changed again and, when published, is listed again."""
    managed_course(user, course_id)
    course = lock(course_id)
    if course.archived_at is None:
        db.session.rollback()
        return Change(course_id, "The course is not archived.")
    course.archived_at = None
    audit.record("course_unarchived", user, course_id=course_id, course_title=course.title)
    db.session.commit()
    return Change(course_id, "The course is no longer archived.")


def may_delete(user: User, course: Course) -> bool:
    """Its teacher deletes a draft; an admin deletes a draft or an archived course. A course
    that is running is archived first."""
    if not user.is_authenticated:
        return False
    if user.role == Role.ADMIN:
        return not course.published or course.archived_at is not None
    return user.id == course.teacher_id and not course.published


def delete(user: User, course_id: int, confirm: str) -> str:
    """Remove the course and all that is in it: enrolments, materials with every version and
    their files, feedback, the chat room with its messages, and the notifications that point
    into it. Those enrolled or waiting are told; the deletion is audited. Returns the title.

    The database removes the rows that belong to the course (ON DELETE CASCADE) in the same
    statement as the course; the search index follows on commit; the files go after it."""
    course = managed_course(user, course_id)
    if not may_delete(user, course):
        raise NotAllowed(_why_not(user))
    if (confirm or "").strip() != course.title:
        raise InvalidInput({"confirm": "Type the course's title exactly as it is to delete it."})
    course = lock(course_id)
    if not may_delete(user, course):  # archived or published meanwhile
        db.session.rollback()
        raise NotAllowed(_why_not(user))
    title = course.title
    files = list(
        db.session.scalars(select(Material.stored_name).where(Material.course_id == course_id))
    )
    room_id = db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course_id))
    students = list(
        db.session.scalars(select(Enrollment.student_id).where(Enrollment.course_id == course_id))
    )
    counts = _contents(course_id, room_id)
    into_course = _links_into(course_id, room_id)
    unread = select(Notification.user_id).where(into_course, Notification.read_at.is_(None))
    pending(fragments.BADGES).update(db.session.scalars(unread.distinct()))  # their counts drop
    db.session.execute(
        sql_delete(Notification).where(into_course).execution_options(synchronize_session=False)
    )
    notify(students, "course_deleted", f"“{title}” has been deleted.", "/dashboard")
    audit.record(
        "course_deleted",
        user,
        course_id=course_id,
        course_title=title,
        details=", ".join(f"{n} {what}" for what, n in counts.items()),
    )
    db.session.delete(course)
    db.session.commit()
    for name in files:
        storage.stored_path(name).unlink(missing_ok=True)
    return title


def _why_not(user: User) -> str:
    if user.role == Role.ADMIN:
        return "Archive the course before deleting it."
    return "Only a draft can be deleted by its teacher; archive the course instead."


def _contents(course_id: int, room_id: int | None) -> dict[str, int]:
    """What goes with the course, counted for the audit row."""

    def count(model, *where) -> int:
        return db.session.scalar(select(func.count()).select_from(model).where(*where))

    return {
        "enrolments": count(Enrollment, Enrollment.course_id == course_id),
        "files": count(Material, Material.course_id == course_id),
        "feedback": count(Feedback, Feedback.course_id == course_id),
        "messages": count(ChatMessage, ChatMessage.room_id == room_id),
    }


def _links_into(course_id: int, room_id: int | None):
    """Notifications whose link leads into the course or its room."""
    links = [f"/courses/{course_id}"]
    if room_id is not None:
        links.append(f"/chat/{room_id}")
    return or_(
        *(
            condition
            for link in links
            for condition in (
                Notification.link == link,
                Notification.link.startswith(f"{link}/", autoescape=True),
                Notification.link.startswith(f"{link}#", autoescape=True),
                Notification.link.startswith(f"{link}?", autoescape=True),
            )
        )
    )


def transfer(admin: User, course_id: int, username: str) -> Change:
    """Hand the course to another teacher (admins only). Its room and roster follow: a course
    room's members are read from the course's teacher, so the new teacher is in and the old
    one out from the next request or message. Both are told; the change is audited."""
    if not admin.is_admin:
        raise NotAllowed("Only admins hand courses to another teacher.")
    course = managed_course(admin, course_id)
    new = db.session.scalar(select(User).where(User.username == (username or "").strip().lower()))
    if new is None or not new.is_teacher:
        raise InvalidInput({"teacher": f"No teacher is called “{(username or '').strip()}”."})
    if not new.is_active:
        raise InvalidInput({"teacher": f"{new.username} is deactivated: reactivate them first."})
    if new.id == course.teacher_id:
        raise InvalidInput({"teacher": f"{new.username} already teaches this course."})
    new_id, new_name, new_username = new.id, new.full_name, new.username
    by = admin.full_name
    course = lock(course_id)
    old = db.session.get(User, course.teacher_id)
    old_id, old_name, old_username = old.id, old.full_name, old.username
    if old_id == new_id:
        db.session.rollback()
        raise InvalidInput({"teacher": f"{new_username} already teaches this course."})
    course.teacher_id = new_id
    link = f"/courses/{course_id}"
    notify([old_id], "course_transferred", f"{by} handed “{course.title}” to {new_name}.", link)
    notify(
        [new_id],
        "course_transferred",
        f"{by} handed “{course.title}” to you; {old_name} taught it before.",
        link,
    )
    audit.record(
        "course_transferred",
        admin,
        db.session.get(User, new_id),
        course_id=course_id,
        course_title=course.title,
        details=f"{old_username} → {new_username}",
    )
    db.session.commit()
    return Change(course_id, f"The course is now taught by {new_name} ({new_username}).")
