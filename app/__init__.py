"""The application factory: configuration, extensions, blueprints, CLI and error pages."""

from __future__ import annotations

import logging
import os
import sys

from flask import Flask, request, url_for
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from app import live, mail, signing
from app.extensions import csrf, db, limiter, login_manager, migrate, sock
from app.forms import whole_number
from config import CONFIGS, Config


def create_app(config: str | type[Config] | None = None, **overrides: object) -> Flask:
    """Build the app. `config` is a Config class or its name (default: $CAMPUS_CONFIG)."""
    if config is None or isinstance(config, str):
        config = CONFIGS[config or os.environ.get("CAMPUS_CONFIG", "development")]
    config.check()

    from app.blueprints.materials.storage import StreamingRequest, remove_request_leftovers

    app = Flask(__name__, instance_relative_config=True)
    app.request_class = StreamingRequest
    app.teardown_request(remove_request_leftovers)
    app.config.from_object(config)
    app.config["SECRET_KEY"] = app.config["SECRET_KEY"] or os.environ.get("SECRET_KEY")
    app.config.update(overrides)
    os.makedirs(app.instance_path, exist_ok=True)
    if proxies := app.config["TRUSTED_PROXIES"]:
        # The client's address (rate limits) and scheme (secure cookies) as the proxy saw them.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    configure_logging(app)

    from app.web import register_body_limits

    register_body_limits(app)  # before the CSRF check, which reads the body
    if str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql+psycopg"):
        from app.database import psycopg_options

        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = psycopg_options(app.config)
    db.init_app(app)
    if not str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite"):
        # SQLite has no server to have gone away.
        from app.database import ping_when_idle

        with app.app_context():
            ping_when_idle(db.engine, app.config["DATABASE_PING_IDLE_SECONDS"])
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(app.root_path), "migrations"))
    csrf.init_app(app)
    signing.init_app(app)
    limiter.init_app(app)
    sock.init_app(app)
    configure_login(app)
    live.init_app(app)
    mail.init_app(app)

    from app.web import IdConverter

    # Before the blueprints: their rules take their converters when they are registered.
    app.url_map.converters["int"] = IdConverter

    from app.blueprints.admin import bp as admin_bp
    from app.blueprints.auth import bp as auth_bp
    from app.blueprints.chat import bp as chat_bp
    from app.blueprints.courses import bp as courses_bp
    from app.blueprints.enrollments import bp as enrollments_bp
    from app.blueprints.feedback import bp as feedback_bp
    from app.blueprints.main import bp as main_bp
    from app.blueprints.materials import bp as materials_bp
    from app.blueprints.notifications import bp as notifications_bp
    from app.blueprints.profile import bp as profile_bp
    from app.blueprints.search import bp as search_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(auth_bp, url_prefix="/auth")
    app.register_blueprint(profile_bp)
    app.register_blueprint(courses_bp)
    app.register_blueprint(enrollments_bp)
    app.register_blueprint(notifications_bp)
    app.register_blueprint(feedback_bp)
    app.register_blueprint(materials_bp)
    app.register_blueprint(chat_bp)
    app.register_blueprint(search_bp)
    app.register_blueprint(admin_bp)

    from app.cli import register_cli
    from app.errors import register_error_handlers
    from app.templating import register_template_helpers
    from app.web import register_security_headers

    register_cli(app)
    register_error_handlers(app)
    register_security_headers(app)
    register_template_helpers(app)

    from app import fragments, search

    search.init_app(app)
    fragments.init_app(app)
    return app


def warm_up(app: Flask) -> None:
    """Ready a server's worker before it answers: every template compiled (0.6 s once, instead
    of 20-50 ms on the first request of each page and on the first live chat message), then
    everything loaded so far frozen out of the garbage collector's reach. A full collection
    walks every tracked object while the worker stands still; the app's own hundred thousand
    (modules, templates, mappers) never become garbage, and leaving them out shortens each
    such pause by about 70 ms (BENCHMARKS.md, "Live chat")."""
    import gc

    for name in app.jinja_env.list_templates(filter_func=lambda name: name.endswith(".html")):
        app.jinja_env.get_template(name)
    gc.collect()
    gc.freeze()


def configure_logging(app: Flask) -> None:
    """Everything to stderr, where gunicorn, systemd and containers collect it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    if not any(getattr(h, "campus", False) for h in root.handlers):
        handler.campus = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if app.debug else logging.INFO)


def configure_login(app: Flask) -> None:
    from app.blueprints.notifications.services import load_with_unread_count
    from app.models import User
    from app.web import is_htmx

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.login_message_category = "status"
    # "basic": a changed address only marks the session non-fresh; phones change addresses often.
    # Stolen or old cookies are refused by the session version instead.
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(token: str) -> User | None:
        user_id, _, version = (whole_number(part) for part in token.partition(":"))
        if user_id is None or version is None:
            return None
        user = load_with_unread_count(user_id)
        if user is None or user.session_version != version or not user.is_active:
            return None
        return user

    @login_manager.unauthorized_handler
    def unauthorized():
        from flask import flash, redirect

        target = request.full_path.rstrip("?") if request.method == "GET" else None
        login_url = url_for("auth.login", next=target)
        if is_htmx():
            return "", 401, {"HX-Redirect": login_url}
        flash(login_manager.login_message, login_manager.login_message_category)
        return redirect(login_url)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    """SQLite: enforce foreign keys and let readers work while one writer commits."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()
