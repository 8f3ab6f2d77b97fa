"""The Flask extensions, created unbound here and bound to an app in create_app."""

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from app.database import CampusSession


class Base(DeclarativeBase):
    # Named constraints, so that migrations can drop and alter them on every database.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base, session_options={"class_": CampusSession})
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
sock = Sock()


class StoreLimiter(Limiter):
    """Flask-Limiter as the store and strategy of our throttles (RATELIMIT_* settings: Redis
    with REDIS_URL, memory otherwise), without its request hooks.

    No route declares a limit through it: the POSTs that are throttled count their attempts
    themselves (app/web.py `throttle_address`, the lockouts), so its check before every
    request, its headers after and its teardown found nothing to do, and cost a signed-out
    page about a tenth of its time."""

    def init_app(self, app: Flask) -> None:
        hooks = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
        before = [{key: list(funcs) for key, funcs in hook.items()} for hook in hooks]
        super().init_app(app)
        for hook, kept in zip(hooks, before, strict=True):
            hook.clear()
            hook.update(kept)


limiter = StoreLimiter(key_func=get_remote_address)
