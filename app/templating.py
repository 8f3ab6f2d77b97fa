"""What every template may use: the unread count for the badge and small formatting filters."""

from __future__ import annotations

from flask import Flask
from flask_login import current_user


def unread_notification_count() -> int:
    """The number behind #notification-count. Notifications are stored by a later feature;
    until they exist nobody has any unread."""
    return 0


def register_template_helpers(app: Flask) -> None:
    @app.context_processor
    def layout_context() -> dict:
        count = unread_notification_count() if current_user.is_authenticated else 0
        return {"notification_count": count}

    @app.template_filter("date")
    def format_date(value) -> str:
        return value.strftime("%-d %B %Y") if value else ""
