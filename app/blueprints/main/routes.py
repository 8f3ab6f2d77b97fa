"""Routes for the front page, the dashboard and /healthz."""

from __future__ import annotations

from flask import jsonify, redirect, render_template, url_for
from flask_login import current_user, login_required

from app import fragments
from app.blueprints.main import bp, services
from app.database import reads_alone
from app.web import cached_for_visitors, kept_for_person


@bp.get("/")
@cached_for_visitors
def home():
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    return render_template("main/home.html")


@bp.get("/dashboard")
@reads_alone
@login_required
def dashboard():
    """Kept whole for the person while their own scope (their enrolments, courses, unread
    notifications) and the scopes of the courses it shows are unchanged."""
    from app.blueprints.courses.services import listed_by_id

    def page():
        shown, unread = services.dashboard(current_user)
        cards = fragments.kept_each(
            shown.course_ids(),
            fragments.course_scope,
            "courses/_card.html",
            lambda missing: {key: {"item": item} for key, item in listed_by_id(missing).items()},
        )
        return render_template("main/dashboard.html", shown=shown, cards=cards, unread=unread)

    def courses():
        return map(fragments.course_scope, services.dashboard_course_ids(current_user))

    return kept_for_person((), page, named=courses)


@bp.get("/healthz")
def healthz():
    report, healthy = services.health()
    response = jsonify(report)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response
