"""Routes for chat rooms, posting without JavaScript, direct rooms and the live socket."""

from __future__ import annotations

from flask import Response, request, url_for
from flask_login import current_user, login_required

from app.blueprints.chat import bp, channel, services
from app.blueprints.chat.forms import MessageForm
from app.blueprints.notifications.services import mark_read_for_link
from app.errors import InvalidInput, Throttled
from app.extensions import sock
from app.forms import whole_number
from app.models import ChatRoom
from app.web import form_invalid, is_cross_site, redirect_303, render_page_or_partial


@bp.get("/chat")
@login_required
def index():
    return render_page_or_partial(
        "chat/index.html", "chat/_rooms.html", rooms=services.rooms_of(current_user)
    )


def room_context(room: ChatRoom, members: list[int], form: MessageForm | None = None) -> dict:
    before = whole_number(request.args.get("before", ""), max_digits=18)
    history = services.history(room, before)
    return {
        "room": room,
        "title": services.title_of(room, current_user.id),
        "history": history,
        "seen": services.seen_of(room.id, members, history) if before is None else 0,
        "form": form or MessageForm(formdata=None),
        "archived": services.archived(room),
    }


@bp.get("/chat/<int:room_id>")
@login_required
def room(room_id: int):
    room, members = services.room_for(current_user.id, room_id)
    if request.args.get("before") is None and not is_cross_site():
        # Opening the room reads it, and the notification that pointed here; not when
        # another site's link opened it.
        services.open_room(current_user.id, room, members)
        mark_read_for_link(current_user, url_for("chat.room", room_id=room_id))
    context = room_context(room, members)
    return render_page_or_partial("chat/room.html", "chat/_history.html", **context)


@bp.post("/chat/<int:room_id>/messages")
@login_required
def post(room_id: int):
    room, members = services.room_for(current_user.id, room_id)  # 404 before the input
    services.refuse_if_archived(room)  # 403, whatever was typed
    form = MessageForm()
    if not form.validate():
        return form_invalid("chat/room.html", form, **room_context(room, members, form))
    try:
        message = services.post(channel.member_of(current_user), room_id, form.body.data)
    except InvalidInput as error:
        context = room_context(room, members, form)
        return form_invalid("chat/room.html", form, error, **context)
    except Throttled as error:  # the page again with the message kept in the box
        context = room_context(room, members, form)
        refused = InvalidInput({"body": error.message})
        page, _ = form_invalid("chat/room.html", form, refused, **context)
        return page, 429, {"Retry-After": str(error.retry_after)}
    return redirect_303(url_for("chat.room", room_id=room_id) + f"#message-{message.id}")


@bp.post("/chat/direct/<username>")
@login_required
def direct(username: str):
    room = services.direct_room(current_user, username)
    return redirect_303(url_for("chat.room", room_id=room.id))


@bp.before_request
def check_handshake():
    if request.endpoint == "chat.live":
        refused = channel.refusal()
        if refused is not None:
            message, status = refused
            headers = {"Retry-After": "30"} if status == 429 else {}
            return Response(message, status=status, headers=headers, mimetype="text/plain")
        # Accepted: gunicorn's worker (worker.py) stops counting this connection against its
        # address's connection cap, as an open tab's socket waits by design.
        if accepted := request.environ.get("campus.websocket_accepted"):
            accepted()
        # No permessage-deflate: a fragment is a few hundred bytes, and compressing it once
        # for every member's socket costs more time than it saves (BENCHMARKS.md).
        request.environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    return None


@bp.teardown_request
def release_socket(_error: BaseException | None = None) -> None:
    if request.endpoint == "chat.live":
        channel.release()


@sock.route("/ws", bp=bp)
def live(ws):
    channel.serve(ws)
