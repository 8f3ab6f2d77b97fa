"""Feedback rules: only enrolled students rate, once each; teachers reply once; summaries."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from app import fragments
from app.blueprints.courses.services import can_manage, refuse_if_archived, seen_course
from app.blueprints.notifications.services import notify
from app.errors import NotAllowed, NotFound
from app.extensions import db
from app.models import Course, Enrollment, EnrollmentStatus, Feedback, Notification, Role, User
from app.models.user import utcnow
from app.web import page_count

PAGE_SIZE = 20
SORTS = {
    "newest": (Feedback.created_at.desc(), Feedback.id.desc()),
    "highest": (Feedback.rating.desc(), Feedback.created_at.desc(), Feedback.id.desc()),
    "lowest": (Feedback.rating.asc(), Feedback.created_at.desc(), Feedback.id.desc()),
}


@dataclass(frozen=True)
class Summary:
    """Average (one decimal), count and how many gave each number of stars."""

    count: int
    average: float | None
    distribution: dict[int, int]

    @property
    def largest(self) -> int:
        return max(self.distribution.values(), default=0)


@dataclass(frozen=True)
class Page:
    items: list[Feedback]
    number: int
    total: int
    sort: str

    @property
    def pages(self) -> int:
        return page_count(self.total, PAGE_SIZE)


def summary(course_id: int) -> Summary:
    rows = db.session.execute(
        select(Feedback.rating, func.count(Feedback.id))
        .where(Feedback.course_id == course_id)
        .group_by(Feedback.rating)
    ).all()
    distribution = dict.fromkeys(range(5, 0, -1), 0) | dict(rows)
    count = sum(distribution.values())
    total = sum(stars * n for stars, n in distribution.items())
    average = round(total / count, 1) if count else None
    return Summary(count, average, distribution)


def entries(course_id: int, number: int, sort: str) -> Page:
    sort = sort if sort in SORTS else "newest"
    total = db.session.scalar(
        select(func.count(Feedback.id)).where(Feedback.course_id == course_id)
    )
    pages = page_count(total, PAGE_SIZE)
    number = min(max(number, 1), pages)
    query = (
        select(Feedback)
        .join(Feedback.student)
        .options(contains_eager(Feedback.student))
        .where(Feedback.course_id == course_id)
        .order_by(*SORTS[sort])
        .limit(PAGE_SIZE)
        .offset((number - 1) * PAGE_SIZE)
    )
    return Page(list(db.session.scalars(query)), number, total, sort)


def readable_course(user: User, course_id: int):
    """Anyone signed in reads a published course's feedback; a draft's only its owner."""
    return seen_course(user, course_id)


@dataclass(frozen=True)
class Standing:
    """What the feedback page shows of the viewer: whether they may rate, and their own."""

    may_write: bool
    mine: Feedback | None  # a detached copy (fragments.detached_copy): read, not changed


def kept_standing(user: User, course_id: int) -> Standing:
    """The viewer's standing, kept under the versions of the course (their enrolment, the
    course archived) and of its feedback (their rating)."""
    return fragments.kept(
        [fragments.course_scope(course_id), fragments.feedback_scope(course_id)],
        ("feedback-standing", course_id, user.id),
        lambda: _standing(user, course_id),
    )


def _standing(user: User, course_id: int) -> Standing:
    own = mine(user, course_id)
    return Standing(may_write(user, course_id), own and fragments.detached_copy(own))


def kept_summary(course_id: int) -> Summary:
    return fragments.kept(
        [fragments.feedback_scope(course_id)], ("feedback-summary", course_id),
        lambda: summary(course_id),
    )  # fmt: skip


def mine(user: User, course_id: int) -> Feedback | None:
    if user.role != Role.STUDENT:
        return None
    return db.session.scalar(
        select(Feedback).where(Feedback.course_id == course_id, Feedback.student_id == user.id)
    )


def writable_course(user: User, course_id: int) -> Course:
    """The course, if this user may rate it: 404 when they cannot see it, 403 when they may
    read but not write (teachers, admins, students not enrolled)."""
    course = readable_course(user, course_id).course
    refuse_if_archived(course)
    if not may_write(user, course_id):
        raise NotAllowed("Only students enrolled in this course can rate it.")
    return course


def replyable(user: User, feedback_id: int) -> Feedback:
    """An entry this user may answer: the course's teacher or an admin."""
    feedback = db.session.get(Feedback, feedback_id)
    if feedback is None:
        raise NotFound("There is no such feedback.")
    course = readable_course(user, feedback.course_id).course
    if not can_manage(user, course):
        raise NotAllowed("Only the course's teacher can reply to its feedback.")
    refuse_if_archived(course)
    return feedback


def may_write(user: User, course_id: int) -> bool:
    """Enrolled students, only while enrolled (not waiting, not withdrawn) and while the course
    is not archived."""
    if user.role != Role.STUDENT:
        return False
    return (
        db.session.scalar(
            select(func.count(Enrollment.id))
            .join(Course, Course.id == Enrollment.course_id)
            .where(
                Course.archived_at.is_(None),
                Enrollment.course_id == course_id,
                Enrollment.student_id == user.id,
                Enrollment.status == EnrollmentStatus.ENROLLED,
            )
        )
        > 0
    )


@dataclass(frozen=True)
class Saved:
    feedback: Feedback
    created: bool

    @property
    def message(self) -> str:
        return "Thank you: your feedback is saved." if self.created else "Your feedback is updated."


def save(student: User, course_id: int, rating: int, comment: str) -> Saved:
    """Rate a course, or change one's rating: one entry per student (a unique constraint, so
    two first posts at once still leave one)."""
    course = writable_course(student, course_id)
    comment = comment.replace("\r\n", "\n").strip()
    existing = mine(student, course_id)
    if existing is None:
        feedback = Feedback(
            course_id=course_id, student_id=student.id, rating=rating, comment=comment
        )
        _tell_teacher(course)  # before the add: its query must not flush the new row early
        db.session.add(feedback)
        try:
            db.session.commit()
            return Saved(feedback, created=True)
        except IntegrityError:
            db.session.rollback()  # the same student's other request created it: update that
            existing = mine(student, course_id)
    existing.rating, existing.comment = rating, comment
    db.session.commit()
    return Saved(existing, created=False)


def _tell_teacher(course: Course) -> None:
    """One unread "new feedback" notification per course, not one per entry."""
    pending = db.session.scalar(
        select(func.count(Notification.id)).where(
            Notification.user_id == course.teacher_id,
            Notification.kind == "feedback_new",
            Notification.link == f"/courses/{course.id}/feedback",
            Notification.read_at.is_(None),
        )
    )
    if not pending:
        notify(
            [course.teacher_id],
            "feedback_new",
            f"New feedback on “{course.title}”.",
            f"/courses/{course.id}/feedback",
        )


def delete(student: User, feedback_id: int) -> int:
    """A student removes their own entry; anyone else's is as good as missing. Returns the
    course's id."""
    feedback = db.session.get(Feedback, feedback_id)
    if feedback is None or feedback.student_id != student.id:
        raise NotFound("There is no such feedback of yours.")
    course_id = feedback.course_id
    refuse_if_archived(db.session.get(Course, course_id))
    db.session.delete(feedback)
    db.session.commit()
    return course_id


def reply(user: User, feedback_id: int, body: str) -> Feedback:
    """The course's teacher (or an admin) answers an entry; a second reply replaces the first.
    The student is told."""
    feedback = replyable(user, feedback_id)
    course = db.session.get(Course, feedback.course_id)
    first = feedback.reply is None
    feedback.reply = body.replace("\r\n", "\n").strip()
    feedback.replied_by_id = user.id
    feedback.replied_at = utcnow()
    if first:
        notify(
            [feedback.student_id],
            "feedback_reply",
            f"{user.full_name} replied to your feedback on “{course.title}”.",
            f"/courses/{course.id}/feedback#feedback-{feedback.id}",
        )
    db.session.commit()
    return feedback
