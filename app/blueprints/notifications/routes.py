"""Routes for one's notifications."""

from __future__ import annotations

from flask import render_template, request, url_for
from flask_login import current_user, login_required

from app.blueprints.notifications import bp, services
from app.extensions import csrf
from app.web import is_safe_next, page_number, redirect_303, render_page_or_partial


@bp.get("/notifications")
@login_required
def index():
    page = services.page_for(current_user, page_number())
    return render_page_or_partial("notifications/index.html", "notifications/_list.html", page=page)


@bp.post("/notifications/<int:notification_id>/read")
@login_required
def read(notification_id: int):
    notification = services.mark_read(current_user, notification_id)
    # "Open" follows the link; "Mark read" stays on the list.
    if request.form.get("open") and is_safe_next(notification.link):
        return redirect_303(notification.link)
    return redirect_303(url_for("notifications.index"))


@bp.post("/notifications/read-all")
@login_required
def read_all():
    services.mark_all_read(current_user)
    return redirect_303(url_for("notifications.index"))


@bp.route("/notifications/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058: a mail client POSTs here with no session and no token
def unsubscribe(token: str):
    """A mail's unsubscribe link: the page asks, its button (or a mail client's one-click
    POST) turns that kind of mail off."""
    if request.method == "POST":
        done = services.unsubscribe(token)
        return render_template("notifications/unsubscribe.html", found=done, done=True)
    found = services.unsubscription(token)
    return render_template("notifications/unsubscribe.html", found=found, token=token)
