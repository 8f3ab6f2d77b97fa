"""Search rules: what may be searched by whom, the rows behind the ids the index ranks, and
a plain SQL search for when the index cannot be read."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from markupsafe import Markup
from sqlalchemy import Select, and_, func, or_, select
from werkzeug.datastructures import MultiDict

from app import search
from app.blueprints.courses.services import Listed, is_listed, listed_by_id
from app.errors import NotAllowed
from app.extensions import db
from app.forms import whole_number
from app.models import Course, Enrollment, EnrollmentStatus, Role, User
from app.search.queries import Highlighter, Hits, Words
from app.web import page_count

log = logging.getLogger(__name__)
PAGE_SIZE = 20
QUERY_MAX = 200  # characters kept of a query: more than any real search, a bound on the work


def _text(args: MultiDict, name: str) -> str:
    value = args.get(name, "")[: QUERY_MAX * 2]
    return "".join(ch for ch in value if ch.isprintable())[:QUERY_MAX].strip()


@dataclass(frozen=True)
class CourseQuery:
    q: str = ""
    teacher: str = ""

    @classmethod
    def of(cls, args: MultiDict) -> CourseQuery:
        return cls(_text(args, "q"), _text(args, "teacher"))

    def args(self) -> dict[str, str]:
        return {name: value for name, value in vars(self).items() if value}


@dataclass(frozen=True)
class UserQuery:
    q: str = ""
    role: str = ""
    course: int | None = None

    @classmethod
    def of(cls, args: MultiDict) -> UserQuery:
        role = args.get("role", "")
        course = args.get("course", "")
        return cls(
            _text(args, "q"),
            role if role in {r.value for r in Role} else "",
            whole_number(course, max_digits=9),
        )

    def args(self) -> dict[str, str]:
        return {name: str(value) for name, value in vars(self).items() if value}


@dataclass(frozen=True)
class CourseResult:
    item: Listed
    title: Markup
    teacher: Markup
    summary: Markup
    keywords: list[Markup]


@dataclass(frozen=True)
class UserResult:
    user: User
    name: Markup
    username: Markup


@dataclass
class Found:
    """A page of results, ready to show; `asked` is False before anything was typed."""

    items: list = field(default_factory=list)
    number: int = 1
    total: int = 0
    asked: bool = False
    suggestion: str | None = None
    fallback: bool = False
    any_word: bool = False
    estimated: bool = False

    @property
    def pages(self) -> int:
        return page_count(self.total, PAGE_SIZE)


def find_courses(viewer: User, query: CourseQuery, number: int) -> Found:
    viewer_id = viewer.id if viewer.is_authenticated else None
    if not (query.q or query.teacher):
        return Found()
    try:
        hits = search.courses(query.q, query.teacher, viewer_id, number, PAGE_SIZE)
    except search.SearchUnavailable as error:
        log.warning("course search falls back to SQL: %s", error)
        hits = sql_courses(query, viewer_id, number)
    except Exception:  # a broken index file, a Whoosh bug: the page still answers
        log.exception("course search failed; falling back to SQL")
        hits = sql_courses(query, viewer_id, number)
    rows = listed_by_id(hits.ids)
    mark = hits.highlighter
    items = [
        CourseResult(
            item,
            mark.mark(item.course.title),
            mark.mark(item.course.teacher.full_name),
            mark.excerpt(item.course.description),
            [mark.mark(word) for word in item.course.keyword_list],
        )
        for item in (rows.get(course_id) for course_id in hits.ids)
        # The index said so; the rows have the last word on who may see them.
        if item and (item.course.is_listed or item.course.teacher_id == viewer_id)
    ]
    return _found(items, hits)


def filter_courses(viewer: User) -> list[tuple[int, str]]:
    """The courses a viewer may narrow people to: a teacher's own (their rosters are theirs
    alone, DESIGN.md), every course for an admin."""
    query = select(Course.id, Course.title).order_by(Course.title, Course.id)
    if not viewer.is_admin:
        query = query.where(Course.teacher_id == viewer.id)
    return [(course_id, title) for course_id, title in db.session.execute(query)]


def find_users(viewer: User, query: UserQuery, number: int) -> Found:
    if not (query.q or query.role or query.course):
        return Found()
    if query.course is not None and not viewer.is_admin:
        mine = db.session.scalar(
            select(Course.id).where(Course.id == query.course, Course.teacher_id == viewer.id)
        )
        if mine is None:
            raise NotAllowed("You can narrow people to the students of your own courses.")
    try:
        hits = search.users(query.q, query.role or None, query.course, number, PAGE_SIZE)
    except search.SearchUnavailable as error:
        log.warning("user search falls back to SQL: %s", error)
        hits = sql_users(query, number)
    except Exception:  # a broken index file, a Whoosh bug: the page still answers
        log.exception("user search failed; falling back to SQL")
        hits = sql_users(query, number)
    rows = {user.id: user for user in db.session.scalars(select(User).where(User.id.in_(hits.ids)))}
    mark = hits.highlighter
    items = [
        UserResult(user, mark.mark(user.full_name), mark.mark(user.username))
        for user in (rows.get(user_id) for user_id in hits.ids)
        if user
    ]
    return _found(items, hits)


def _found(items: list, hits: Hits) -> Found:
    return Found(
        items,
        hits.number,
        hits.total,
        True,
        hits.suggestion,
        hits.fallback,
        hits.any_word,
        hits.estimated,
    )


# The SQL fallback: every word somewhere in the row, newest first. Slow on big tables, but
# search keeps working while the index is rebuilt or repaired.


def _like(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _sql_page(query: Select, number: int, order, highlighter: Highlighter) -> Hits:
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    pages = page_count(total, PAGE_SIZE)
    number = min(max(number, 1), pages)
    ids = db.session.scalars(
        query.order_by(*order).limit(PAGE_SIZE).offset((number - 1) * PAGE_SIZE)
    ).all()
    return Hits(list(ids), total, number, highlighter, fallback=True)


def course_conditions(words: Words) -> list:
    columns = (Course.title, Course.description, Course.keywords, User.full_name, User.username)
    return [
        or_(*(column.ilike(_like(word), escape="\\") for column in columns)) for word in words.words
    ]


def sql_courses(query: CourseQuery, viewer_id: int | None, number: int) -> Hits:
    words = Words.of(query.q)
    visible = or_(is_listed(), Course.teacher_id == viewer_id) if viewer_id else is_listed()
    conditions = [visible, *course_conditions(words)]
    teacher = Words.of(query.teacher)
    if teacher:
        by_name = and_(*(User.full_name.ilike(_like(word), escape="\\") for word in teacher.words))
        conditions.append(or_(User.username == query.teacher.lower(), by_name))
    statement = select(Course.id).join(User, User.id == Course.teacher_id).where(*conditions)
    return _sql_page(statement, number, (Course.created_at.desc(), Course.id.desc()),
                     words.highlighter())  # fmt: skip


def sql_users(query: UserQuery, number: int) -> Hits:
    words = Words.of(query.q)
    columns = (User.full_name, User.username, User.email)
    conditions = [
        or_(*(column.ilike(_like(word), escape="\\") for column in columns)) for word in words.words
    ]
    if query.role:
        conditions.append(User.role == query.role)
    if query.course:
        taught = select(Course.teacher_id).where(Course.id == query.course)
        enrolled = select(Enrollment.student_id).where(
            Enrollment.course_id == query.course, Enrollment.status == EnrollmentStatus.ENROLLED
        )
        conditions.append(or_(User.id.in_(taught), User.id.in_(enrolled)))
    statement = select(User.id).where(*conditions)
    return _sql_page(statement, number, (User.full_name, User.id), words.highlighter())
