"""Routes for the front page, the dashboard and /healthz."""

from __future__ import annotations

from flask import jsonify, redirect, render_template, url_for
from flask_login import current_user, login_required

from app import fragments
from app.blueprints.main import bp, services
from app.web import cached_for_visitors


@bp.get("/")
@cached_for_visitors
def home():
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    return render_template("main/home.html")


@bp.get("/dashboard")
@login_required
def dashboard():
    shown = services.dashboard(current_user)
    mine = shown["mine"]
    waiting = [item for item, _ in mine.waitlisted]
    items = [*shown["taught"], *mine.enrolled, *waiting, *shown["past"]]
    unique = list({item.course.id: item for item in items}.values())  # each card kept apart
    cards = fragments.kept_each(
        unique,
        lambda item: fragments.course_scope(item.course.id),
        lambda item: item.course.id,
        "courses/_card.html",
        lambda item: {"item": item},
    )
    by_course = {item.course.id: card for item, card in zip(unique, cards, strict=True)}
    return render_template("main/dashboard.html", cards=by_course, **shown)


@bp.get("/healthz")
def healthz():
    report, healthy = services.health()
    response = jsonify(report)
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response
