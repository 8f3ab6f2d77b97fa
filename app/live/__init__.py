"""The live channel's plumbing: this process's sockets (the hub) and the broker that carries
fragments between processes. Features publish through `live()`; the chat blueprint owns the
socket protocol."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Flask, current_app

from app.after_commit import when_committed
from app.live.broker import Delivery, LocalBroker, RedisBroker
from app.live.hub import CLOSE_RESTART, Connection, Hub


class Live:
    def __init__(self, redis_url: str | None) -> None:
        self.hub = Hub()
        self.broker: LocalBroker | RedisBroker = (
            RedisBroker(redis_url, self.hub.deliver, self.catch_up)
            if redis_url
            else LocalBroker(self.hub.deliver)
        )

    def catch_up(self) -> None:
        """Deliveries from other processes may have been missed: every tab of this process
        reconnects (htmx's ws extension does so after code 1012) and resumes from what it has."""
        self.hub.close_all(CLOSE_RESTART, "Reconnect to catch up")

    def open(self, connection: Connection) -> None:
        self.broker.start()
        self.hub.add(connection)
        self.broker.watch(connection.user_id, connection.id, connection.rooms)

    def close(self, connection: Connection) -> None:
        self.hub.remove(connection)
        self.broker.forget(connection.user_id, connection.id)

    def publish(self, user_ids: Iterable[int], html: str, **details) -> None:
        self.broker.publish(Delivery(tuple(user_ids), html, **details))

    def end_sessions(self, user_ids: Iterable[int]) -> None:
        """Signed out, a new password, another role: their open sockets close too."""
        self.broker.publish(Delivery(tuple(user_ids), "", close=True))


def init_app(app: Flask) -> None:
    from app.blueprints.main.services import add_health_check

    channel = app.extensions["campus.live"] = Live(app.config.get("REDIS_URL"))
    add_health_check(app, "broker", channel.broker.health)
    app.config.setdefault(
        # Pings keep sockets alive through proxies and find dead ones; a frame larger than
        # this closes the socket (a message over the chat limit gets an error instead).
        "SOCK_SERVER_OPTIONS",
        {"ping_interval": 25, "max_message_size": 64 * 1024},
    )


@when_committed("ended_sessions")
def close_ended_sessions(user_ids: set[int]) -> None:
    if "campus.live" in current_app.extensions:
        live().end_sessions(user_ids)


def live() -> Live:
    return current_app.extensions["campus.live"]


def render_fragment(template: str, **context) -> str:
    """A partial rendered for everyone it is sent to: without the request's context processors
    (no `current_user`, no queries), so it can be rendered once and outside a transaction. Its
    times are in UTC, marked for each page to show in its viewer's zone (app/templating.py)."""
    return current_app.jinja_env.get_template(template).render(for_everyone=True, **context)


__all__ = ["Connection", "Delivery", "Live", "init_app", "live", "render_fragment"]
