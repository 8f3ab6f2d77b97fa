"""What every template may use: the unread count for the badge, and times in the viewer's zone."""

from __future__ import annotations

from flask import Flask, has_request_context
from flask_login import current_user
from jinja2 import pass_context
from markupsafe import Markup

from app.timezones import DEFAULT_ZONE, STYLES, time_element


def register_template_helpers(app: Flask) -> None:
    @app.context_processor
    def layout_context() -> dict:
        if not current_user.is_authenticated:
            return {"notification_count": 0}
        from app.blueprints.notifications.services import unread_count

        return {"notification_count": unread_count(current_user)}

    # Times in the viewer's zone (DESIGN.md), as `<time datetime="UTC">`. A live fragment is
    # rendered once for everyone it goes to (`render_fragment` sets `for_everyone`): its times
    # are in UTC and marked, and each page's script writes them in its viewer's zone.
    def shown_in_zone(style: str):
        @pass_context
        def show(context, value) -> Markup | str:
            if not value:
                return ""
            if context.get("for_everyone"):
                return time_element(value, style, DEFAULT_ZONE, localize=True)
            return time_element(value, style, viewer_zone())

        return show

    for style in STYLES:
        app.add_template_filter(shown_in_zone(style), style)
    app.add_template_global(viewer_zone)


def viewer_zone() -> str:
    """The signed-in person's zone; UTC for visitors and outside requests."""
    if has_request_context() and current_user.is_authenticated:
        return current_user.timezone or DEFAULT_ZONE
    return DEFAULT_ZONE
