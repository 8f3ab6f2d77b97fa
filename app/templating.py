"""What every template may use: the unread count for the badge and small formatting filters."""

from __future__ import annotations

from flask import Flask
from flask_login import current_user


def register_template_helpers(app: Flask) -> None:
    @app.context_processor
    def layout_context() -> dict:
        if not current_user.is_authenticated:
            return {"notification_count": 0}
        from app.blueprints.notifications.services import unread_count

        return {"notification_count": unread_count(current_user)}

    @app.template_filter("date")
    def format_date(value) -> str:
        return value.strftime("%-d %B %Y") if value else ""

    @app.template_filter("datetime")
    def format_datetime(value) -> str:
        return value.strftime("%-d %B %Y, %H:%M UTC") if value else ""
