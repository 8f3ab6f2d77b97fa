"""Routes of the admin pages: thin, over the services."""

from __future__ import annotations

from flask import flash, render_template, request, url_for
from flask_login import current_user, login_required

from app.blueprints.admin import bp, imports, services
from app.blueprints.admin.forms import RoleForm
from app.blueprints.chat import safety
from app.blueprints.profile import erasure
from app.errors import InvalidInput, NotAllowed
from app.web import (
    accepts_large_body,
    add_errors,
    csv_response,
    page_number,
    redirect_303,
    render_page_or_partial,
)


def admin_only() -> None:
    if not current_user.is_admin:
        raise NotAllowed("These pages are for the school's admins.")


# Teachers look after their courses' rooms: they see the reports made there.
FOR_TEACHERS_TOO = {"admin.reports", "admin.resolve_report"}


@bp.before_request
@login_required
def admins_only() -> None:
    if request.endpoint in FOR_TEACHERS_TOO and current_user.is_teacher:
        return
    admin_only()


@bp.get("/users")
def users():
    query = services.AccountQuery.of(request.args)
    found = services.accounts(query, page_number())
    return render_page_or_partial(
        "admin/users.html",
        "admin/_accounts.html",
        query=query,
        found=found,
        roles=services.Role,
        statuses=services.STATUSES,
    )


def account_page(username: str, status: int = 200, **context):
    account = services.account(username)
    context.setdefault("role_form", RoleForm(formdata=None, role=account.user.role))
    return render_template("admin/user.html", account=account, **context), status


@bp.get("/users/<username>")
def user(username: str):
    return account_page(username)


@bp.post("/users/<username>/role")
def change_role(username: str):
    form = RoleForm()
    if not form.validate():
        return account_page(username, 422, role_form=form)
    try:
        changed = services.change_role(current_user, username, form.role.data)
    except InvalidInput as error:
        add_errors(form, error)
        return account_page(username, 422, role_form=form)
    flash(f"{changed.username} is now {changed.role}; their sessions have ended.", "status")
    return redirect_303(url_for("admin.user", username=changed.username))


@bp.post("/users/<username>/deactivate")
def deactivate(username: str):
    return _account_change(username, services.deactivate, "is deactivated and signed out")


@bp.post("/users/<username>/reactivate")
def reactivate(username: str):
    return _account_change(username, services.reactivate, "can sign in again")


def _account_change(username: str, change, done: str):
    try:
        user = change(current_user, username)
    except InvalidInput as error:
        return account_page(username, 422, problem=error.message)
    flash(f"{user.username} {done}.", "status")
    return redirect_303(url_for("admin.user", username=user.username))


@bp.post("/users/<username>/delete")
def erase(username: str):
    """Erase someone's account (app/blueprints/profile/erasure.py); `confirm` is its username
    typed out. An admin erases their own account from their profile."""
    if request.form.get("confirm", "").strip().lower() != username.lower():
        return account_page(username, 422, erase_problem="Type the username exactly to erase.")
    if username.lower() == current_user.username:
        problem = "Erase your own account from your profile."
        return account_page(username, 422, erase_problem=problem)
    try:
        erasure.erase(current_user._get_current_object(), username)
    except InvalidInput as error:
        return account_page(username, 422, erase_problem=error.message)
    flash(f"The account {username.lower()} is erased.", "status")
    return redirect_303(url_for("admin.users"))


@bp.post("/users/<username>/password-link")
def password_link(username: str):
    try:
        link = services.password_link(current_user, username)
    except InvalidInput as error:
        return account_page(username, 422, problem=error.message)
    return account_page(username, link=link)


@bp.get("/audit")
def audit():
    if request.args.get("format") == "csv":
        rows = (
            [e.created_at.isoformat(), e.actor, e.action, e.subject, e.course_id or "", e.details]
            for e in services.audit_rows()
        )
        header = ["when", "who", "action", "subject", "course_id", "details"]
        return csv_response("campus-audit.csv", header, rows)
    found = services.audit_page(page_number())
    return render_page_or_partial("admin/audit.html", "admin/_audit.html", found=found)


@bp.route("/import", methods=["GET", "POST"])
@accepts_large_body(lambda app: imports.MAX_BYTES + 512 * 1024, admin_only)
def import_accounts():
    if request.method == "GET":
        return render_template("admin/import.html")
    if "links" in request.form:
        users = imports.accounts_of(request.form["links"])
        return csv_response("campus-password-links.csv", *services.link_rows(users))
    try:
        if "confirm" in request.form:
            content = request.form.get("content", "")
            checked, result = imports.confirm(current_user, content, request.form["confirm"])
            if result is None:
                return render_template("admin/import.html", preview=checked), 422
            links = services.new_account_links(result.created, result.mailed)
            return render_template(
                "admin/import.html",
                result=result,
                links=links,
                links_token=imports.links_token(result.created),
            )
        upload = request.files.get("file")
        raw = upload.read(imports.MAX_BYTES + 1) if upload else b""
        preview = imports.preview(current_user, raw)
    except InvalidInput as error:
        return render_template("admin/import.html", problem=error.message), 422
    return render_template("admin/import.html", preview=preview), 422 if preview.errors else 200


@bp.get("/reports")
def reports():
    return render_template(
        "admin/reports.html",
        reports=safety.reports_for(current_user),
        removed=safety.recently_removed(current_user),
        mute_max=safety.MUTE_MINUTES_MAX,
    )


@bp.post("/reports/<int:report_id>/resolve")
def resolve_report(report_id: int):
    safety.resolve(current_user, report_id)
    flash("The report is resolved.", "status")
    return redirect_303(url_for("admin.reports"))
