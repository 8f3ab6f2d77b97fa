"""Chat safeguarding through the pages (DESIGN.md "Chat safeguarding"): editing within 15
minutes, removing (author, the course's teacher, admins), muting, reports and the reports page,
and `flask chat purge`. Every rule has a test that tries to break it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.blueprints.chat import safety
from app.blueprints.chat.services import Member, post
from app.blueprints.enrollments.services import enroll
from app.extensions import db
from app.models import AuditEvent, ChatMessage, ChatMute, ChatReport, ChatRoom, Notification
from app.models.user import utcnow


def member(user) -> Member:
    return Member(user.id, user.username, user.full_name, user.session_version)


def stored(message_id: int) -> ChatMessage:
    db.session.expire_all()
    return db.session.get(ChatMessage, message_id)


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def classroom(app, make_user, make_course):
    """A course room with its teacher, two students and a message by Ana; an admin and an
    outsider (another course's teacher) beside it."""
    teacher = make_user("tomas", role="teacher", full_name="Tomás Teacher")
    course = make_course(teacher, title="Astronomy")
    ana, bo = make_user("ana", full_name="Ana Student"), make_user("bo", full_name="Bo Student")
    for student in (ana, bo):
        enroll(student, course.id)
    room_id = db.session.scalar(select(ChatRoom.id).where(ChatRoom.course_id == course.id))
    with app.test_request_context():
        message = post(member(ana), room_id, "The answer to question 3 is 42")
    people = {
        "teacher": teacher,
        "ana": ana,
        "bo": bo,
        "admin": make_user("ada", role="admin", full_name="Ada Admin"),
        "outsider": make_user("olga", role="teacher", full_name="Olga Other"),
        "stranger": make_user("sven", full_name="Sven Stranger"),
    }
    return room_id, message.id, people


def message_html(page: str, message_id: int) -> str:
    match = re.search(rf'<li id="message-{message_id}".*?</li>', page, re.S)
    assert match, f"message {message_id} not on the page"
    return match.group(0)


# Editing


def test_the_author_edits_within_15_minutes(client, login_as, classroom):
    room_id, message_id, people = classroom
    login_as(people["ana"])
    response = client.post_form(f"/chat/messages/{message_id}/edit", {"body": "It is 41, sorry"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/chat/{room_id}#message-{message_id}")
    assert stored(message_id).body == "It is 41, sorry"
    shown = message_html(client.get(f"/chat/{room_id}").get_data(as_text=True), message_id)
    assert "It is 41, sorry" in shown and "(edited)" in shown and "data-edited" in shown
    assert "question 3 is 42" not in shown


def test_no_edit_after_15_minutes(client, login_as, classroom):
    room_id, message_id, people = classroom
    db.session.execute(
        update(ChatMessage)
        .where(ChatMessage.id == message_id)
        .values(created_at=utcnow() - timedelta(minutes=16))
    )
    db.session.commit()
    login_as(people["ana"])
    page = client.get(f"/chat/{room_id}").get_data(as_text=True)
    assert "data-edit-form" not in message_html(page, message_id)  # no button offered
    response = client.post_form(f"/chat/messages/{message_id}/edit", {"body": "changed"})
    assert response.status_code == 403
    assert "15 minutes" in response.get_data(as_text=True)
    assert stored(message_id).body == "The answer to question 3 is 42"
    assert stored(message_id).edited_at is None


@pytest.mark.parametrize(("who", "status"), [("bo", 403), ("teacher", 403), ("stranger", 404)])
def test_only_the_author_edits(client, login_as, classroom, who, status):
    _, message_id, people = classroom
    login_as(people[who])
    response = client.post_form(f"/chat/messages/{message_id}/edit", {"body": "hijacked"})
    assert response.status_code == status
    assert stored(message_id).body == "The answer to question 3 is 42"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("", "Write a message."),
        ("   ", "Write a message."),
        ("x" * 2001, "at most 2,000"),
        ("bad\x00byte", "control characters"),
        ("evil\u202etxt", "direction"),
    ],
)
def test_a_bad_edit_is_422_and_keeps_the_text(client, login_as, classroom, body, problem):
    _, message_id, people = classroom
    login_as(people["ana"])
    response = client.post_form(f"/chat/messages/{message_id}/edit", {"body": body})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert problem in page and 'aria-describedby="body-error' in page
    assert stored(message_id).body == "The answer to question 3 is 42"


def test_editing_needs_the_csrf_token(client, login_as, classroom):
    _, message_id, people = classroom
    login_as(people["ana"])
    response = client.post(f"/chat/messages/{message_id}/edit", data={"body": "no token"})
    assert response.status_code == 400
    assert stored(message_id).body == "The answer to question 3 is 42"


# Removing


@pytest.mark.parametrize("who", ["ana", "teacher", "admin"])
def test_author_teacher_and_admin_remove(client, login_as, classroom, who):
    room_id, message_id, people = classroom
    login_as(people[who])
    response = client.post_form(f"/chat/messages/{message_id}/delete")
    assert response.status_code == 303
    message = stored(message_id)
    assert message.is_removed and message.body == ""
    assert message.removed_body == "The answer to question 3 is 42"  # kept for admins
    assert message.removed_by_id == people[who].id
    # Removed by someone else than its author: audited.
    audited = count(AuditEvent)
    assert audited == (0 if who == "ana" else 1)
    client.post_form("/auth/logout")
    login_as(people["bo"])
    page = client.get(f"/chat/{room_id}").get_data(as_text=True)
    shown = message_html(page, message_id)
    assert "data-removed" in shown and f'data-message-id="{message_id}"' in shown
    assert "question 3 is 42" not in page  # neither in the room nor in the room list
    assert "question 3 is 42" not in client.get("/chat").get_data(as_text=True)


@pytest.mark.parametrize(("who", "status"), [("bo", 403), ("outsider", 404), ("stranger", 404)])
def test_others_cannot_remove(client, login_as, classroom, who, status):
    _, message_id, people = classroom
    login_as(people[who])
    response = client.post_form(f"/chat/messages/{message_id}/delete")
    assert response.status_code == status
    assert not stored(message_id).is_removed


def test_a_missing_message_is_404(client, login_as, classroom):
    _, _, people = classroom
    login_as(people["admin"])
    for path in ("edit", "delete", "report"):
        assert client.post_form(f"/chat/messages/999999/{path}").status_code == 404
        assert client.post_form(f"/chat/messages/{10**30}/{path}").status_code == 404


def test_a_removed_message_cannot_be_edited_or_reported(client, login_as, classroom):
    _, message_id, people = classroom
    login_as(people["teacher"])
    client.post_form(f"/chat/messages/{message_id}/delete")
    client.post_form("/auth/logout")
    login_as(people["ana"])
    response = client.post_form(f"/chat/messages/{message_id}/edit", {"body": "back again"})
    assert response.status_code == 403
    assert stored(message_id).body == ""
    client.post_form("/auth/logout")
    login_as(people["bo"])
    assert (
        client.post_form(f"/chat/messages/{message_id}/report", {"reason": "x"}).status_code == 403
    )


# Muting


def mute(client, room_id: int, username: str, minutes: str = "30"):
    return client.post_form(f"/chat/{room_id}/mute", {"username": username, "minutes": minutes})


def test_a_muted_student_reads_but_cannot_post_until_unmuted(client, login_as, classroom):
    room_id, _, people = classroom
    login_as(people["teacher"])
    assert mute(client, room_id, "ana", "30").status_code == 303
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "muted"))
    assert event.actor == "tomas" and event.subject == "ana" and "30 minutes" in event.details
    client.post_form("/auth/logout")

    login_as(people["ana"])
    page = client.get(f"/chat/{room_id}")
    assert page.status_code == 200  # still reads
    notice = re.search(r'<p id="room-\d+-mute"[^>]*>.*?</p>', page.get_data(as_text=True), re.S)
    assert "data-muted-until" in notice.group(0) and "You are muted" in notice.group(0)
    before = count(ChatMessage)
    response = client.post_form(f"/chat/{room_id}/messages", {"body": "let me speak"})
    assert response.status_code == 403
    assert "muted in this room until" in response.get_data(as_text=True)
    assert count(ChatMessage) == before
    client.post_form("/auth/logout")

    login_as(people["teacher"])
    response = client.post_form(f"/chat/{room_id}/unmute", {"username": "ana"})
    assert response.status_code == 303
    assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "unmuted"))
    client.post_form("/auth/logout")

    login_as(people["ana"])
    assert client.post_form(f"/chat/{room_id}/messages", {"body": "thanks"}).status_code == 303
    assert count(ChatMessage) == before + 1
    page = client.get(f"/chat/{room_id}").get_data(as_text=True)
    assert "data-muted-until" not in page


def test_a_mute_ends_when_its_time_is_up(client, login_as, classroom):
    room_id, _, people = classroom
    login_as(people["teacher"])
    mute(client, room_id, "ana", "5")
    db.session.execute(update(ChatMute).values(until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    client.post_form("/auth/logout")
    login_as(people["ana"])
    assert client.post_form(f"/chat/{room_id}/messages", {"body": "back"}).status_code == 303


def test_an_admin_mutes_in_any_course_room(client, login_as, classroom):
    room_id, _, people = classroom
    login_as(people["admin"])
    assert mute(client, room_id, "bo", "10080").status_code == 303
    until = safety.services.muted_until(room_id, people["bo"].id)
    assert timedelta(days=6, hours=23) < until - utcnow() <= timedelta(days=7)


@pytest.mark.parametrize(
    ("username", "minutes", "field", "problem"),
    [
        ("ana", "0", "minutes", "1 to 10,080"),
        ("ana", "10081", "minutes", "1 to 10,080"),
        ("ana", "ten", "minutes", ""),
        ("ana", "", "minutes", "minutes"),
        ("ana", "1.5", "minutes", ""),
        ("sven", "30", "username", "member of this room"),  # not in the room
        ("nobody", "30", "username", "member of this room"),
        ("tomas", "30", "username", "Only students"),  # the teacher himself
        ("", "30", "username", "Choose a member"),
    ],
)
def test_bad_mute_input_is_422(client, login_as, classroom, username, minutes, field, problem):
    room_id, _, people = classroom
    login_as(people["teacher"])
    response = mute(client, room_id, username, minutes)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="mute-{field}-error"' in page and problem in page
    assert count(ChatMute) == 0


@pytest.mark.parametrize(("who", "status"), [("bo", 403), ("outsider", 404), ("stranger", 404)])
def test_others_cannot_mute_or_unmute(client, login_as, classroom, who, status):
    room_id, _, people = classroom
    login_as(people[who])
    assert mute(client, room_id, "ana").status_code == status
    assert count(ChatMute) == 0
    assert client.post_form(f"/chat/{room_id}/unmute", {"username": "ana"}).status_code == status


def test_students_do_not_get_the_moderation_forms(client, login_as, classroom):
    room_id, message_id, people = classroom
    login_as(people["bo"])
    page = client.get(f"/chat/{room_id}").get_data(as_text=True)
    assert "data-mute-form" not in page
    shown = message_html(page, message_id)
    assert "data-remove-form" not in shown and "data-report-form" in shown
    client.post_form("/auth/logout")
    login_as(people["teacher"])
    page = client.get(f"/chat/{room_id}").get_data(as_text=True)
    assert "data-mute-form" in page and "data-remove-form" in message_html(page, message_id)


def test_direct_rooms_have_no_muting(client, login_as, classroom):
    _, _, people = classroom
    login_as(people["teacher"])
    room = client.post_form("/chat/direct/ana")
    room_id = int(room.headers["Location"].rsplit("/", 1)[1])
    assert mute(client, room_id, "ana").status_code == 403
    assert count(ChatMute) == 0


# Reports


def test_a_member_reports_and_the_teacher_and_admins_are_told(client, login_as, classroom):
    _, message_id, people = classroom
    login_as(people["bo"])
    response = client.post_form(
        f"/chat/messages/{message_id}/report", {"reason": "Answers to the homework"}
    )
    assert response.status_code == 303
    filed = db.session.scalar(select(ChatReport))
    assert filed.body == "The answer to question 3 is 42" and filed.reporter_id == people["bo"].id
    told = db.session.scalars(
        select(Notification.user_id).where(Notification.kind == "chat_report")
    ).all()
    assert sorted(told) == sorted([people["teacher"].id, people["admin"].id])


@pytest.mark.parametrize(
    ("reason", "problem"),
    [("", "Say what is wrong"), ("x" * 501, "at most 500"), ("a\x07b", "control characters")],
)
def test_a_bad_reason_is_422(client, login_as, classroom, reason, problem):
    _, message_id, people = classroom
    login_as(people["bo"])
    response = client.post_form(f"/chat/messages/{message_id}/report", {"reason": reason})
    assert response.status_code == 422
    assert problem in response.get_data(as_text=True)
    assert count(ChatReport) == 0
    assert not db.session.scalar(select(Notification).where(Notification.kind == "chat_report"))


@pytest.mark.parametrize(("who", "status"), [("ana", 403), ("outsider", 404), ("stranger", 404)])
def test_own_messages_and_outsiders_cannot_report(client, login_as, classroom, who, status):
    _, message_id, people = classroom
    login_as(people[who])
    response = client.post_form(f"/chat/messages/{message_id}/report", {"reason": "spam"})
    assert response.status_code == status
    assert count(ChatReport) == 0


def test_the_reports_page_keeps_the_text_after_removal(client, login_as, classroom):
    _, message_id, people = classroom
    login_as(people["bo"])
    client.post_form(f"/chat/messages/{message_id}/report", {"reason": "Answers"})
    client.post_form("/auth/logout")
    login_as(people["ana"])
    client.post_form(f"/chat/messages/{message_id}/delete")  # the author hides it
    client.post_form("/auth/logout")

    for who in ("admin", "teacher"):
        login_as(people[who])
        page = client.get("/admin/reports")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        report = re.search(r'<article class="report".*?</article>', html, re.S).group(0)
        assert "data-removed" in report and "The answer to question 3 is 42" in report
        assert "Answers" in report
        client.post_form("/auth/logout")

    login_as(people["outsider"])  # another course's teacher
    html = client.get("/admin/reports").get_data(as_text=True)
    assert "data-report-id" not in html and "question 3 is 42" not in html
    report_id = db.session.scalar(select(ChatReport.id))
    assert client.post_form(f"/admin/reports/{report_id}/resolve").status_code == 404
    client.post_form("/auth/logout")
    login_as(people["bo"])
    assert client.get("/admin/reports").status_code == 403
    assert client.post_form(f"/admin/reports/{report_id}/resolve").status_code == 403
    assert db.session.get(ChatReport, report_id).resolved_at is None
    client.post_form("/auth/logout")

    login_as(people["teacher"])
    assert client.post_form(f"/admin/reports/{report_id}/resolve").status_code == 303
    db.session.expire_all()
    assert db.session.get(ChatReport, report_id).resolved_at is not None
    assert "data-report-id" not in client.get("/admin/reports").get_data(as_text=True)


def test_a_report_keeps_the_text_as_it_was_before_an_edit(client, login_as, classroom):
    _, message_id, people = classroom
    login_as(people["bo"])
    client.post_form(f"/chat/messages/{message_id}/report", {"reason": "Answers"})
    client.post_form("/auth/logout")
    login_as(people["ana"])
    client.post_form(f"/chat/messages/{message_id}/edit", {"body": "nothing to see"})
    client.post_form("/auth/logout")
    login_as(people["admin"])
    html = client.get("/admin/reports").get_data(as_text=True)
    assert "The answer to question 3 is 42" in html and "nothing to see" in html
    assert 'href="/admin/reports"' in html  # in the admin navigation


def test_an_admin_removes_a_reported_message_from_the_reports_page(client, login_as, classroom):
    _, message_id, people = classroom
    login_as(people["bo"])
    client.post_form(f"/chat/messages/{message_id}/report", {"reason": "Answers"})
    client.post_form("/auth/logout")
    login_as(people["admin"])
    response = client.post_form(f"/chat/messages/{message_id}/delete", {"next": "/admin/reports"})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/reports"
    assert stored(message_id).is_removed
    response = client.post_form(
        f"/chat/messages/{message_id}/delete", {"next": "https://evil.example/"}
    )
    assert response.headers["Location"].startswith("/chat/")  # never another site


# Keeping the text 30 days


def test_purge_erases_text_removed_more_than_30_days_ago(app, classroom):
    room_id, message_id, people = classroom
    with app.test_request_context():
        recent = post(member(people["bo"]), room_id, "recent removal")
        for removed in (message_id, recent.id):
            safety.remove(people["teacher"], removed)
    reporter = people["bo"]
    db.session.add(
        ChatReport(
            message_id=message_id, room_id=room_id, reporter_id=reporter.id, body="The answer",
            reason="x", resolved_at=utcnow(),
        )
    )  # fmt: skip
    db.session.execute(
        update(ChatMessage)
        .where(ChatMessage.id == message_id)
        .values(removed_at=utcnow() - timedelta(days=31))
    )
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["chat", "purge"])
    assert result.exit_code == 0 and "1 removed" in result.output
    assert stored(message_id).removed_body is None
    assert stored(recent.id).removed_body == "recent removal"
    assert db.session.scalar(select(ChatReport.body)) == ""


def test_admins_read_removed_text_for_30_days_teachers_do_not(app, client, login_as, classroom):
    _, message_id, people = classroom
    login_as(people["teacher"])
    client.post_form(f"/chat/messages/{message_id}/delete")  # never reported
    html = client.get("/admin/reports").get_data(as_text=True)
    assert 'id="removed"' not in html and "question 3 is 42" not in html
    client.post_form("/auth/logout")
    login_as(people["admin"])
    html = client.get("/admin/reports").get_data(as_text=True)
    kept = re.search(r'<section id="removed".*?</section>', html, re.S).group(0)
    assert f'data-message-id="{message_id}"' in kept and "The answer to question 3 is 42" in kept
    db.session.execute(
        update(ChatMessage).values(removed_at=utcnow() - timedelta(days=30, minutes=1))
    )
    db.session.commit()
    assert app.test_cli_runner().invoke(args=["chat", "purge"]).exit_code == 0
    html = client.get("/admin/reports").get_data(as_text=True)
    assert "question 3 is 42" not in html and 'id="removed-empty"' in html


def test_an_admin_mutes_the_author_from_the_reports_page(client, login_as, classroom):
    room_id, message_id, people = classroom
    login_as(people["bo"])
    client.post_form(f"/chat/messages/{message_id}/report", {"reason": "Answers"})
    client.post_form("/auth/logout")
    login_as(people["admin"])  # not a member of the room
    page = client.get("/admin/reports").get_data(as_text=True)
    assert f'action="/chat/{room_id}/mute"' in page
    form = {"username": "ana", "minutes": "0", "next": "/admin/reports"}
    refused = client.post_form(f"/chat/{room_id}/mute", form)
    assert refused.status_code == 422 and "1 to 10,080" in refused.get_data(as_text=True)
    assert count(ChatMute) == 0
    response = client.post_form(f"/chat/{room_id}/mute", {**form, "minutes": "15"})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/reports"
    assert safety.services.muted_until(room_id, people["ana"].id) is not None


def test_reporting_twice_keeps_one_report_and_tells_once(client, login_as, classroom):
    _, message_id, people = classroom
    login_as(people["bo"])
    for reason in ("Answers", "Answers to the homework, really"):
        response = client.post_form(f"/chat/messages/{message_id}/report", {"reason": reason})
        assert response.status_code == 303
    assert count(ChatReport) == 1
    assert db.session.scalar(select(ChatReport.reason)) == "Answers to the homework, really"
    told = select(func.count()).where(Notification.kind == "chat_report")
    assert db.session.scalar(told) == 2  # the teacher and the admin, once each
