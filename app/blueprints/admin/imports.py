"""Bulk accounts from a class list (CSV): a preview that stores nothing, then a confirm that
stores everything or nothing. Every line is checked with the same rules as registration;
students may be enrolled in courses by id, capacity holding (a full course waitlists them)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import secrets
from collections import Counter
from dataclasses import dataclass, field, replace

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select, text
from werkzeug.datastructures import MultiDict
from wtforms import StringField
from wtforms.validators import DataRequired, Email, Length, Regexp

from app import audit, search
from app.blueprints.auth import links
from app.blueprints.auth.forms import USERNAME_PATTERN, lower, strip
from app.errors import InvalidInput
from app.extensions import db
from app.forms import BaseForm
from app.mail import absolute_url
from app.models import Course, Enrollment, EnrollmentStatus, Role, User
from app.web import FORMULA_STARTS

MAX_BYTES = 2 * 1024 * 1024
MAX_ROWS = 5000
REQUIRED = ("username", "full_name", "email", "role")
OPTIONAL = ("courses",)
IMPORT_ROLES = (Role.STUDENT.value, Role.TEACHER.value)
LINKS_SALT = "campus.import-links"
ENROLLED, WAITLISTED = EnrollmentStatus.ENROLLED.value, EnrollmentStatus.WAITLISTED.value


class LineForm(BaseForm):
    """One line, checked as registration checks a person (control characters included)."""

    class Meta:
        csrf = False

    username = StringField(
        filters=[lower],
        validators=[
            DataRequired("no username"),
            Length(3, 32, "a username has 3 to 32 characters"),
            Regexp(USERNAME_PATTERN, message="a username uses only a–z, 0–9 and _ . -"),
        ],
    )
    full_name = StringField(
        filters=[strip],
        validators=[
            DataRequired("no name"),
            Length(max=100, message="a name has at most 100 characters"),
        ],
    )
    email = StringField(
        filters=[lower],
        validators=[
            DataRequired("no email"),
            Length(max=254, message="an email has at most 254 characters"),
            Email("not a valid email address", check_deliverability=False),
        ],
    )


@dataclass
class Line:
    number: int  # in the file, the header being line 1
    username: str
    full_name: str
    email: str
    role: str
    course_ids: list[int]
    outcome: str = ""  # create, update, unchanged, error
    errors: list[str] = field(default_factory=list)
    enrol: list[int] = field(default_factory=list)  # courses to enrol in (new to this person)
    waitlisted: list[int] = field(default_factory=list)  # of those, the ones that are full

    @property
    def reason(self) -> str:
        return "; ".join(self.errors)


@dataclass
class Preview:
    lines: list[Line]
    courses: dict[int, str]
    content: str
    token: str

    @property
    def errors(self) -> int:
        return sum(1 for line in self.lines if line.outcome == "error")

    def count(self, outcome: str) -> int:
        return sum(1 for line in self.lines if line.outcome == outcome)


@dataclass(frozen=True)
class Result:
    created: list[User]
    updated: int
    unchanged: int
    enrolled: int
    waitlisted: int
    mailed: frozenset[int] = frozenset()  # new accounts whose link went by mail


def refuse(message: str) -> InvalidInput:
    return InvalidInput({"file": message})


def read(raw: bytes) -> str:
    """The file's text: UTF-8 (a BOM is fine), at most 2 MB."""
    if len(raw) > MAX_BYTES:
        raise refuse("The file is larger than 2 MB. Split the class list in two.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise refuse("The file is not UTF-8 text. Save it as “CSV UTF-8” and try again.") from None


def parse(content: str) -> list[Line]:
    """Lines of the file, with what is wrong in each line's own cells (nothing looked up)."""
    first = content.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    rows = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    try:
        header = [cell.strip().lower() for cell in next(rows)]
    except StopIteration:
        raise refuse("The file is empty.") from None
    except csv.Error:
        raise refuse("Line 1: the header cannot be read as CSV.") from None
    missing = [name for name in REQUIRED if name not in header]
    unknown = [name for name in header if name not in REQUIRED + OPTIONAL]
    if missing or unknown or len(set(header)) != len(header):
        raise refuse(
            "Line 1: the header must name username, full_name, email and role, and may name "
            f"courses{'; missing: ' + ', '.join(missing) if missing else ''}"
            f"{'; not known: ' + ', '.join(unknown) if unknown else ''}."
        )
    lines = []
    try:
        for number, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue  # a blank line, as spreadsheets leave at the end
            if len(lines) == MAX_ROWS:
                raise refuse(f"The file has more than {MAX_ROWS:,} lines. Split it.")
            lines.append(_line(number, header, row))
    except csv.Error:
        raise refuse(f"Line {rows.line_num}: it cannot be read as CSV.") from None
    if not lines:
        raise refuse("The file has a header but no lines.")
    return lines


def _line(number: int, header: list[str], row: list[str]) -> Line:
    cells = dict(zip(header, row, strict=False))
    form = LineForm(formdata=MultiDict({name: cells.get(name, "") for name in REQUIRED}))
    form.validate()
    errors = [message for field_ in form for message in field_.errors]
    if any(str(cells.get(name, "")).strip().startswith(FORMULA_STARTS) for name in cells):
        errors.append("a cell starts like a spreadsheet formula (= + - @)")
    if len(row) > len(header):
        errors.append(f"{len(row)} cells where the header has {len(header)}")
    role = cells.get("role", "").strip().lower()
    if role not in IMPORT_ROLES:
        errors.append("role must be student or teacher (make admins on their account page)")
    course_ids: list[int] = []
    for word in cells.get("courses", "").replace(",", " ").split():
        if word.isascii() and word.isdigit() and len(word) <= 9:
            course_ids.append(int(word))
        else:
            errors.append(f"“{word[:20]}” is not a course id")
    if course_ids and role == Role.TEACHER:
        errors.append("only students are enrolled in courses")
    return Line(
        number,
        form.username.data or "",
        form.full_name.data or "",
        form.email.data or "",
        role,
        list(dict.fromkeys(course_ids)),
        errors=errors,
    )


def check(lines: list[Line]) -> dict[int, str]:
    """Decide each line's outcome against the database and the rest of the file; returns the
    courses named, by id, with their titles."""
    usernames = Counter(line.username for line in lines)
    emails = Counter(line.email for line in lines)
    existing = {
        user.username: user
        for user in db.session.scalars(
            select(User).where(User.username.in_([line.username for line in lines]))
        )
    }
    email_owner = dict(
        db.session.execute(
            select(User.email, User.username).where(User.email.in_([line.email for line in lines]))
        ).all()
    )
    wanted = sorted({course_id for line in lines for course_id in line.course_ids})
    courses = {
        course.id: course
        for course in db.session.scalars(select(Course).where(Course.id.in_(wanted)))
    }
    enrolled = dict(
        db.session.execute(
            select(Enrollment.course_id, func.count(Enrollment.id))
            .where(Enrollment.course_id.in_(wanted), Enrollment.status == ENROLLED)
            .group_by(Enrollment.course_id)
        ).all()
    )
    places = set(
        db.session.execute(
            select(Enrollment.student_id, Enrollment.course_id).where(
                Enrollment.student_id.in_([user.id for user in existing.values()])
            )
        ).tuples()
    )
    for line in lines:
        if line.username and usernames[line.username] > 1:
            line.errors.append("the username is in the file more than once")
        if line.email and emails[line.email] > 1:
            line.errors.append("the email is in the file more than once")
        owner = email_owner.get(line.email)
        if owner is not None and owner != line.username:
            line.errors.append("the email belongs to another account")
        user = existing.get(line.username)
        if user is not None and user.role != line.role and line.role in IMPORT_ROLES:
            line.errors.append(f"the account is a {user.role}: change roles on its account page")
        for course_id in line.course_ids:
            course = courses.get(course_id)
            if course is None or not course.published:
                line.errors.append(f"there is no published course {course_id}")
            elif course.archived_at is not None:
                line.errors.append(f"course {course_id} is archived")
            elif user is None or (user.id, course_id) not in places:
                line.enrol.append(course_id)
        if line.errors:
            line.outcome = "error"
            continue
        for course_id in line.enrol:  # in file order: the first lines get the seats
            capacity = courses[course_id].capacity
            if capacity is not None and enrolled.get(course_id, 0) >= capacity:
                line.waitlisted.append(course_id)
            else:
                enrolled[course_id] = enrolled.get(course_id, 0) + 1
        if user is None:
            line.outcome = "create"
        elif user.full_name != line.full_name or user.email != line.email or line.enrol:
            line.outcome = "update"
        else:
            line.outcome = "unchanged"
    return {course_id: course.title for course_id, course in courses.items()}


def links_token(users: list[User]) -> str:
    """The new accounts of an import, signed, for downloading their links again as CSV."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=LINKS_SALT).dumps(
        [user.id for user in users]
    )


def accounts_of(token: str) -> list[User]:
    """The accounts named by `links_token` (for a day), that still have no password."""
    serializer = URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=LINKS_SALT)
    try:
        ids = serializer.loads(token, max_age=24 * 3600)
    except BadSignature:
        raise refuse("Those links are from another import or too old: make new ones.") from None
    users = db.session.scalars(select(User).where(User.id.in_(ids)).order_by(User.full_name))
    return [user for user in users if user.password_hash.startswith("!") and user.is_active]


def same_lines(content: str) -> str:
    """The text with LF line ends: a browser sends a form's text back with CRLF, whatever the
    file had."""
    return content.replace("\r\n", "\n")


def sign(content: str, admin_id: int) -> str:
    """The confirm's token: this file, previewed by this admin."""
    key = current_app.config["SECRET_KEY"].encode()
    digest = hashlib.sha256(same_lines(content).encode()).hexdigest()
    return hmac.new(key, f"import:{admin_id}:{digest}".encode(), hashlib.sha256).hexdigest()


def preview(admin: User, raw: bytes) -> Preview:
    """What the file would do; stores nothing."""
    content = read(raw)
    lines = parse(content)
    courses = check(lines)
    return Preview(lines, courses, content, sign(content, admin.id))


def confirm(admin: User, content: str, token: str) -> tuple[Preview, Result | None]:
    """Store every line of a previewed file, or nothing: the file is checked again inside a
    transaction that holds the courses it enrols in. A line that became an error since the
    preview stops it all (the new preview says why)."""
    if not hmac.compare_digest(token, sign(content, admin.id)):
        raise refuse("That import was not previewed here. Choose the file again.")
    admin_id = admin.id
    db.session.commit()
    lines = parse(content)
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(text("BEGIN IMMEDIATE"))  # one writer: the counts hold
    wanted = sorted({course_id for line in lines for course_id in line.course_ids})
    if wanted:  # PostgreSQL: hold the courses, in id order, against concurrent enrolments
        db.session.execute(select(Course.id).where(Course.id.in_(wanted)).with_for_update())
    courses = check(lines)
    checked = Preview(lines, courses, content, token)
    if checked.errors:
        db.session.rollback()
        return checked, None
    result = _apply(lines)
    counts = (
        f"{len(result.created)} created, {result.updated} updated, {result.unchanged} "
        f"unchanged; {result.enrolled} enrolled, {result.waitlisted} waitlisted"
    )
    # Each new account's link by mail, in the transaction of the accounts and the audit row.
    mailed = frozenset(
        user.id
        for user in result.created
        if links.mail_link(user, absolute_url("auth.reset", token=links.make_token(user)))
    )
    result = replace(result, mailed=mailed)
    if result.mailed:
        counts += f"; {len(result.mailed)} links mailed"
    audit.record("import", db.session.get(User, admin_id), details=counts)
    search.do_not_wait()  # the report lists the accounts; search has them a moment later
    db.session.commit()
    return checked, result


def _apply(lines: list[Line]) -> Result:
    existing = {
        user.username: user
        for user in db.session.scalars(
            select(User).where(User.username.in_([line.username for line in lines]))
        )
    }
    created: list[User] = []
    for line in lines:
        user = existing.get(line.username)
        if user is None:
            # No password until they set one through their link.
            user = User(
                username=line.username,
                email=line.email,
                full_name=line.full_name,
                role=line.role,
                password_hash=f"!{secrets.token_hex(16)}",
                bio="",
            )
            db.session.add(user)
            existing[line.username] = user
            created.append(user)
        elif line.outcome == "update":
            user.full_name, user.email = line.full_name, line.email
    db.session.flush()
    enrolments = [
        Enrollment(
            course_id=course_id,
            student_id=existing[line.username].id,
            status=WAITLISTED if course_id in line.waitlisted else ENROLLED,
        )
        for line in lines
        for course_id in line.enrol
    ]
    db.session.add_all(enrolments)
    return Result(
        created,
        updated=sum(1 for line in lines if line.outcome == "update"),
        unchanged=sum(1 for line in lines if line.outcome == "unchanged"),
        enrolled=sum(1 for e in enrolments if e.status == ENROLLED),
        waitlisted=sum(1 for e in enrolments if e.status == WAITLISTED),
    )
