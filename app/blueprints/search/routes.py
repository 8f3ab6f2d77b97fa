"""Routes for course search and user search: a plain GET form, refreshed as you type."""

from __future__ import annotations

from flask import request
from flask_login import current_user

from app.blueprints.search import bp, services
from app.database import reads_alone
from app.models import Role
from app.web import page_number, render_page_or_partial, role_required


@bp.get("/search/courses")
@reads_alone
def courses():
    query = services.CourseQuery.of(request.args)
    found = services.find_courses(current_user, query, page_number())
    return render_page_or_partial(
        "search/courses.html", "search/_course_results.html", query=query, found=found
    )


@bp.get("/search/users")
@reads_alone
@role_required(Role.TEACHER, Role.ADMIN)
def users():
    query = services.UserQuery.of(request.args)
    found = services.find_users(current_user, query, page_number())
    return render_page_or_partial(
        "search/users.html",
        "search/_user_results.html",
        query=query,
        found=found,
        roles=Role,
        courses=services.filter_courses(current_user),
    )
