"""Routes for chat rooms, posting without JavaScript, direct rooms and the live socket."""

from __future__ import annotations

from flask import Response, flash, render_template, request, url_for
from flask_login import current_user, login_required

from app.blueprints.chat import bp, channel, safety, services
from app.blueprints.chat.forms import EditForm, MessageForm, MuteForm, ReportForm, UnmuteForm
from app.blueprints.notifications.services import mark_read_for_link
from app.errors import InvalidInput, Throttled
from app.extensions import sock
from app.forms import whole_number
from app.models import ChatRoom
from app.web import (
    add_errors,
    form_invalid,
    is_cross_site,
    is_safe_next,
    redirect_303,
    render_page_or_partial,
)


@bp.get("/chat")
@login_required
def index():
    return render_page_or_partial(
        "chat/index.html", "chat/_rooms.html", rooms=services.rooms_of(current_user)
    )


def room_context(
    room: ChatRoom,
    members: list[int],
    form: MessageForm | None = None,
    mute_form: MuteForm | None = None,
) -> dict:
    before = whole_number(request.args.get("before", ""), max_digits=18)
    history = services.history(room, before)
    viewer = safety.viewer_of(current_user, room)
    moderation = None
    if viewer.moderates and room.course_id is not None:
        moderation = {
            "students": safety.students_in(members),
            "muted": safety.muted_in(room.id),
        }
    return {
        "room": room,
        "title": services.title_of(room, current_user.id),
        "history": history,
        "seen": services.seen_of(room.id, members, history) if before is None else 0,
        "form": form or MessageForm(formdata=None),
        "archived": services.archived(room),
        "viewer": viewer,
        "action_stub": safety.ACTION_STUB,
        "muted_until": services.muted_until(room.id, current_user.id),
        "moderation": moderation,
        "mute_form": mute_form or MuteForm(formdata=None),
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
    # 404 for a non-member, 403 for an archived course or a muted member, before the input
    room, members = services.room_to_post_in(current_user.id, room_id)
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


def back_to(room_id: int, anchor: str = "") -> Response:
    """303 to the room, or to the local page the form named in `next` (the reports page)."""
    target = request.form.get("next", "")
    if is_safe_next(target):
        return redirect_303(target)
    return redirect_303(url_for("chat.room", room_id=room_id) + anchor)


def action_page(heading: str, form, action: str, submit: str, room_id: int, **context):
    page = render_template(
        "chat/action.html",
        heading=heading,
        form=form,
        action=action,
        submit=submit,
        room_id=room_id,
        **context,
    )
    return page, 422


@bp.post("/chat/messages/<int:message_id>/edit")
@login_required
def edit_message(message_id: int):
    found = safety.editable(current_user, message_id)  # 404 or 403 before the input
    form = EditForm()
    try:
        if form.validate():
            safety.edit(current_user, message_id, form.body.data)
            flash("Your message was edited.", "status")
            return back_to(found.room.id, f"#message-{message_id}")
    except InvalidInput as error:
        add_errors(form, error)
    action = url_for("chat.edit_message", message_id=message_id)
    return action_page("Edit your message", form, action, "Save", found.room.id)


@bp.post("/chat/messages/<int:message_id>/delete")
@login_required
def remove_message(message_id: int):
    message = safety.remove(current_user, message_id)
    flash("The message was removed.", "status")
    return back_to(message.room_id, f"#message-{message_id}")


@bp.post("/chat/messages/<int:message_id>/report")
@login_required
def report_message(message_id: int):
    found = safety.reportable(current_user, message_id)
    form = ReportForm()
    try:
        if form.validate():
            safety.report(current_user, message_id, form.reason.data)
            flash(
                "Thank you: the message was reported to the course's teacher and the admins.",
                "status",
            )
            return back_to(found.room.id, f"#message-{message_id}")
    except InvalidInput as error:
        add_errors(form, error)
    action = url_for("chat.report_message", message_id=message_id)
    return action_page(
        "Report a message", form, action, "Send the report", found.room.id, message=found.message
    )


@bp.post("/chat/<int:room_id>/mute")
@login_required
def mute(room_id: int):
    room, members = safety.moderated_room(current_user, room_id)  # 404 or 403 first
    form = MuteForm()
    try:
        if form.validate():
            person, until = safety.mute(
                current_user, room_id, form.username.data, str(form.minutes.data)
            )
            flash(
                f"{person.display_name} is muted here until {until:%-d %b %Y, %H:%M} UTC.", "status"
            )
            return back_to(room_id)
    except InvalidInput as error:
        add_errors(form, error)
    if current_user.id not in members or request.form.get("next"):  # from the reports page
        return action_page(
            "Mute a member", form, url_for("chat.mute", room_id=room_id), "Mute", room_id
        )
    return form_invalid(
        "chat/room.html", MessageForm(formdata=None), **room_context(room, members, mute_form=form)
    )


@bp.post("/chat/<int:room_id>/unmute")
@login_required
def unmute(room_id: int):
    safety.moderated_room(current_user, room_id)
    form = UnmuteForm()
    if not form.validate():
        return action_page(
            "Unmute a member", form, url_for("chat.unmute", room_id=room_id), "Unmute", room_id
        )
    try:
        person = safety.unmute(current_user, room_id, form.username.data)
    except InvalidInput as error:
        add_errors(form, error)
        return action_page(
            "Unmute a member", form, url_for("chat.unmute", room_id=room_id), "Unmute", room_id
        )
    flash(f"{person.display_name} can post here again.", "status")
    return back_to(room_id)


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
