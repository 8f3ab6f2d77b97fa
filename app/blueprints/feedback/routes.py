"""Routes for reading and writing a course's feedback and replying to it."""

from __future__ import annotations

from flask import flash, render_template, request, url_for
from flask_login import current_user, login_required

from app import fragments
from app.blueprints.courses.services import can_manage
from app.blueprints.feedback import bp, services
from app.blueprints.feedback.forms import FeedbackForm, ReplyForm
from app.blueprints.notifications.services import mark_read_for_link
from app.database import reads_alone
from app.templating import viewer_zone
from app.web import (
    is_cross_site,
    is_htmx,
    kept_for_person,
    page_number,
    redirect_303,
    render_page_or_partial,
)


def page_context(
    course_id: int, form: FeedbackForm | None = None, item=None, kept: bool = False
) -> dict:
    """Everything the feedback page shows: the course, summary and chart, the viewer's form
    (when they may rate) and one page of entries. With `kept` (a page without a form's errors)
    the entries come rendered, kept per course, page, sort, zone and whose buttons they show,
    and the summary and the viewer's standing come kept too."""
    item = item or services.readable_course(current_user, course_id)
    if kept:
        standing = services.kept_standing(current_user, course_id)
        can_write, mine = standing.may_write, standing.mine
    else:
        can_write = services.may_write(current_user, course_id)
        mine = services.mine(current_user, course_id)
    if form is None and can_write:
        form = FeedbackForm(formdata=None, obj=mine, rating=str(mine.rating) if mine else None)
    context = {
        "item": item,
        "summary": services.kept_summary(course_id) if kept else services.summary(course_id),
        "form": form,
        "mine": mine,
        "can_reply": can_manage(current_user, item.course) and not item.course.is_archived,
    }
    number, sort = page_number(), request.args.get("sort", "newest")
    if not kept:
        return context | {"page": services.entries(course_id, number, sort)}
    viewer = (viewer_zone(), mine and mine.id, context["can_reply"])  # what differs per viewer
    key = (course_id, number, sort, *viewer)
    entries = fragments.kept_template(
        [fragments.course_scope(course_id), fragments.feedback_scope(course_id)],
        key,
        "feedback/_entries.html",
        lambda: context | {"page": services.entries(course_id, number, sort)},
    )
    return context | {"entries": entries}


@bp.get("/courses/<int:course_id>/feedback")
@reads_alone
@login_required
def index(course_id: int):
    scopes = [fragments.course_scope(course_id), fragments.feedback_scope(course_id)]
    fragments.read_ahead(scopes)  # the course's and its feedback's versions in one round trip
    item = services.readable_course(current_user, course_id)
    link = url_for("feedback.index", course_id=course_id)
    # The teacher now sees the new feedback its notification announced (unless another site's
    # link opened the page); marking it read commits, which expires what was loaded, so the
    # course is read again then.
    if (
        can_manage(current_user, item.course)
        and not is_cross_site()
        and mark_read_for_link(current_user, link)
    ):
        item = None

    def page():
        context = page_context(course_id, item=item, kept=True)
        entries = context["entries"]
        return render_page_or_partial("feedback/index.html", "_kept.html", kept=entries, **context)

    return kept_for_person(scopes, page)


@bp.post("/courses/<int:course_id>/feedback")
@login_required
def submit(course_id: int):
    services.writable_course(current_user, course_id)  # 404 or 403 before looking at the input
    form = FeedbackForm()
    if not form.validate():
        context = page_context(course_id, form)
        template = "feedback/_panel.html" if is_htmx() else "feedback/index.html"
        return render_template(template, **context), 422
    saved = services.save(current_user, course_id, int(form.rating.data), form.comment.data or "")
    if is_htmx():
        return render_template(
            "feedback/_panel.html", **page_context(course_id), message=saved.message
        )
    flash(saved.message, "status")
    return redirect_303(url_for("feedback.index", course_id=course_id))


@bp.post("/feedback/<int:feedback_id>/reply")
@login_required
def reply(feedback_id: int):
    feedback = services.replyable(current_user, feedback_id)  # 404 or 403 first
    form = ReplyForm()
    if not form.validate():
        context = page_context(feedback.course_id) | {"reply_form": form, "reply_to": feedback.id}
        return render_template("feedback/index.html", **context), 422
    services.reply(current_user, feedback_id, form.body.data)
    flash("Your reply is posted.", "status")
    target = url_for("feedback.index", course_id=feedback.course_id)
    return redirect_303(f"{target}#feedback-{feedback_id}")


@bp.post("/feedback/<int:feedback_id>/delete")
@login_required
def delete(feedback_id: int):
    course_id = services.delete(current_user, feedback_id)
    flash("Your feedback is deleted.", "status")
    return redirect_303(url_for("feedback.index", course_id=course_id))
