"""Routes for the catalogue, the course page, and creating and editing courses."""

from __future__ import annotations

from dataclasses import dataclass

from flask import flash, get_template_attribute, render_template, url_for
from flask_login import current_user
from markupsafe import Markup

from app import fragments
from app.blueprints.chat.services import course_room_id
from app.blueprints.courses import bp, lifecycle, services
from app.blueprints.courses.forms import CourseForm, DeleteCourseForm, TransferForm
from app.blueprints.enrollments import services as enrolment
from app.database import reads_alone
from app.errors import InvalidInput, NotFound
from app.models import Role
from app.web import (
    add_errors,
    cached_for_visitors,
    form_invalid,
    page_number,
    redirect_303,
    render_page_or_partial,
    role_required,
)


@bp.get("/courses")
@reads_alone
@cached_for_visitors(scopes=lambda: [fragments.CATALOGUE], signed_in=True)
def index():
    number = page_number()
    listing = fragments.kept_template(
        [fragments.CATALOGUE],
        number,
        "courses/_list.html",
        lambda: {"page": services.catalogue(number)},
    )
    return render_page_or_partial("courses/index.html", "_kept.html", kept=listing)


@bp.get("/courses/new")
@role_required(Role.TEACHER, Role.ADMIN)
def new():
    return render_template("courses/form.html", form=CourseForm(), course=None)


@bp.post("/courses")
@role_required(Role.TEACHER, Role.ADMIN)
def create():
    form = CourseForm()
    if not form.validate():
        return form_invalid("courses/form.html", form, course=None)
    course = services.create(current_user, draft_from(form))
    flash(f"“{course.title}” is created{'' if course.published else ' as a draft'}.", "status")
    return redirect_303(url_for("courses.detail", course_id=course.id))


@bp.get("/courses/<int:course_id>")
@reads_alone
@cached_for_visitors(scopes=lambda course_id: [fragments.course_scope(course_id)], signed_in=True)
def detail(course_id: int):
    return course_page(course_id)


def course_page(
    course_id: int,
    status: int = 200,
    delete_form: DeleteCourseForm | None = None,
    transfer_form: TransferForm | None = None,
):
    """The course page; for those who may, with the forms to delete it or hand it over."""
    part = fragments.kept(
        [fragments.course_scope(course_id)], ("course", course_id), lambda: page_part(course_id)
    )
    if part is None or not services.can_see(current_user, part.item.course):
        raise NotFound("There is no such course.")
    item = part.item
    is_student = current_user.is_authenticated and current_user.role == Role.STUDENT
    place = enrolment.place_of(current_user, course_id) if is_student else enrolment.Place("none")
    if delete_form is None and lifecycle.may_delete(current_user, item.course):
        delete_form = DeleteCourseForm(formdata=None)
    if transfer_form is None and current_user.is_authenticated and current_user.is_admin:
        transfer_form = TransferForm(formdata=None)
    return render_template(
        "courses/detail.html",
        item=item,
        part=part,
        place=place,
        is_student=is_student,
        chat_room_id=part.room_id,
        delete_form=delete_form,
        transfer_form=transfer_form,
    ), status


@bp.route("/courses/<int:course_id>/edit", methods=["GET", "POST"])
@role_required(Role.TEACHER, Role.ADMIN)
def edit(course_id: int):
    course = services.changeable_course(current_user, course_id)
    form = CourseForm(obj=course)
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("courses/form.html", form=form, course=course), status
    try:
        services.update(current_user, course_id, draft_from(form))
    except InvalidInput as error:
        return form_invalid("courses/form.html", form, error, course=course)
    flash("The course is saved.", "status")
    return redirect_303(url_for("courses.detail", course_id=course_id))


@bp.post("/courses/<int:course_id>/archive")
@role_required(Role.TEACHER, Role.ADMIN)
def archive(course_id: int):
    return changed(lifecycle.archive(current_user, course_id))


@bp.post("/courses/<int:course_id>/unarchive")
@role_required(Role.TEACHER, Role.ADMIN)
def unarchive(course_id: int):
    return changed(lifecycle.unarchive(current_user, course_id))


@bp.post("/courses/<int:course_id>/delete")
@role_required(Role.TEACHER, Role.ADMIN)
def delete(course_id: int):
    form = DeleteCourseForm()
    try:
        title = lifecycle.delete(current_user, course_id, form.confirm.data or "")
    except InvalidInput as error:  # the service checks the title: nothing else to validate
        add_errors(form, error)
        return course_page(course_id, 422, delete_form=form)
    flash(f"“{title}” is deleted, with its files, feedback and chat.", "status")
    return redirect_303(url_for("main.dashboard"))


@bp.post("/courses/<int:course_id>/transfer")
@role_required(Role.ADMIN)
def transfer(course_id: int):
    form = TransferForm()
    try:
        if not form.validate():
            return course_page(course_id, 422, transfer_form=form)
        return changed(lifecycle.transfer(current_user, course_id, form.teacher.data))
    except InvalidInput as error:
        add_errors(form, error)
        return course_page(course_id, 422, transfer_form=form)


@dataclass(frozen=True)
class PagePart:
    """What the course page shows every viewer: the course's facts and their rendered HTML."""

    item: services.Listed
    header: Markup
    description: Markup
    room_id: int | None  # the class chat's, made with the course and never changed


def page_part(course_id: int) -> PagePart | None:
    item = services.shown_course(course_id)
    if item is None:
        return None
    macros = "courses/_header.html"
    return PagePart(
        item,
        get_template_attribute(macros, "header")(item),
        get_template_attribute(macros, "description")(item.course),
        course_room_id(course_id),
    )


def changed(change: lifecycle.Change):
    flash(change.message, "status")
    return redirect_303(url_for("courses.detail", course_id=change.course_id))


def draft_from(form: CourseForm) -> services.CourseDraft:
    return services.CourseDraft(
        title=form.title.data,
        description=form.description.data or "",
        keywords=form.keyword_list,
        capacity=form.capacity_value,
        published=form.published.data,
    )
