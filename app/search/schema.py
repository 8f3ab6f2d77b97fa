"""The two Whoosh schemas, their analyzers, and the documents built from database rows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache

from sqlalchemy import Connection, select
from whoosh.analysis import CharsetFilter, LowercaseFilter, RegexTokenizer, StemFilter, StopFilter
from whoosh.fields import BOOLEAN, ID, KEYWORD, NGRAMWORDS, TEXT, Schema
from whoosh.support.charset import accent_map

from app.models import Course, Enrollment, EnrollmentStatus, User

# Words are runs of letters and digits: "lena.fischer@school.example" is four of them, the
# same at indexing and query time. Accents fold, so "chloe" finds "Chloé".
WORD_PATTERN = r"\w+"
PLAIN = RegexTokenizer(WORD_PATTERN) | LowercaseFilter() | CharsetFilter(accent_map)
STEMMED = PLAIN | StopFilter() | StemFilter(cachesize=50_000)
PREFIX_MIN, PREFIX_MAX = 2, 15


def prefix_field(boost: float = 1.0) -> NGRAMWORDS:
    """Edge n-grams of each word: the word being typed is one term lookup, not an expansion
    of `word*` over the whole vocabulary."""
    return NGRAMWORDS(
        minsize=PREFIX_MIN, maxsize=PREFIX_MAX, at="start", tokenizer=PLAIN, field_boost=boost
    )


COURSE_SCHEMA = Schema(
    id=ID(stored=True, unique=True),
    title=TEXT(analyzer=STEMMED, field_boost=4.0, stored=True),
    keywords=TEXT(analyzer=STEMMED, field_boost=3.0),
    teacher=TEXT(analyzer=PLAIN, field_boost=2.0),
    description=TEXT(analyzer=STEMMED, field_boost=1.0),
    # The short fields' words unstemmed: typo tolerance and "did you mean" look them up.
    words=TEXT(analyzer=PLAIN, field_boost=1.0),
    complete=prefix_field(),
    teacher_id=ID(stored=True),
    teacher_username=ID,
    # Listed: published and not archived. Anything else only its teacher finds.
    published=BOOLEAN(stored=True),
)

USER_SCHEMA = Schema(
    id=ID(stored=True, unique=True),
    username=ID(stored=True),
    name=TEXT(analyzer=PLAIN, field_boost=3.0),
    email=TEXT(analyzer=PLAIN, field_boost=1.0),
    complete=prefix_field(),
    role=ID(stored=True),
    courses=KEYWORD,
)

SCHEMAS = {"courses": COURSE_SCHEMA, "users": USER_SCHEMA}


def plain_words(text: str) -> list[str]:
    return [token.text for token in PLAIN(text)]


@lru_cache(maxsize=10_000)
def stem(word: str) -> str | None:
    """The word as the stemmed fields hold it; None for a stop word ("the", "and")."""
    tokens = [token.text for token in STEMMED(word)]
    return tokens[0] if tokens else None


def course_document(course: dict) -> dict:
    teacher = f"{course['full_name']} {course['username']}"
    short = f"{course['title']} {course['keywords']} {teacher}"
    return {
        "id": str(course["id"]),
        "title": course["title"],
        "keywords": course["keywords"],
        "teacher": teacher,
        "description": course["description"],
        "words": short,
        "complete": short,
        "teacher_id": str(course["teacher_id"]),
        "teacher_username": course["username"],
        "published": bool(course["published"]) and course.get("archived_at") is None,
    }


def user_document(user: dict, course_ids: Iterable[int]) -> dict:
    return {
        "id": str(user["id"]),
        "username": user["username"],
        "name": f"{user['full_name']} {user['username']}",
        "email": user["email"],
        "complete": f"{user['full_name']} {user['username']} {user['email']}",
        "role": user["role"],
        "courses": " ".join(str(course_id) for course_id in sorted(set(course_ids))),
    }


COURSE_COLUMNS = (
    Course.id,
    Course.title,
    Course.keywords,
    Course.description,
    Course.published,
    Course.archived_at,
    Course.teacher_id,
    User.full_name,
    User.username,
)
USER_COLUMNS = (User.id, User.username, User.email, User.full_name, User.role)
BATCH = 2_000


def course_rows(
    connection: Connection, ids: Iterable[int] | None = None, teacher_ids: Iterable[int] = ()
) -> Iterator[dict]:
    """Courses as the index needs them: all of them (ids None), or these and these teachers'."""
    query = select(*COURSE_COLUMNS).join(User, User.id == Course.teacher_id)
    if ids is not None:
        query = query.where(Course.id.in_(list(ids)) | Course.teacher_id.in_(list(teacher_ids)))
    for row in connection.execution_options(yield_per=BATCH).execute(query):
        yield row._asdict()


def user_documents(connection: Connection, ids: Iterable[int] | None = None) -> Iterator[dict]:
    """Each user's document with the ids of the courses they teach or are enrolled in."""
    query = select(*USER_COLUMNS).order_by(User.id)
    if ids is not None:
        query = query.where(User.id.in_(list(ids)))
    users = [row._asdict() for row in connection.execute(query)]
    for start in range(0, len(users), BATCH):
        batch = users[start : start + BATCH]
        user_ids = [user["id"] for user in batch]
        courses: dict[int, list[int]] = {user_id: [] for user_id in user_ids}
        taught = select(Course.teacher_id, Course.id).where(Course.teacher_id.in_(user_ids))
        enrolled = select(Enrollment.student_id, Enrollment.course_id).where(
            Enrollment.student_id.in_(user_ids), Enrollment.status == EnrollmentStatus.ENROLLED
        )
        for query_part in (taught, enrolled):
            for user_id, course_id in connection.execute(query_part):
                courses[user_id].append(course_id)
        for user in batch:
            yield user_document(user, courses[user["id"]])
