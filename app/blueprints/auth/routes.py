"""Routes for registering, signing in and signing out."""

from __future__ import annotations

from flask import (
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from app.blueprints.auth import bp, links, services
from app.blueprints.auth.forms import (
    ForgotPasswordForm,
    LoginForm,
    RegistrationForm,
    SetPasswordForm,
)
from app.errors import InvalidInput
from app.web import (
    cached_for_visitors,
    form_invalid,
    is_safe_next,
    redirect_303,
    throttle_address,
)


def start_session(user, remember: bool) -> None:
    session.clear()  # nothing from before signing in carries over
    login_user(user, remember=remember)


def device_cookie() -> str | None:
    return request.cookies.get(current_app.config["DEVICE_COOKIE_NAME"])


def keep_device_cookie(response: Response, cookie: str) -> Response:
    """The browser keeps its proof of signing in to the account (services.new_device_cookie)."""
    config = current_app.config
    response.set_cookie(
        config["DEVICE_COOKIE_NAME"],
        cookie,
        max_age=config["DEVICE_COOKIE_DURATION"],
        path=url_for("auth.login"),
        secure=config["DEVICE_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response


@bp.route("/register", methods=["GET", "POST"])
@cached_for_visitors
def register():
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    if request.method == "POST":
        throttle_address(current_app.config["REGISTER_ADDRESS_LIMIT"], "register")
    form = RegistrationForm()
    if not form.validate_on_submit():
        return render_template("auth/register.html", form=form), 422 if form.is_submitted() else 200
    try:
        user = services.register(services.Registration(**_registration_fields(form)))
    except InvalidInput as error:
        return form_invalid("auth/register.html", form, error)
    start_session(user, remember=False)
    flash(f"Welcome to Campus, {user.full_name}.", "status")
    response = redirect_303(url_for("main.dashboard"))
    return keep_device_cookie(response, services.new_device_cookie(user))


def _registration_fields(form: RegistrationForm) -> dict[str, str]:
    names = ("username", "email", "full_name", "password", "role", "teacher_code", "timezone")
    return {name: getattr(form, name).data or "" for name in names}


@bp.route("/login", methods=["GET", "POST"])
@cached_for_visitors
def login():
    target = request.args.get("next")
    target = target if is_safe_next(target) else None
    if current_user.is_authenticated and request.method == "GET":
        return redirect(target or url_for("main.dashboard"))
    if request.method == "POST":
        throttle_address(current_app.config["LOGIN_ADDRESS_LIMIT"], "login")
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), 422 if form.is_submitted() else 200
    try:
        signed_in = services.authenticate(
            form.login.data, form.password.data, request.remote_addr or "", device_cookie()
        )
    except InvalidInput as error:
        return form_invalid("auth/login.html", form, error)
    start_session(signed_in.user, remember=form.remember.data)
    flash(f"Signed in as {signed_in.user.username}.", "status")
    response = redirect_303(target or url_for("main.dashboard"))
    return keep_device_cookie(response, signed_in.device_cookie)


@bp.post("/logout")
@login_required
def logout():
    services.end_sessions(current_user)
    session.clear()
    logout_user()  # after clear(): it leaves the mark that deletes the remember cookie
    flash("You are signed out, on this device and every other.", "status")
    return redirect_303(url_for("auth.login"))


RESET_LINK_SENT = (
    "If that is the username or email of an account, a link to set a new password is on its "
    "way to the account's email address. It works once, for 30 minutes."
)


@bp.route("/forgot", methods=["GET", "POST"])
@cached_for_visitors
def forgot():
    """Ask for a reset link: the same answer whatever was typed (links.send_reset_link)."""
    if request.method == "POST":
        throttle_address(current_app.config["FORGOT_ADDRESS_LIMIT"], "forgot")
    form = ForgotPasswordForm()
    if not form.validate_on_submit():
        return render_template("auth/forgot.html", form=form), 422 if form.is_submitted() else 200
    links.send_reset_link(form.login.data)
    flash(RESET_LINK_SENT, "status")
    return redirect_303(url_for("auth.login"))


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset(token: str):
    """Set a password from a one-time link (an admin's, an import's, or a forgotten one's)."""
    user = links.account_for(token)  # 410 for a used, expired or forged link
    form = SetPasswordForm()
    context = {"form": form, "user": user, "token": token}
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("auth/reset.html", **context), status
    try:
        links.set_password(token, form.new_password.data)
    except InvalidInput as error:
        return form_invalid("auth/reset.html", form, error, **context)
    flash("Your password is set. Sign in with it.", "status")
    return redirect_303(url_for("auth.login"))
