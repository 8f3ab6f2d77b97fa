"""Enrolment rules: capacity never exceeded, the waitlist in order, one row per student."""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass, field

from sqlalchemy import Select, bindparam, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, contains_eager

from app import fragments, search
from app.blueprints.courses.services import (
    ARCHIVED,
    Listed,
    can_see,
    changeable_course,
    enrolled_count,
    listed_with,
    lock,
    visible_course,
)
from app.blueprints.notifications.services import notify
from app.blueprints.search import services as people_search
from app.errors import InvalidInput, NotAllowed, NotFound
from app.extensions import db
from app.models import Course, Enrollment, EnrollmentStatus, Role, User
from app.web import spreadsheet_safe

ENROLLED, WAITLISTED = EnrollmentStatus.ENROLLED.value, EnrollmentStatus.WAITLISTED.value


@dataclass(frozen=True)
class Place:
    """Where a student stands in a course: "enrolled", "waitlisted" (with a position) or "none"."""

    status: str
    position: int | None = None


@dataclass(frozen=True)
class Outcome:
    place: Place
    message: str
    changed: bool


@functools.cache
def waitlist_position_column():
    """A waiting enrolment's number on its course's waitlist (None when enrolled), computed in
    the same statement as the row: read in a second statement, a promotion in between would
    leave a waiting row without a number, or a number for someone already enrolled. Built
    once (an expression is immutable): building the alias took ~2.5 ms of each enrolment and
    of each student's course page."""
    ahead = aliased(Enrollment)
    number = (
        select(func.count(ahead.id))
        .where(
            ahead.course_id == Enrollment.course_id,
            ahead.status == WAITLISTED,
            ahead.id <= Enrollment.id,
        )
        .correlate(Enrollment)
        .scalar_subquery()
    )
    return case((Enrollment.status == WAITLISTED, number), else_=None).label("position")


def place_of(student: User, course_id: int) -> Place:
    """For the course page: kept under the course's version, which every enrolment in it
    bumps (a waitlist number moves with the others' withdrawals)."""
    return fragments.kept(
        [fragments.course_scope(course_id)],
        ("place", course_id, student.id),
        lambda: _place_of(student.id, course_id),
    )


def course_page(viewer: User, course_id: int) -> tuple[Listed, Place]:
    """The course as its page shows it and, for a student, their place in it, from one
    statement: the seats left and the place always agree."""
    if not (viewer.is_authenticated and viewer.role == Role.STUDENT):
        return visible_course(viewer, course_id), Place("none")
    mine = (Enrollment.course_id == Course.id) & (Enrollment.student_id == viewer.id)
    found = listed_with(
        select(Course, Enrollment.status, waitlist_position_column())
        .outerjoin(Enrollment, mine)
        .where(Course.id == course_id)
    )
    if not found or not can_see(viewer, found[0][0].course):
        raise NotFound("There is no such course.")
    item, (status, position) = found[0]
    return item, Place(status or "none", position)


@functools.cache
def _place_statement() -> Select:
    """Built once: a course page asks it at every request, and building it (its cache key
    included) cost more than running it."""
    return select(Enrollment.status, waitlist_position_column()).where(
        Enrollment.course_id == bindparam("course_id"),
        Enrollment.student_id == bindparam("student_id"),
    )


def _place_of(student_id: int, course_id: int) -> Place:
    """The student's status and waitlist number, from one statement so that they agree."""
    row = db.session.execute(
        _place_statement(), {"course_id": course_id, "student_id": student_id}
    ).first()
    return Place("none") if row is None else Place(row.status, row.position)


def _only_students(user: User) -> None:
    if user.role != Role.STUDENT:
        raise NotAllowed("Only students enrol in courses.")


def _locked_published(course_id: int) -> Course:
    """The course, locked; a draft is as missing to a student as a course that does not exist,
    and an archived one is read-only."""
    course = lock(course_id)
    if not course.published:
        db.session.rollback()
        raise NotFound("There is no such course.")
    if course.archived_at is not None:
        db.session.rollback()
        raise NotAllowed(ARCHIVED)
    return course


def _counts(course_id: int) -> dict[str, int]:
    """Enrolled and waiting, in one query."""
    query = (
        select(Enrollment.status, func.count(Enrollment.id))
        .where(Enrollment.course_id == course_id)
        .group_by(Enrollment.status)
    )
    return {ENROLLED: 0, WAITLISTED: 0} | dict(db.session.execute(query).all())


@functools.cache
def _standing_statement() -> Select:
    """The student's status in a course (None when not on it) and the course's enrolled and
    waiting counts, in one statement: an enrolment asks it holding the course's lock."""
    mine = Enrollment.student_id == bindparam("student_id")
    return select(
        func.max(case((mine, Enrollment.status))),
        func.count().filter(Enrollment.status == ENROLLED),
        func.count().filter(Enrollment.status == WAITLISTED),
    ).where(Enrollment.course_id == bindparam("course_id"))


def _enrollment(student_id: int, course_id: int) -> Enrollment | None:
    return db.session.scalar(
        select(Enrollment).where(
            Enrollment.course_id == course_id, Enrollment.student_id == student_id
        )
    )


def enroll(student: User, course_id: int) -> Outcome:
    """Enrol, or join the waitlist when the course is full. Holding the course's lock, the
    counts cannot change between reading them and adding the student."""
    _only_students(student)
    student_id = student.id  # the lock's fresh transaction would reload the user for it
    course = _locked_published(course_id)
    title, capacity = course.title, course.capacity
    status, enrolled, waiting = db.session.execute(
        _standing_statement(), {"course_id": course_id, "student_id": student_id}
    ).one()
    if status is not None:
        place = _place_of(student_id, course_id)  # with their number on the waitlist
        db.session.rollback()
        return Outcome(place, _already(place), changed=False)
    full = capacity is not None and enrolled >= capacity
    db.session.add(
        Enrollment(
            course_id=course_id, student_id=student_id, status=WAITLISTED if full else ENROLLED
        )
    )
    search.do_not_wait()  # the user index follows shortly; nobody looks for it in this answer
    try:
        db.session.commit()
    except IntegrityError:
        # The same student's other request got there first (a double click).
        db.session.rollback()
        place = _place_of(student_id, course_id)
        return Outcome(place, _already(place), changed=False)
    if full:
        position = waiting + 1
        message = f"The course is full: you are number {position} on the waitlist."
        return Outcome(Place(WAITLISTED, position), message, changed=True)
    return Outcome(Place(ENROLLED), f"You are enrolled in {title}.", changed=True)


def _already(place: Place) -> str:
    if place.status == ENROLLED:
        return "You are already enrolled."
    return f"You are already on the waitlist, number {place.position}."


def withdraw(student: User, course_id: int) -> Outcome:
    """Leave a course or its waitlist. A freed seat goes to the first on the waitlist in the
    same transaction, and they are told."""
    _only_students(student)
    student_id = student.id
    course = _locked_published(course_id)
    enrollment = _enrollment(student_id, course_id)
    if enrollment is None:
        db.session.rollback()
        return Outcome(Place("none"), "You were not enrolled in this course.", changed=False)
    was_enrolled = enrollment.status == ENROLLED
    db.session.delete(enrollment)
    db.session.flush()
    if was_enrolled:
        fill_from_waitlist(course, enrolled_count(course_id))
        message = f"You have withdrawn from {course.title}."
    else:
        message = f"You have left the waitlist of {course.title}."
    search.do_not_wait()
    db.session.commit()
    return Outcome(Place("none"), message, changed=True)


def fill_from_waitlist(course: Course, enrolled: int) -> list[int]:
    """Promote the first on the waitlist into free seats and notify them; their ids. The
    caller holds the course's lock and commits."""
    free = None if course.capacity is None else course.capacity - enrolled
    if free is not None and free <= 0:
        return []
    query = (
        select(Enrollment)
        .where(Enrollment.course_id == course.id, Enrollment.status == WAITLISTED)
        .order_by(Enrollment.id)
    )
    if free is not None:
        query = query.limit(free)
    promoted = list(db.session.scalars(query))
    for enrollment in promoted:
        enrollment.status = ENROLLED
    notify(
        [enrollment.student_id for enrollment in promoted],
        "waitlist_promoted",
        f"A seat opened in “{course.title}”: you are now enrolled.",
        f"/courses/{course.id}",
    )
    return [enrollment.student_id for enrollment in promoted]


def participant_ids(course_id: int) -> list[int]:
    """Every student enrolled or waiting in the course."""
    return list(
        db.session.scalars(select(Enrollment.student_id).where(Enrollment.course_id == course_id))
    )


@dataclass(frozen=True)
class Roster:
    course: Course
    enrolled: list[Enrollment]
    waitlist: list[Enrollment]


def roster(user: User, course_id: int) -> Roster:
    from app.blueprints.courses.services import managed_course

    course = managed_course(user, course_id)
    query = (
        select(Enrollment)
        .join(Enrollment.student)
        .options(contains_eager(Enrollment.student))
        .where(Enrollment.course_id == course_id)
        .order_by(Enrollment.id)
    )
    rows = list(db.session.scalars(query))
    enrolled = sorted(
        (e for e in rows if e.status == ENROLLED), key=lambda e: e.student.full_name.lower()
    )
    waitlist = [e for e in rows if e.status == WAITLISTED]
    return Roster(course, enrolled, waitlist)


def roster_csv(roster: Roster) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["status", "position", "username", "full_name", "email", "since"])
    for status, rows in ((ENROLLED, roster.enrolled), (WAITLISTED, roster.waitlist)):
        for number, enrollment in enumerate(rows, start=1):
            student = enrollment.student
            position = str(number) if status == WAITLISTED else ""
            cells = [status, position, student.username, student.full_name, student.email]
            cells.append(enrollment.created_at.date().isoformat())
            writer.writerow([spreadsheet_safe(cell) for cell in cells])
    return out.getvalue()


# Adding students by name -------------------------------------------------------------------

USERNAMES_MAX = 200  # names in one go: a large class, not an import
SEPARATORS = re.compile(r"[\s,;]+")


def parse_usernames(text: str) -> list[str]:
    """Usernames separated by spaces, commas or lines, each once, lower-cased, in the order
    typed; a leading "@" is dropped ("@sam" is sam)."""
    names = (name.lstrip("@").lower() for name in SEPARATORS.split(text or ""))
    return list(dict.fromkeys(name for name in names if name))


def may_change_roster(user: User, course_id: int) -> Course:
    """The course's teacher or an admin, while it is not archived (403; a draft of someone
    else's 404) - checked before the input is read."""
    return changeable_course(user, course_id)


@dataclass
class Added:
    """What adding students did: each username with its place, and those already there."""

    enrolled: list[str] = field(default_factory=list)
    waitlisted: list[tuple[str, int]] = field(default_factory=list)  # with their number
    already: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        parts = []
        if self.enrolled:
            parts.append(f"Enrolled: {', '.join(self.enrolled)}.")
        if self.waitlisted:
            names = ", ".join(f"{name} (number {position})" for name, position in self.waitlisted)
            parts.append(f"The course is full; on the waitlist: {names}.")
        if self.already:
            parts.append(f"Already on the roster: {', '.join(self.already)}.")
        return " ".join(parts)


def add_students(teacher: User, course_id: int, text: str) -> Added:
    """Enrol students by username as if each had pressed "Enrol" (a full course puts them on
    its waitlist) and tell each of them. Any unknown name, or one that is not an active
    student's, refuses the lot (422 naming them): nobody is added."""
    course = may_change_roster(teacher, course_id)
    if not course.published:
        raise InvalidInput({"usernames": "Publish the course first: a draft has no students."})
    names = parse_usernames(text)
    if not names:
        raise InvalidInput({"usernames": "Type the usernames of the students to add."})
    if len(names) > USERNAMES_MAX:
        raise InvalidInput({"usernames": f"Add at most {USERNAMES_MAX} students at a time."})
    found = {
        u.username: u for u in db.session.scalars(select(User).where(User.username.in_(names)))
    }
    problems = _refused(names, found)
    if problems:
        raise InvalidInput({"usernames": " ".join(problems)})
    students = [(found[name].id, name) for name in names]
    by = teacher.full_name
    course = lock(course_id)
    if course.archived_at is not None:
        db.session.rollback()
        raise NotAllowed(ARCHIVED)
    title, capacity = course.title, course.capacity
    there = set(
        db.session.scalars(select(Enrollment.student_id).where(Enrollment.course_id == course_id))
    )
    counts = _counts(course_id)
    enrolled, waiting = counts[ENROLLED], counts[WAITLISTED]
    added = Added()
    link = f"/courses/{course_id}"
    for student_id, name in students:
        if student_id in there:
            added.already.append(name)
            continue
        full = capacity is not None and enrolled >= capacity
        status = WAITLISTED if full else ENROLLED
        db.session.add(Enrollment(course_id=course_id, student_id=student_id, status=status))
        if full:
            waiting += 1
            added.waitlisted.append((name, waiting))
            told = f"{by} put you on the waitlist of “{title}”: you are number {waiting}."
            notify([student_id], "waitlisted_by_teacher", told, link)
        else:
            enrolled += 1
            added.enrolled.append(name)
            notify([student_id], "enrolled_by_teacher", f"{by} enrolled you in “{title}”.", link)
    db.session.commit()
    return added


SUGGESTIONS = 8


def suggestions(teacher: User, course_id: int, typed: str) -> list[User]:
    """Students whose name or username starts like the word being typed last in the box, not
    on the roster yet and not typed already: what the people search finds, a few at most."""
    may_change_roster(teacher, course_id)
    names = parse_usernames(typed)
    if not names or SEPARATORS.fullmatch(typed[-1:]):
        return []  # nothing typed, or the last word is finished
    query = people_search.UserQuery(q=names[-1], role=Role.STUDENT.value)
    found = people_search.find_users(teacher, query, 1)
    there = set(
        db.session.scalars(select(Enrollment.student_id).where(Enrollment.course_id == course_id))
    )
    return [
        result.user
        for result in found.items
        if result.user.id not in there
        and result.user.is_active
        and result.user.username not in names[:-1]
    ][:SUGGESTIONS]


def _refused(names: list[str], found: dict[str, User]) -> list[str]:
    """What is wrong with the names typed, each named, or nothing."""
    unknown = [name for name in names if name not in found]
    others = [name for name in names if name in found and found[name].role != Role.STUDENT]
    inactive = [
        name
        for name in names
        if name in found and found[name].role == Role.STUDENT and not found[name].is_active
    ]
    problems = []
    if unknown:
        problems.append(f"No student is called {', '.join(unknown)}.")
    if others:
        problems.append(f"Not students: {', '.join(others)}.")
    if inactive:
        problems.append(f"Deactivated: {', '.join(inactive)}.")
    if problems:
        problems.append("Nobody was added.")
    return problems


# Removing a student ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OnRoster:
    """A student on a course's roster, for the page that asks to confirm their removal."""

    course: Course
    student: User
    place: Place


def on_roster(teacher: User, course_id: int, username: str) -> OnRoster:
    course = may_change_roster(teacher, course_id)
    student = _student_named(username)
    place = _place_of(student.id, course_id)
    if place.status == "none":
        raise NotFound(f"{student.username} is not on this course's roster.")
    return OnRoster(course, student, place)


def _student_named(username: str) -> User:
    student = db.session.scalar(select(User).where(User.username == username.lower()))
    if student is None:
        raise NotFound("There is no such student.")
    return student


def remove_student(teacher: User, course_id: int, username: str) -> str:
    """Take a student off the course (or its waitlist). In the same transaction, under the
    course's lock, the seat goes to the first on the waitlist. The student is told, and is out
    of the course's chat at once: a room's members are read for every message."""
    may_change_roster(teacher, course_id)
    student = _student_named(username)
    student_id, name, by = student.id, student.username, teacher.full_name
    course = lock(course_id)
    if course.archived_at is not None:
        db.session.rollback()
        raise NotAllowed(ARCHIVED)
    enrollment = _enrollment(student_id, course_id)
    if enrollment is None:
        db.session.rollback()
        raise NotFound(f"{name} is not on this course's roster.")
    was_enrolled = enrollment.status == ENROLLED
    db.session.delete(enrollment)
    db.session.flush()
    promoted = fill_from_waitlist(course, enrolled_count(course_id)) if was_enrolled else []
    where = f"“{course.title}”" if was_enrolled else f"the waitlist of “{course.title}”"
    link = f"/courses/{course_id}"
    notify([student_id], "removed_from_course", f"{by} removed you from {where}.", link)
    message = f"{name} is removed from {where}."
    if promoted:
        names = db.session.scalars(select(User.username).where(User.id.in_(promoted)))
        message += f" {', '.join(names)} had the first place on the waitlist and is now enrolled."
    db.session.commit()
    return message


@dataclass(frozen=True)
class CoursePlace:
    course_id: int
    archived: bool
    status: str
    position: int | None


def places_in_courses(student: User) -> list[CoursePlace]:
    """The student's place in each course they are enrolled in or waiting for, by title, from
    one statement: a promotion while the page loads moves a course from one list to the other
    as a whole, never half."""
    rows = db.session.execute(
        select(
            Course.id,
            Course.archived_at.is_not(None),
            Enrollment.status,
            waitlist_position_column(),
        )
        .join(Enrollment, Enrollment.course_id == Course.id)
        .where(Enrollment.student_id == student.id)
        .order_by(Course.title, Course.id)
    )
    return [CoursePlace(*row) for row in rows]
