"""Material rules: who may see, upload and delete; every file checked before any is kept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import FileStorage

from app.blueprints.courses.services import (
    CourseShown,
    can_manage,
    changeable_course,
    seen_course,
)
from app.blueprints.materials import storage
from app.blueprints.notifications.services import notify
from app.errors import InvalidInput, NotAllowed, NotFound, UnsupportedType
from app.extensions import db
from app.forms import text_problem
from app.models import Course, Enrollment, EnrollmentStatus, Material, User
from app.models.material import TITLE_MAX

ENROLLED = EnrollmentStatus.ENROLLED.value


def may_view(user: User, course: Course) -> bool:
    """The course's teacher, admins, and students enrolled in it."""
    if can_manage(user, course):
        return True
    return bool(
        db.session.scalar(
            select(func.count(Enrollment.id)).where(
                Enrollment.course_id == course.id,
                Enrollment.student_id == user.id,
                Enrollment.status == ENROLLED,
            )
        )
    )


def viewable_course(user: User, course_id: int) -> CourseShown:
    course = seen_course(user, course_id).course  # a draft: 404
    if not may_view(user, course):
        raise NotAllowed("Materials are for the students enrolled in this course.")
    return course


def listing(user: User, course_id: int) -> tuple[CourseShown, list[Material]]:
    """The current version of each file; for the course's teacher and admins each also
    carries its earlier versions (`material.history`), loaded in the same round of queries."""
    course = viewable_course(user, course_id)
    query = (
        select(Material)
        .where(Material.course_id == course_id)
        .options(selectinload(Material.uploaded_by))
        .order_by(Material.created_at.desc(), Material.id.desc())
    )
    if not can_manage(user, course):
        query = query.where(Material.is_current)
    rows = list(db.session.scalars(query))
    current = [m for m in rows if m.is_current]
    for material in current:
        material.history = sorted(
            (m for m in rows if not m.is_current and m.document_id == material.document_id),
            key=lambda m: m.version,
            reverse=True,
        )
    return course, current


def downloadable(user: User, material_id: int) -> tuple[Material, Path]:
    """Students get current versions only; earlier ones are for the teacher and admins."""
    material = db.session.get(Material, material_id)
    if material is None:
        raise NotFound("There is no such file.")
    course = viewable_course(user, material.course_id)
    if not material.is_current and not can_manage(user, course):
        raise NotFound("That version has been replaced: download the current one.")
    return material, storage.stored_path(material.stored_name)


def may_upload(user: User, course_id: int) -> None:
    """Raises unless `user` may add files to the course (before their body is read): its
    teacher or an admin, while the course is not archived."""
    changeable_course(user, course_id)


def may_replace(user: User, material_id: int) -> None:
    """Raises unless `user` may upload a new version of the material."""
    _current_material(user, material_id)


def _current_material(user: User, material_id: int) -> tuple[Material, Course]:
    material = db.session.get(Material, material_id)
    if material is None or not material.is_current:
        raise NotFound("There is no such current file.")
    return material, changeable_course(user, material.course_id)


def upload(user: User, course_id: int, files: list[FileStorage], title: str) -> list[Material]:
    """Check every file (name, size, type by content) before keeping any; then move them into
    place, and only then commit their rows. Students enrolled are told once per upload."""
    course = changeable_course(user, course_id)
    problem = text_problem(title, where="the title")
    if problem:
        raise InvalidInput({"title": problem})
    files = [file for file in files if file.filename]
    if not files:
        raise InvalidInput({"file": "Choose at least one file."})
    checked = [check(file) for file in files]

    materials = [
        file.kept_as(course.id, user.id, title.strip() or file.name.rsplit(".", 1)[0])
        for file in checked
    ]
    db.session.add_all(materials)
    students = _enrolled(course.id)
    what = f"“{materials[0].title}”" if len(materials) == 1 else f"{len(materials)} new files"
    notify(
        students,
        "material_added",
        f"{what} added to “{course.title}”.",
        f"/courses/{course.id}/materials",
    )
    _commit_keeping(materials)
    return materials


@dataclass(frozen=True)
class CheckedFile:
    """An upload that passed every check, still in UPLOAD_DIR/tmp."""

    path: Path
    name: str
    content_type: str
    size: int
    sha256: str

    def kept_as(self, course_id: int, uploaded_by_id: int, title: str, **version: int) -> Material:
        """Move the file into place and describe it as a material (not yet committed)."""
        return Material(
            course_id=course_id,
            title=title[:TITLE_MAX],
            original_name=self.name,
            stored_name=storage.keep(self.path),
            content_type=self.content_type,
            size=self.size,
            sha256=self.sha256,
            uploaded_by_id=uploaded_by_id,
            **version,
        )


def check(file: FileStorage) -> CheckedFile:
    """One uploaded file: a usable name, not empty, a type we accept by its content."""
    name = file.filename or ""
    if any(ch in name for ch in "\x00\r\n"):
        raise InvalidInput({"file": "A file name holds characters that cannot be used."})
    file.stream.flush()
    path = Path(file.stream.name)
    size = path.stat().st_size
    display = storage.clean_name(name)
    if size == 0:
        raise InvalidInput({"file": f"“{display}” is empty."})
    content_type = storage.content_type_of(path)
    if content_type is None:
        raise UnsupportedType(
            f"“{display}” is not a type of file Campus accepts. Use documents (PDF, Word, "
            "LibreOffice), images, audio, video, zip or plain text."
        )
    return CheckedFile(path, display, content_type, size, storage.digest(path))


def replace(user: User, material_id: int, file: FileStorage | None) -> Material:
    """A new version of a file: it becomes the current one, the old stays for the teacher.
    Enrolled students are told."""
    old, course = _current_material(user, material_id)
    if file is None or not file.filename:
        raise InvalidInput({"file": "Choose the new version of the file."})
    new = check(file).kept_as(
        course.id, user.id, old.title, root_id=old.document_id, version=old.version + 1
    )
    old.is_current = False
    db.session.add(new)
    notify(
        _enrolled(course.id),
        "material_replaced",
        f"“{old.title}” in “{course.title}” has a new version.",
        f"/courses/{course.id}/materials",
    )
    _commit_keeping([new])
    return new


def _commit_keeping(materials: list[Material]) -> None:
    """Commit the rows of files already in place; if that fails, the files go too."""
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        for material in materials:
            storage.stored_path(material.stored_name).unlink(missing_ok=True)
        raise


def _enrolled(course_id: int) -> list[int]:
    return list(
        db.session.scalars(
            select(Enrollment.student_id).where(
                Enrollment.course_id == course_id, Enrollment.status == ENROLLED
            )
        )
    )


def delete(user: User, material_id: int) -> int:
    material = db.session.get(Material, material_id)
    if material is None:
        raise NotFound("There is no such file.")
    changeable_course(user, material.course_id)
    course_id, document_id = material.course_id, material.document_id
    versions = list(
        db.session.scalars(
            select(Material).where((Material.id == document_id) | (Material.root_id == document_id))
        )
    )
    paths = [storage.stored_path(version.stored_name) for version in versions]
    # One statement for all versions: the database's cascade and the ORM never race.
    db.session.execute(
        sql_delete(Material).where(Material.id.in_([version.id for version in versions]))
    )
    db.session.commit()
    for path in paths:
        path.unlink(missing_ok=True)
    return course_id


def sweep(app) -> int:
    with app.app_context():
        known = set(db.session.scalars(select(Material.stored_name)))
        return storage.sweep(app, known)
