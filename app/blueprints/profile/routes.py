"""Routes for one's own profile and other people's public profiles."""

from __future__ import annotations

from flask import Response, current_app, flash, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.blueprints.auth import services as accounts
from app.blueprints.notifications import services as notifications
from app.blueprints.profile import bp, erasure, export, services
from app.blueprints.profile.forms import (
    EraseForm,
    NotificationChoicesForm,
    PasswordForm,
    ProfileForm,
)
from app.errors import InvalidInput
from app.extensions import db
from app.web import add_errors, form_invalid, is_htmx, redirect_303, render_page_or_partial

PROFILE_FORM = "profile/_profile_form.html"
SAVED = "Your profile is saved."


@bp.get("/profile")
@login_required
def show():
    return render_template("profile/show.html", user=current_user)


@bp.route("/profile/edit", methods=["GET", "POST"])
@login_required
def edit():
    form = ProfileForm(obj=current_user)
    page = {"form": form, "password_form": PasswordForm(formdata=None)}
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_page_or_partial("profile/edit.html", PROFILE_FORM, status, **page)
    try:
        services.update_profile(
            current_user,
            form.full_name.data,
            form.email.data,
            form.bio.data,
            form.current_password.data or "",
            form.timezone.data,
        )
    except InvalidInput as error:
        add_errors(form, error)
        return render_page_or_partial("profile/edit.html", PROFILE_FORM, 422, **page)
    if is_htmx():
        return render_template(PROFILE_FORM, form=form, saved=SAVED)
    flash(SAVED, "status")
    return redirect_303(url_for("profile.show"))


@bp.post("/profile/password")
@login_required
def change_password():
    form = PasswordForm()
    profile_form = ProfileForm(formdata=None, obj=current_user)
    if not form.validate():
        return form_invalid("profile/edit.html", form, password_form=form, form=profile_form)
    user = current_user._get_current_object()
    try:
        accounts.change_password(user, form.current_password.data, form.new_password.data)
    except InvalidInput as error:
        return form_invalid("profile/edit.html", form, error, password_form=form, form=profile_form)
    # The new session version ended every session; this one carries on with the new version.
    remembered = current_app.config["REMEMBER_COOKIE_NAME"] in request.cookies
    login_user(user, remember=remembered)
    flash("Your password is changed. You are signed out everywhere else.", "status")
    return redirect_303(url_for("profile.show"))


@bp.route("/profile/notifications", methods=["GET", "POST"])
@login_required
def notifications_page():
    form = NotificationChoicesForm(data=notifications.choices_for(current_user))
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("profile/notifications.html", form=form), status
    chosen = {kind: getattr(form, kind).data for kind in notifications.KINDS}
    notifications.set_choices(current_user, chosen)
    flash("Your mail choices are saved.", "status")
    return redirect_303(url_for("profile.notifications_page"))


@bp.get("/users/<username>")
@login_required
def public(username: str):
    return render_template("profile/public.html", user=services.public_profile(username))


@bp.get("/profile/export")
@login_required
def export_data():
    """Everything Campus holds about the signed-in person, as a zip streamed as it is made."""
    data = export.gather(current_user)
    db.session.remove()  # the rows are read: no connection held while the zip streams
    response = Response(export.stream(data), mimetype="application/zip")
    name = f"campus-{data.documents['profile']['username']}.zip"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/profile/delete", methods=["GET", "POST"])
@login_required
def erase():
    """Erase one's own account: the password and the username typed out, then everything
    that names the person goes (app/blueprints/profile/erasure.py)."""
    form = EraseForm()
    user = current_user._get_current_object()
    taught = services.taught_titles(user)
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("profile/delete.html", form=form, taught=taught), status
    if form.confirm.data.strip().lower() != user.username:
        form.confirm.errors.append(f"Type your username, {user.username}, exactly.")
    elif not accounts.verify_password(user, form.current_password.data):
        form.current_password.errors.append(services.NOT_YOURS)
    else:
        try:
            erasure.erase(user, user.username)
        except InvalidInput as error:
            add_errors(form, error)
        else:
            logout_user()
            flash("Your account is erased. Everything that named you is gone.", "status")
            return redirect_303(url_for("auth.login"))
    return render_template("profile/delete.html", form=form, taught=taught), 422
