"""Course rules: who may see and change a course, the catalogue, capacity changes."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, bindparam, func, select, text
from sqlalchemy.orm import contains_eager

from app import fragments
from app.blueprints.notifications.services import notify
from app.errors import InvalidInput, NotAllowed, NotFound
from app.extensions import db
from app.models import Course, Enrollment, EnrollmentStatus, Role, User
from app.web import page_count

PAGE_SIZE = 20


@dataclass(frozen=True)
class CourseDraft:
    """What a teacher types into the course form, already checked by the form."""

    title: str
    description: str
    keywords: list[str]
    capacity: int | None
    published: bool


@dataclass(frozen=True)
class Listed:
    """A course as a list shows it: with its teacher, how many are enrolled and its rating."""

    course: Course
    enrolled: int
    rating_average: float | None = None
    rating_count: int = 0

    @property
    def seats_left(self) -> int | None:
        return self.course.seats_left(self.enrolled)


@dataclass(frozen=True)
class Page:
    items: list[Listed]
    number: int
    total: int

    @property
    def pages(self) -> int:
        return page_count(self.total, PAGE_SIZE)


@functools.cache
def enrolled_count_column():
    """How many are enrolled in each course, computed in the same query as the list."""
    return (
        select(func.count(Enrollment.id))
        .where(Enrollment.course_id == Course.id, Enrollment.status == EnrollmentStatus.ENROLLED)
        .correlate(Course)
        .scalar_subquery()
        .label("enrolled")
    )


@functools.cache
def rating_columns():
    """Each course's average rating and number of ratings, in the same query as the list."""
    from app.models import Feedback

    def of(aggregate):
        return select(aggregate).where(Feedback.course_id == Course.id).correlate(Course)

    return (
        of(func.avg(Feedback.rating)).scalar_subquery().label("rating_average"),
        of(func.count(Feedback.id)).scalar_subquery().label("rating_count"),
    )


def listed(query: Select) -> list[Listed]:
    """Courses with their teacher, enrolment count and rating: one query, whatever the number."""
    return [item for item, _ in listed_with(query)]


def listed_with(query: Select) -> list[tuple[Listed, tuple]]:
    """`listed` for a query that selects more after the course (the viewer's place in it): each
    course with those columns, read in the same statement so that they agree with its counts."""
    return _run_listing(_with_listing(query))


def _with_listing(query: Select) -> Select:
    query = query.add_columns(enrolled_count_column(), *rating_columns()).join(Course.teacher)
    return query.options(contains_eager(Course.teacher))


def _run_listing(query: Select, parameters: dict | None = None) -> list[tuple[Listed, tuple]]:
    return [
        (
            Listed(course, enrolled, None if average is None else round(float(average), 1), count),
            tuple(extra),
        )
        for course, *extra, enrolled, average, count in db.session.execute(query, parameters)
    ]


def is_listed():
    """The catalogue's and search's condition: published and not archived."""
    return Course.published & Course.archived_at.is_(None)


@functools.cache
def _catalogue_statements() -> tuple[Select, Select]:
    """The catalogue's count and page, built once: statements are immutable, and building
    these (the subqueries, the eager join) was a fifth of the catalogue's time."""
    count = select(func.count()).select_from(Course).where(is_listed())
    page = _with_listing(
        select(Course).where(is_listed()).order_by(Course.created_at.desc(), Course.id.desc())
    )
    return count, page


def catalogue(number: int) -> Page:
    count, page = _catalogue_statements()
    total = db.session.scalar(count)
    pages = page_count(total, PAGE_SIZE)
    number = min(max(number, 1), pages)
    query = page.limit(PAGE_SIZE).offset((number - 1) * PAGE_SIZE)
    return Page([item for item, _ in _run_listing(query)], number, total)


@dataclass(frozen=True)
class TeacherShown:
    username: str
    display_name: str


@dataclass(frozen=True)
class CourseShown:
    """A course as its page shows it to everyone, apart from the session: a worker keeps it
    between requests (app/fragments.py) where a row object would expire or be changed."""

    id: int
    title: str
    description: str
    keywords: str
    published: bool
    archived_at: datetime | None
    capacity: int | None
    teacher_id: int
    teacher: TeacherShown

    is_archived = Course.is_archived
    keyword_list = Course.keyword_list
    seats_left = Course.seats_left

    @classmethod
    def of(cls, course: Course) -> CourseShown:
        teacher = TeacherShown(course.teacher.username, course.teacher.display_name)
        return cls(
            course.id,
            course.title,
            course.description,
            course.keywords,
            course.published,
            course.archived_at,
            course.capacity,
            course.teacher_id,
            teacher,
        )


def shown_course(course_id: int) -> Listed | None:
    """The course with its teacher, count and rating for its page, whoever looks; None if
    there is no such course (who may see it is the caller's check)."""
    found = listed(select(Course).where(Course.id == course_id))
    if not found:
        return None
    item = found[0]
    return Listed(
        CourseShown.of(item.course), item.enrolled, item.rating_average, item.rating_count
    )


def seen_course(user: User, course_id: int) -> Listed:
    """`visible_course` for pages that only read the course (its feedback, its materials):
    the facts every viewer's pages share, kept by the worker until the course changes
    (app/fragments.py), so nothing is queried for them when nothing changed."""
    item = fragments.kept(
        [fragments.course_scope(course_id)], ("facts", course_id), lambda: shown_course(course_id)
    )
    if item is None or not can_see(user, item.course):
        raise NotFound("There is no such course.")
    return item


def can_manage(user: User, course: Course) -> bool:
    return user.is_authenticated and (user.id == course.teacher_id or user.role == Role.ADMIN)


def can_see(user: User, course: Course) -> bool:
    """A draft is for its owner and admins only."""
    return course.published or can_manage(user, course)


def visible_course(user: User, course_id: int) -> Listed:
    """The course with its teacher and count. A draft is missing for all but its owner and
    admins (404), like a course that does not exist."""
    found = listed(select(Course).where(Course.id == course_id))
    if not found or not can_see(user, found[0].course):
        raise NotFound("There is no such course.")
    return found[0]


def managed_course(user: User, course_id: int) -> Course:
    """A course this user may change. Someone who may see it but not change it gets 403."""
    course = visible_course(user, course_id).course
    if not can_manage(user, course):
        raise NotAllowed("Only the course's teacher can change it.")
    return course


ARCHIVED = "This course is archived: it can be read but no longer changed."


def refuse_if_archived(course: Course) -> None:
    """An archived course is read-only everywhere: enrolment, files, feedback, chat (403)."""
    if course.archived_at is not None:
        raise NotAllowed(ARCHIVED)


def changeable_course(user: User, course_id: int) -> Course:
    """A course this user manages and that is not archived."""
    course = managed_course(user, course_id)
    refuse_if_archived(course)
    return course


def create(teacher: User, draft: CourseDraft) -> Course:
    if teacher.role not in (Role.TEACHER, Role.ADMIN):
        raise NotAllowed("Only teachers create courses.")
    course = Course(teacher_id=teacher.id)
    _apply(course, draft)
    db.session.add(course)
    db.session.commit()
    return course


def lock(course_id: int) -> Course:
    """Start a transaction that holds the course against concurrent enrolments and edits.

    PostgreSQL locks the course's row (SELECT … FOR UPDATE). SQLite has one writer at a time:
    BEGIN IMMEDIATE takes that lock at the start, so two transactions never both read the
    same count and then both write."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.commit()  # end any read transaction: the lock must start a fresh one
        db.session.execute(text("BEGIN IMMEDIATE"))
    elif db.session.new or db.session.dirty or db.session.deleted:
        db.session.commit()  # what the request changed before stays changed
    # PostgreSQL (read committed): the row lock is taken inside the request's transaction,
    # which has only read so far; every statement after it sees the newest committed rows.
    course = db.session.scalar(
        select(Course)
        .where(Course.id == course_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if course is None:
        db.session.rollback()
        raise NotFound("There is no such course.")
    return course


def enrolled_count(course_id: int) -> int:
    return db.session.scalar(
        select(func.count(Enrollment.id)).where(
            Enrollment.course_id == course_id, Enrollment.status == EnrollmentStatus.ENROLLED
        )
    )


def update(user: User, course_id: int, draft: CourseDraft) -> Course:
    """Change a course. Capacity never drops below those enrolled; raising it (or making it
    unlimited) fills the new seats from the waitlist. Students are told when their course is
    renamed or unpublished. An archived course is not changed."""
    changeable_course(user, course_id)
    course = lock(course_id)
    if course.archived_at is not None:
        db.session.rollback()
        raise NotAllowed(ARCHIVED)
    enrolled = enrolled_count(course_id)
    if draft.capacity is not None and draft.capacity < enrolled:
        db.session.rollback()
        raise InvalidInput(
            {"capacity": f"{enrolled} students are enrolled: the capacity cannot be lower."}
        )
    renamed = course.title != draft.title
    unpublished = course.published and not draft.published
    old_title = course.title
    _apply(course, draft)
    from app.blueprints.enrollments.services import fill_from_waitlist, participant_ids

    fill_from_waitlist(course, enrolled)
    link = f"/courses/{course.id}"
    if unpublished:
        notify(
            participant_ids(course.id),
            "course_unpublished",
            f"“{old_title}” is no longer published.",
            link,
        )
    elif renamed:
        notify(
            participant_ids(course.id),
            "course_renamed",
            f"“{old_title}” is now called “{course.title}”.",
            link,
        )
    db.session.commit()
    return course


def _apply(course: Course, draft: CourseDraft) -> None:
    course.title = draft.title
    course.description = draft.description.replace("\r\n", "\n")
    course.keywords = ", ".join(draft.keywords)
    course.capacity = draft.capacity
    course.published = draft.published


def taught_ids(user: User) -> list[tuple[int, bool]]:
    """Every course the user teaches, newest first, with whether it is archived."""
    query = select(Course.id, Course.archived_at.is_not(None)).where(Course.teacher_id == user.id)
    return [tuple(row) for row in db.session.execute(query.order_by(Course.created_at.desc()))]


def listed_by_id(course_ids: list[int]) -> dict[int, Listed]:
    """`listed` for these courses, by id (a page of search results, the dashboard's cards)."""
    if not course_ids:
        return {}
    rows = _run_listing(_by_id_statement(), {"ids": list(course_ids)})
    return {item.course.id: item for item, _ in rows}


@functools.cache
def _by_id_statement() -> Select:
    """Built once, like the catalogue's: the subqueries and the eager join cost more to
    build than the query of 20 rows costs to run."""
    return _with_listing(select(Course).where(Course.id.in_(bindparam("ids", expanding=True))))
