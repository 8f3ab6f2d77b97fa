"""Routes for enrolling, withdrawing and the roster."""

from __future__ import annotations

from flask import Response, flash, render_template, request, url_for
from flask_login import current_user

from app.blueprints.chat.services import course_room_id
from app.blueprints.enrollments import bp, services
from app.blueprints.enrollments.forms import AddStudentsForm
from app.errors import InvalidInput
from app.models import Role
from app.web import add_errors, is_htmx, redirect_303, role_required


def answer(course_id: int, outcome: services.Outcome):
    """htmx swaps the enrolment part of the course page; a plain form goes back to the page."""
    if is_htmx():
        item, place = services.course_page(current_user, course_id)
        return render_template(
            "enrollments/_place.html",
            item=item,
            place=place,
            is_student=True,
            message=outcome.message,
            chat_room_id=course_room_id(course_id),
        )
    flash(outcome.message, "status")
    return redirect_303(url_for("courses.detail", course_id=course_id))


@bp.post("/courses/<int:course_id>/enroll")
@role_required(Role.STUDENT)
def enroll(course_id: int):
    return answer(course_id, services.enroll(current_user, course_id))


@bp.post("/courses/<int:course_id>/withdraw")
@role_required(Role.STUDENT)
def withdraw(course_id: int):
    return answer(course_id, services.withdraw(current_user, course_id))


@bp.get("/courses/<int:course_id>/students")
@role_required(Role.TEACHER, Role.ADMIN)
def roster(course_id: int):
    roster = services.roster(current_user, course_id)
    if request.args.get("format") == "csv":
        filename = f"roster-course-{roster.course.id}.csv"
        return Response(
            services.roster_csv(roster),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return roster_page(roster)


def roster_page(roster: services.Roster, status: int = 200, **context):
    """The roster with its forms: the whole page, or for htmx the part it swaps."""
    context.setdefault("add_form", AddStudentsForm(formdata=None))
    template = "enrollments/_roster.html" if is_htmx() else "enrollments/roster.html"
    return render_template(template, roster=roster, **context), status


@bp.post("/courses/<int:course_id>/students")
@role_required(Role.TEACHER, Role.ADMIN)
def add_students(course_id: int):
    services.may_change_roster(current_user, course_id)  # 404 or 403 before the input
    form = AddStudentsForm()
    if form.validate():
        try:
            added = services.add_students(current_user, course_id, form.usernames.data)
            return roster_changed(course_id, added.message)
        except InvalidInput as error:
            add_errors(form, error)
    return roster_page(services.roster(current_user, course_id), 422, add_form=form)


@bp.get("/courses/<int:course_id>/students/suggestions")
@role_required(Role.TEACHER, Role.ADMIN)
def suggestions(course_id: int):
    """For htmx, as the teacher types names into the box: students the last word may mean."""
    students = services.suggestions(current_user, course_id, request.args.get("usernames", ""))
    return render_template("enrollments/_suggestions.html", students=students)


@bp.route("/courses/<int:course_id>/students/<username>/remove", methods=["GET", "POST"])
@role_required(Role.TEACHER, Role.ADMIN)
def remove_student(course_id: int, username: str):
    """Without JavaScript the roster's button leads here to confirm; htmx asks in the page
    (`hx-confirm`) and sends `confirm` itself."""
    if request.method == "GET" or request.form.get("confirm") != "yes":
        found = services.on_roster(current_user, course_id, username)
        return render_template("enrollments/remove.html", found=found)
    return roster_changed(course_id, services.remove_student(current_user, course_id, username))


def roster_changed(course_id: int, message: str):
    if is_htmx():
        return roster_page(services.roster(current_user, course_id), message=message)
    flash(message, "status")
    return redirect_303(url_for("enrollments.roster", course_id=course_id))
