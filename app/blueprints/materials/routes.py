"""Routes for a course's materials."""

from __future__ import annotations

from flask import flash, render_template, request, send_file, url_for
from flask_login import current_user, login_required

from app.blueprints.courses.services import can_manage
from app.blueprints.materials import bp, services
from app.database import reads_alone
from app.errors import InvalidInput
from app.web import accepts_large_body, is_htmx, redirect_303


def upload_limit(app) -> int:
    return app.config["MAX_UPLOAD_MB"] * 1024 * 1024


def allowed(check):
    """The person signed in may upload here: `check(current_user, id)` raises otherwise."""
    return lambda **ids: check(current_user, *ids.values())


def human_size(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


@bp.app_template_filter("human_size")
def human_size_filter(size: int) -> str:
    return human_size(size)


@bp.get("/courses/<int:course_id>/materials")
@reads_alone
@login_required
def index(course_id: int):
    course, materials = services.listing(current_user, course_id)
    return render_template(
        "materials/index.html",
        course=course,
        materials=materials,
        can_upload=can_manage(current_user, course) and not course.is_archived,
    )


@bp.post("/courses/<int:course_id>/materials")
@login_required
@accepts_large_body(upload_limit, allowed(services.may_upload), to_disk=True)
def upload(course_id: int):
    try:
        added = services.upload(
            current_user, course_id, request.files.getlist("file"), request.form.get("title", "")
        )
    except InvalidInput as error:
        course, materials = services.listing(current_user, course_id)
        page = "materials/_list.html" if is_htmx() else "materials/index.html"
        return render_template(
            page, course=course, materials=materials, can_upload=True, errors=error.errors
        ), 422
    message = f"{len(added)} {'file' if len(added) == 1 else 'files'} added."
    if is_htmx():
        course, materials = services.listing(current_user, course_id)
        return render_template(
            "materials/_list.html",
            course=course,
            materials=materials,
            can_upload=True,
            message=message,
        )
    flash(message, "status")
    return redirect_303(url_for("materials.index", course_id=course_id))


@bp.get("/materials/<int:material_id>/download")
@reads_alone
@login_required
def download(material_id: int):
    material, path = services.downloadable(current_user, material_id)
    response = send_file(
        path,
        # Without the stored "; charset=utf-8": send_file adds it to every text type itself.
        mimetype=material.content_type.partition(";")[0],
        as_attachment=True,
        download_name=material.original_name,
        conditional=True,
        etag=material.sha256,
        max_age=0,
    )
    response.cache_control.private = True
    return response


@bp.post("/materials/<int:material_id>/replace")
@login_required
@accepts_large_body(upload_limit, allowed(services.may_replace), to_disk=True)
def replace(material_id: int):
    new = services.replace(current_user, material_id, request.files.get("file"))
    flash(f"“{new.title}” is replaced: version {new.version} is now the current one.", "status")
    return redirect_303(url_for("materials.index", course_id=new.course_id))


@bp.post("/materials/<int:material_id>/delete")
@login_required
def delete(material_id: int):
    course_id = services.delete(current_user, material_id)
    flash("The file is deleted.", "status")
    return redirect_303(url_for("materials.index", course_id=course_id))
